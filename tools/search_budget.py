"""How the tune stage should spend its trials: pruners and budgets compared on one study.

Issue 35: with 8 trials a study of the default run completes only 2-4 configurations, because
Hyperband prunes most trials after 1 or 2 epochs, and Optuna's guidance for Hyperband with TPE
is more than 10 trials per bracket. This tool measures the choice instead of guessing it. For
each ``--variant`` (a name and ``tune`` settings, as ``dvc exp run -S``) and each sampler seed
(``--seeds``, ``tune.seed``) it runs the trials of study ``--study`` exactly as the tune stage
does (``imdb_rnn.pipeline.tune.work``: the baseline as trial 0, TPE, the pruner, the whole
training split, early stopping), in one process, on a scratch journal and MLflow store
(``.NAME.scratch/`` beside ``--out``, never the project's; emptied before each study, so a killed
measurement leaves nothing the next does not remove), seed by seed over every variant (a
measurement stopped early compares the variants on the same seeds; an existing ``--out`` is
resumed), and records what the search found and what it cost:

- the best validation accuracy of the study (what the tune stage retrains and tests), and the
  number of the trial that found it;
- trials completed and pruned, and the epochs trained over all trials (the budget that pruning
  saves);
- the seconds the trials took.

    python tools/search_budget.py --study feedforward --seeds 1 2 3 \\
        --variant hyperband --variant median:tune.pruner=median,tune.pruner_warmup_epochs=2 \\
        --variant none:tune.pruner=none --out reports/sweeps/search_budget.json
    python tools/search_budget.py --report reports/sweeps/search_budget.json \\
        --markdown reports/sweeps/search_budget.md

A variant without settings is ``params.yaml`` as it is. Full-data trials on 2 cores take tens of
seconds to minutes each; this is a benchmark, not a test, and not a DVC stage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import shutil
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_repro import apply_settings, cpu_model, parse_setting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_variant(text: str) -> tuple[str, list[tuple[list[str], object]]]:
    """``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` (keys dotted from the top of params.yaml)."""
    name, _, rest = text.partition(":")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise SystemExit(f"error: --variant {text!r}: expected NAME or NAME:KEY=VALUE,...")
    settings = [parse_setting(item) for item in rest.split(",") if item] if rest else []
    return name, settings


def measure(params_file: Path, study: str, data_dir: Path, settings: list, seed: int,
            scratch: Path) -> dict:
    """One study of the variant ``settings`` with sampler seed ``seed``, in ``scratch``."""
    import optuna

    from imdb_rnn.config import load_params
    from imdb_rnn.pipeline.tune import work

    params_copy = scratch / "params.yaml"
    params_copy.write_text(params_file.read_text(encoding="utf-8"), encoding="utf-8")
    apply_settings(params_copy, [*settings, (["tune", "seed"], seed),
                                 (["tune", "storage"], f"journal:{scratch / 'optuna.journal'}"),
                                 (["tune", "timeout"], None)])
    params = load_params(params_copy)
    start = time.perf_counter()
    found, *_ = work(params, study, data_dir, worker=True)
    seconds = time.perf_counter() - start
    trials = found.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    if not complete:
        raise SystemExit(f"error: study {found.study_name}: no trial completed "
                         f"({len(trials)} trials: {', '.join(t.state.name for t in trials)})")
    best = max(complete, key=lambda t: t.value)
    return {"seed": seed, "best_value": best.value, "best_trial": best.number,
            "baseline_value": next((t.value for t in complete if t.number == 0), None),
            "complete": len(complete), "pruned": len(pruned),
            "epochs": sum(len(t.intermediate_values) for t in trials),
            "seconds": round(seconds, 1)}


def summary(runs: list[dict]) -> dict:
    def stat(key: str) -> dict:
        values = [run[key] for run in runs]
        return {"mean": statistics.fmean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
    return {key: stat(key) for key in ("best_value", "complete", "pruned", "epochs", "seconds")}


def markdown(result: dict) -> str:
    lines = [f"# Search budget: pruners compared on study `{result['study']}`",
             "",
             f"Each variant ran the tune stage's trials of study `{result['study']}` "
             f"({result['n_trials']} finished trials unless the variant changes "
             "`tune.n_trials`; trial 0 is the baseline) once per sampler seed it lists "
             f"(requested: {', '.join(map(str, result['seeds']))}), on {result['cpu']}, "
             f"measured {result['finished']}:",
             "",
             f"    {result['command']}",
             "",
             "*Best validation* is the study's best trial (what the tune stage retrains and "
             "tests); *baseline* the hand-set configuration's own validation accuracy (trial "
             "0). *Epochs* are trained over all trials: what pruning saves. Means are over the "
             "seeds a variant has run (a measurement stopped early lacks the last seed for "
             "some variants).",
             "",
             "| variant | settings | seeds | best validation, mean ± sd | best per seed (trial) "
             "| completed | pruned | epochs | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, variant in result["variants"].items():
        if not variant["runs"]:
            continue
        s = variant["summary"]
        per_seed = ", ".join(f"{100 * r['best_value']:.2f} (#{r['best_trial']})"
                             for r in variant["runs"])
        settings = ", ".join(f"{k}={v}" for k, v in variant["settings"].items()) or "params.yaml"
        lines.append(
            f"| {name} | {settings} | {', '.join(str(r['seed']) for r in variant['runs'])} "
            f"| {100 * s['best_value']['mean']:.2f} ± "
            f"{100 * s['best_value']['sd']:.2f} | {per_seed} | {s['complete']['mean']:.1f} "
            f"| {s['pruned']['mean']:.1f} | {s['epochs']['mean']:.0f} "
            f"| {s['seconds']['mean']:.0f} |")
    baselines = {r["baseline_value"] for v in result["variants"].values() for r in v["runs"]
                 if r["baseline_value"] is not None}
    if baselines:
        lines += ["", "Baseline (trial 0) validation: "
                  + ", ".join(f"{100 * b:.2f}%" for b in sorted(baselines)) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "vectorized")
    parser.add_argument("--study", default="feedforward", help="a key of tune.studies")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME or NAME:KEY=VALUE,... (repeatable)")
    parser.add_argument("--out", type=Path, help="JSON of the results (written after each "
                        "study; an existing one of the same study is resumed)")
    parser.add_argument("--report", type=Path, help="render an --out JSON as Markdown instead")
    parser.add_argument("--markdown", type=Path, help="with --report: write the Markdown here")
    args = parser.parse_args(argv)
    if args.report is not None:
        text = markdown(json.loads(args.report.read_text(encoding="utf-8")))
        if args.markdown:
            args.markdown.write_text(text, encoding="utf-8")
        print(text, end="")
        return 0
    if not args.variant or args.out is None:
        parser.error("give at least one --variant and --out (or --report)")
    variants = [parse_variant(text) for text in args.variant]
    if len({name for name, _ in variants}) != len(variants):
        raise SystemExit("error: --variant: two variants share a name")
    # Paths as the caller meant them, then the project's folder (the params' relative paths,
    # such as the word vectors, are the project's).
    args.params, args.data, args.out = (path.resolve() for path in
                                        (args.params, args.data, args.out))
    os.chdir(ROOT)
    from imdb_rnn.config import load_params
    params = load_params(args.params)
    if args.study not in params.tune.studies:
        raise SystemExit(f"error: --study {args.study!r}: not in tune.studies "
                         f"({', '.join(params.tune.studies)})")
    params_sha256 = hashlib.sha256(args.params.read_bytes()).hexdigest()
    result = {"study": args.study, "seeds": args.seeds, "n_trials": params.tune.n_trials,
              "params_sha256": params_sha256,
              "cpu": f"{cpu_model()} ({os.cpu_count()} cores)",
              "command": "python tools/search_budget.py " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "finished": None, "variants": {}}
    # An existing --out is resumed: every run it holds is kept (other variants and seeds
    # too), and only what is missing runs. It must be of the same study and params.yaml, and
    # a variant of the same name must have the same settings.
    earlier = (json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {})
    if earlier:
        if earlier.get("study") != args.study:
            raise SystemExit(f"error: --out {args.out}: holds study {earlier.get('study')!r}, "
                             f"not {args.study!r}; give another --out")
        if earlier.get("params_sha256", params_sha256) != params_sha256:
            raise SystemExit(f"error: --out {args.out}: measured with another {args.params.name}"
                             "; give another --out")
        result["variants"] = earlier.get("variants", {})
        result["seeds"] = sorted(set(earlier.get("seeds", [])) | set(args.seeds))
    for name, settings in variants:
        described = {".".join(keys): value for keys, value in settings}
        kept = result["variants"].get(name)
        if kept is not None and kept.get("settings") != described:
            raise SystemExit(f"error: --variant {name}: --out holds it with other settings "
                             f"({kept.get('settings')}); name this one differently")
        if kept is None:
            result["variants"][name] = {"settings": described, "runs": [], "summary": None}
    os.environ.pop("IMDB_TUNE_STORAGE", None)
    scratch = args.out.with_name(f".{args.out.name}.scratch")
    # Seed by seed, every variant: a measurement stopped early compares the variants on the
    # same seeds.
    for seed in args.seeds:
        for name, settings in variants:
            variant = result["variants"][name]
            if any(run["seed"] == seed for run in variant["runs"]):
                continue
            # One scratch folder beside --out, emptied before each study: a killed measurement
            # leaves it, and the next one (resumed) removes it.
            # (a folder of its own per study: MLflow keeps one store per URI in the process)
            shutil.rmtree(scratch, ignore_errors=True)
            folder = scratch / f"{name}-{seed}"
            folder.mkdir(parents=True)
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
            run = measure(args.params, args.study, args.data, settings, seed, folder)
            shutil.rmtree(scratch, ignore_errors=True)
            print(f"{name} seed {seed}: {json.dumps(run)}", flush=True)
            variant["runs"].append(run)
            variant["summary"] = summary(variant["runs"])
            result["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
