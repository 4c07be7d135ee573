"""Measure a training recipe over seeds: each family of ``train.models``, trained with each seed
through the pipeline's own training path, scored on validation and test.

A recipe change is kept only where it pays beyond the seed spread, so a decision needs the
mean and sd over seeds of both recipes on one machine. This tool trains ``--models`` x
``--seeds`` (side by side in worker processes, as the seeds stage does) on the prepared data of
a workspace (``WORKSPACE/data/vectorized`` and the word vectors its sections name), with the
params of ``--params`` changed by ``--set KEY=VALUE`` (as ``dvc exp run -S``), and writes one
JSON per run label under ``--out``. Every training also records which epoch each selection
rule would keep and its test accuracy (best by val_loss, best by val_accuracy, the last
epoch), so the choice of ``train.monitor`` is measured by the same runs.

    python tools/sweep.py run --label cosine-movie --workspace . --seeds 42 1 2 \\
        --set train.schedule=cosine --set train.patience=null
    python tools/sweep.py report reports/sweeps/recipe --out reports/sweeps/recipe.md

Full-data trainings on 2 cores take minutes each; this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_repro import apply_settings, parse_setting  # noqa: E402

SELECTIONS = ("val_loss", "val_accuracy", "last")
# Params of the data the workspace already holds: a --set of them would change nothing.
DATA_SECTIONS = ("fetch", "preprocess", "vectorize", "embed")


def _train_one(params_file: str, workspace: str, name: str, seed: int,
               values: dict | None = None) -> dict:
    """One training (a worker process runs it): fit, then test each selection's weights.
    ``values`` replace keys of the section (a configuration drawn from its search space)."""
    os.chdir(workspace)
    import keras

    from imdb_rnn.config.params import load_params, model_section
    from imdb_rnn.data import VOCAB_FILE, initial_embedding, load_sequences, load_vocabulary
    from imdb_rnn.evaluation import classification_metrics
    from imdb_rnn.modeling import Stopping, fit, predict_probabilities, recipe_for

    class Keep(keras.callbacks.Callback):
        """The weights each selection rule would keep, and the last epoch's."""

        def __init__(self) -> None:
            super().__init__()
            self.best = {"val_loss": (float("inf"), None, 0), "val_accuracy": (-1.0, None, 0)}
            self.last = (None, 0)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            weights = self.model.get_weights()
            self.last = (weights, epoch + 1)
            loss, acc = logs["val_loss"], logs["val_accuracy"]
            if loss < self.best["val_loss"][0]:
                self.best["val_loss"] = (loss, weights, epoch + 1)
            if acc > self.best["val_accuracy"][0]:
                self.best["val_accuracy"] = (acc, weights, epoch + 1)

    from imdb_rnn.search.study import with_values

    params = load_params(params_file)
    section = with_values(model_section(params, name), values or {})
    data = Path("data/vectorized")
    train, val = load_sequences(data / "train.npz"), load_sequences(data / "val.npz")
    test = load_sequences(data / "test.npz")
    vocabulary = load_vocabulary(data / VOCAB_FILE)
    matrix, _ = initial_embedding(section, vocabulary, seed)
    keep = Keep()
    recipe = recipe_for(section, params.train)
    result = fit(recipe, train, val, vocab_size=len(vocabulary), seed=seed,
                 stopping=Stopping(params.train.monitor, params.train.patience),
                 embedding=matrix, callbacks=[keep], verbose=0)
    chosen = {"val_loss": keep.best["val_loss"][1:], "val_accuracy": keep.best["val_accuracy"][1:],
              "last": keep.last}
    scores = {}
    for rule, (weights, epoch) in chosen.items():
        result.model.set_weights(weights)
        row = result.history[epoch - 1]
        probabilities = predict_probabilities(result.model, test, recipe.shape,
                                              params.evaluate.batch_size)
        metrics = classification_metrics(test.labels, probabilities, params.evaluate.threshold)
        scores[rule] = {"epoch": epoch, "val_accuracy": row["val_accuracy"],
                        "test_accuracy": metrics["accuracy"]}
    return {"model": name, "family": section.family, "seed": seed, "values": values or {},
            "epochs": len(result.history), "seconds": round(result.seconds, 1),
            "train_reviews": len(train), "val_reviews": len(val),
            "history": result.history, "selections": scores,
            "kept": params.train.monitor}


def configurations(params, name: str, args: argparse.Namespace) -> list[dict | None]:
    """The section itself, or ``args.configs`` configurations drawn at random (Optuna's
    RandomSampler, seed ``args.config_seed``) from ``tune.space.NAME``: the same ones on every
    workspace, so one search's trials can be scored on two validation splits."""
    if not args.configs:
        return [None]
    import optuna

    from imdb_rnn.search.study import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.config_seed))
    base = params.train.models[name]
    drawn = []
    for _ in range(args.configs):
        trial = study.ask()
        drawn.append(suggest(trial, params.tune.space[name], base))
        study.tell(trial, 0.0)
    return drawn


def run(args: argparse.Namespace) -> None:
    from imdb_rnn import compute
    from imdb_rnn.config.params import load_params

    workspace = Path(args.workspace).resolve()
    settings = [parse_setting(text) for text in args.set]
    for keys, _ in settings:
        if keys[0] in DATA_SECTIONS:
            raise SystemExit(f"error: --set {'.'.join(keys)}: the sweep trains on the workspace's "
                             "prepared data; change data params there (dvc repro) instead")
    with tempfile.TemporaryDirectory() as folder:
        params_file = Path(folder) / "params.yaml"
        params_file.write_text(Path(args.params).read_text())
        apply_settings(params_file, settings)
        params = load_params(params_file)
        names = args.models or list(params.train.models)
        jobs = [(str(params_file), str(workspace), name, seed, values)
                for name in names for values in configurations(params, name, args)
                for seed in args.seeds]
        # the slow families first, so the two workers end together
        order = {"bidirectional": 0, "lstm": 1, "gru": 2, "simple_rnn": 3, "cnn": 4}
        jobs.sort(key=lambda job: order.get(params.train.models[job[2]].family, 5))
        the_plan = compute.plan(params.compute, len(jobs))
        print(f"sweep {args.label}: {len(jobs)} trainings, {the_plan.describe()}", flush=True)
        start = time.perf_counter()
        runs = compute.run_parallel(_train_one, jobs, the_plan, f"sweep {args.label}")
    out = Path(args.out) / f"{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "label": args.label, "settings": args.set, "workspace": workspace.name,
        "data": yaml.safe_load(Path(workspace / "reports/data.json").read_text())["counts"]
        if (workspace / "reports/data.json").exists() else None,
        "wall_seconds": round(time.perf_counter() - start, 1), "runs": runs}, indent=1) + "\n")
    print(f"sweep {args.label}: {out}")


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):.2%} ± {sd:.2%}"


def _kept(run: dict) -> dict:
    return run["selections"][run["kept"]]


def _spearman(pairs: list[tuple[float, float]]) -> str:
    from scipy.stats import spearmanr

    if len(pairs) < 3:
        return "n/a"
    rho = spearmanr([v for v, _ in pairs], [t for _, t in pairs]).statistic
    return f"{rho:+.2f} over {len(pairs)}"


def report(args: argparse.Namespace) -> None:
    """Markdown: per run label and model, test accuracy over seeds (mean ± sd) for the weights
    the recipe keeps and for each selection rule; validation against test, and the Spearman
    rank correlation between them (over families, or over the configurations of a search)."""
    files = sorted(Path(args.folder).glob("*.json"))
    if not files:
        raise SystemExit(f"error: {args.folder}: no sweep results (*.json)")
    sweeps = [json.loads(f.read_text()) for f in files]
    recipes = [s for s in sweeps if not any(r.get("values") for r in s["runs"])]
    searches = [s for s in sweeps if any(r.get("values") for r in s["runs"])]
    lines = []
    if recipes:
        lines += ["| run | model | test per seed (kept weights) | epoch kept / trained | "
                  "test mean ± sd | val mean ± sd | val - test | test, best val_loss | "
                  "test, best val_accuracy | test, last epoch | s per training |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
    for sweep in recipes:
        families = list(dict.fromkeys(r["model"] for r in sweep["runs"]))
        means = []
        for name in families:
            runs = [r for r in sweep["runs"] if r["model"] == name]
            test = [_kept(r)["test_accuracy"] for r in runs]
            val = [_kept(r)["val_accuracy"] for r in runs]
            means.append((statistics.fmean(val), statistics.fmean(test)))
            gap = statistics.fmean(v - t for v, t in zip(val, test))
            lines.append(
                f"| {sweep['label']} | {name} | "
                + ", ".join(f"{r['seed']}: {t:.2%}" for r, t in zip(runs, test)) + " | "
                + ", ".join(f"{_kept(r)['epoch']}/{r['epochs']}" for r in runs) + " | "
                f"{_mean_sd(test)} | {_mean_sd(val)} | {gap * 100:+.2f} pt | "
                + " | ".join(_mean_sd([r["selections"][s]["test_accuracy"] for r in runs])
                             for s in SELECTIONS)
                + f" | {statistics.fmean(r['seconds'] for r in runs):.0f} |")
        lines.append(f"| {sweep['label']} | Spearman(val, test) over the families' means: "
                     f"{_spearman(means)} | | | | | | | | | |")
    for sweep in searches:
        pairs = [(_kept(r)["val_accuracy"], _kept(r)["test_accuracy"]) for r in sweep["runs"]]
        gap = statistics.fmean(v - t for v, t in pairs)
        lines += ["", f"**{sweep['label']}** ({len(pairs)} configurations of "
                  f"{sweep['runs'][0]['model']} drawn at random from its search space, trained "
                  f"with seed {sweep['runs'][0]['seed']}): Spearman(val, test) {_spearman(pairs)}; "
                  f"val - test {gap * 100:+.2f} points on average; best by val tests "
                  f"{max(pairs)[1]:.2%}, best by test {max(t for _, t in pairs):.2%}."]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train models x seeds and write LABEL.json")
    r.add_argument("--label", required=True)
    r.add_argument("--workspace", default=".", help="folder with data/vectorized and the vectors")
    r.add_argument("--params", default="params.yaml")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--models", nargs="*", help="keys of train.models (default: all)")
    r.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    r.add_argument("--configs", type=int, default=0,
                   help="train N configurations drawn from tune.space.MODEL instead of the "
                        "section (the trials of a random search)")
    r.add_argument("--config-seed", type=int, default=0)
    r.add_argument("--out", default="reports/sweeps/recipe")
    r.set_defaults(func=run)
    p = sub.add_parser("report", help="summarise the JSONs of a folder as Markdown")
    p.add_argument("folder")
    p.add_argument("--out")
    p.set_defaults(func=report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
