"""Training speed, side by side: the classic Keras recipe against the pipeline's own path.

For each model family, the same model (built from its ``train.models`` section, same seed and
hyperparameters) is trained for the same number of epochs on the whole training split twice:

- **classic**: every review cut and padded to ``maxlen`` as one NumPy array, ``model.fit`` with
  default settings (shuffled batches), as the textbook examples do;
- **pipeline**: the bucketed feed: a ``tf.data`` pipeline of length-bucketed batches
  padded only to their longest review, prefetched.

Both report training samples per second and the last epoch's validation accuracy. The rest of
the benchmark times the data stages (in a scratch copy of the project), a no-op ``dvc repro``,
and one search with and without pruning.

    python tools/benchmark.py                         # every family, 2 epochs, all sections
    python tools/benchmark.py --models lstm gru --epochs 1 --skip-data --skip-pruning
    python tools/benchmark.py --models simple_rnn --repeats 3 --update --skip-pruning
                                        # one family again (median of three), into the report

Needs the vectorized data and word vectors of this workspace (`dvc repro embed`); the no-op
repro needs the whole workspace up to date. Writes reports/benchmarks.md and .json. Not a test
and not a DVC stage: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from imdb_rnn import compute
from imdb_rnn.cli import stage_main
from imdb_rnn.config import Params, load_params
from imdb_rnn.data import VOCAB_FILE, Sequences, initial_embedding, load_sequences, load_vocabulary
from imdb_rnn.io import read_json, write_json, write_text
from imdb_rnn.modeling import Recipe, fit, recipe_for

DATA_STAGES = ("fetch", "preprocess", "vectorize")


def machine() -> dict:
    """What the numbers were measured on."""
    import tensorflow as tf

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}


def side(recipe: Recipe, train: Sequences, val: Sequences, *, vocab_size: int, seed: int,
         embedding: np.ndarray | None) -> dict:
    """One side of the comparison through the one fit path, no early stopping: samples/s, the
    last and the best epoch's validation accuracy."""
    began = time.time()
    result = fit(recipe, train, val, vocab_size=vocab_size, seed=seed, verbose=2,
                 embedding=embedding)
    return {"seconds": result.seconds, "samples_per_second": result.samples_per_second,
            "began": began, "ended": time.time(), "samples": result.train_samples * len(result.history),
            "val_accuracy": result.history[-1]["val_accuracy"],
            "best_val_accuracy": max(row["val_accuracy"] for row in result.history)}


def _side_in_worker(section_data: dict, data_dir: Path, epochs: int, seed: int,
                    embedding_seed: int) -> dict:
    """One fit of the new path, in a worker process (its own data, its own TensorFlow)."""
    section = _section(section_data)
    train, val = (load_sequences(data_dir / f"{s}.npz") for s in ("train", "val"))
    vocabulary = load_vocabulary(data_dir / VOCAB_FILE)
    matrix, _ = initial_embedding(section, vocabulary, embedding_seed)
    return side(recipe_for(section, epochs=epochs), train, val, vocab_size=len(vocabulary),
                seed=seed, embedding=matrix)


def _section(data: dict):
    from pydantic import TypeAdapter

    from imdb_rnn.config.params import ModelParams

    return TypeAdapter(ModelParams).validate_python(data)


def previous_sections(rev: str) -> dict:
    """The ``train.models`` sections of params.yaml at git revision ``rev``."""
    import yaml

    from imdb_rnn.config.params import apply_profile

    text = subprocess.run(["git", "show", f"{rev}:params.yaml"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    return apply_profile(yaml.safe_load(text))["train"]["models"]


def compare_family(params: Params, name: str, data_dir: Path, epochs: int) -> dict:
    """Classic against pipeline for model ``name``, ``epochs`` epochs each, same seed, one
    process each."""
    section = params.train.models[name].model_copy(update={"epochs": epochs})
    train, val = (load_sequences(data_dir / f"{s}.npz") for s in ("train", "val"))
    vocabulary = load_vocabulary(data_dir / VOCAB_FILE)
    matrix, _ = initial_embedding(section, vocabulary, params.train.seed)
    kwargs = {"vocab_size": len(vocabulary), "seed": params.train.seed, "embedding": matrix}
    classic = side(recipe_for(section, feed="classic"), train, val, **kwargs)
    pipeline = side(recipe_for(section), train, val, **kwargs)
    return {"model": name, "family": section.family, "epochs": epochs, "maxlen": section.maxlen,
            "train_reviews": len(train), "classic": classic, "pipeline": pipeline,
            "speedup": pipeline["samples_per_second"] / classic["samples_per_second"],
            "val_accuracy_difference": pipeline["val_accuracy"] - classic["val_accuracy"],
            "best_val_accuracy_difference": (pipeline["best_val_accuracy"]
                                             - classic["best_val_accuracy"])}


def compare_paths(params: Params, name: str, data_dir: Path, epochs: int,
                  previous: dict) -> dict:
    """The previous pipeline path against the new one for model ``name``, ``epochs`` epochs
    each on the whole training split, no early stopping:

    - previous: ``previous`` (the section of an earlier params.yaml), one process with
      TensorFlow's default threads, as the seeds and tune stages trained then;
    - new: this params.yaml's section as those stages train it now: ``compute`` worker
      processes side by side (seeds train.seed, +1, ...), samples/s of them together.
    """
    section = params.train.models[name].model_copy(update={"epochs": epochs})
    train, val = (load_sequences(data_dir / f"{s}.npz") for s in ("train", "val"))
    vocabulary = load_vocabulary(data_dir / VOCAB_FILE)
    old = _section(previous | {"epochs": epochs})
    matrix, _ = initial_embedding(old, vocabulary, params.train.seed)
    before = side(recipe_for(old), train, val, vocab_size=len(vocabulary),
                  seed=params.train.seed, embedding=matrix)
    the_plan = compute.plan(params.compute)
    jobs = [(section.model_dump(), data_dir, epochs, params.train.seed + i, params.train.seed)
            for i in range(the_plan.workers)]
    sides = compute.run_parallel(_side_in_worker, jobs, the_plan, f"benchmark {name}")
    # The processes together: every review they trained on, over the time from the first
    # fit's start to the last one's end (start-up and data loading left out, as in a single
    # fit's figure).
    window = max(s["ended"] for s in sides) - min(s["began"] for s in sides)
    new = {"workers": the_plan.workers, "threads": the_plan.threads, "seconds": window,
           "samples_per_second": sum(s["samples"] for s in sides) / window,
           "per_process_samples_per_second": statistics.fmean(s["samples_per_second"]
                                                              for s in sides),
           "val_accuracy": sides[0]["val_accuracy"],
           "best_val_accuracy": sides[0]["best_val_accuracy"],
           "val_accuracies": [s["val_accuracy"] for s in sides]}
    return {"model": name, "family": section.family, "epochs": epochs,
            "train_reviews": len(train),
            "previous": before | {"batch_size": old.batch_size,
                                  "learning_rate": old.learning_rate},
            "new": new | {"batch_size": section.batch_size,
                          "learning_rate": section.learning_rate},
            "speedup": new["samples_per_second"] / before["samples_per_second"]}


def median_repeat(results: list[dict]) -> dict:
    """Of repeated comparisons of one family, the one with the median speed-up, listing all.

    A shared 2-core machine swings by a third from minute to minute; repeats (each classic
    then pipeline, back to back) show that spread instead of hiding it in one number.
    """
    ranked = sorted(results, key=lambda r: r["speedup"])
    return {**ranked[(len(ranked) - 1) // 2], "speedups": [r["speedup"] for r in results]}


def _timed(args: list[str], cwd: Path) -> float:
    from smoke import tool_env

    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=tool_env(), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def data_stage_seconds(root: Path) -> dict[str, float]:
    """Seconds of each data stage, run one by one in a scratch copy of the project."""
    from smoke import scratch_project

    with tempfile.TemporaryDirectory(prefix="imdb-bench-") as scratch:
        work = Path(scratch) / "project"
        scratch_project(root, work, io.StringIO(), "full")
        return {stage: _timed(["dvc", "repro", "--single-item", stage], work)
                for stage in DATA_STAGES}


def noop_repro_seconds(root: Path, repeats: int = 5) -> list[float]:
    """Seconds of each of ``repeats`` ``dvc repro`` runs with nothing to do (the workspace must
    be up to date)."""
    status = subprocess.run(["dvc", "status", "--json"], cwd=root, capture_output=True,
                            text=True, check=True)
    if status.stdout.strip() not in ("{}", ""):
        raise RuntimeError("the workspace is not up to date: run dvc repro first")
    return [_timed(["dvc", "repro"], root) for _ in range(repeats)]


def pruning_comparison(params: Params, study: str, data_dir: Path, n_trials: int) -> dict:
    """One study of ``n_trials`` trials with the params' pruner and without pruning."""
    from imdb_rnn.pipeline.tune import work

    out = {}
    with tempfile.TemporaryDirectory(prefix="imdb-bench-") as scratch:
        for pruner in (params.tune.pruner, "none"):
            # One process: the pruners are compared on the same sequence of trials.
            single = params.compute.model_copy(update={"workers": 1, "threads": "auto"})
            tune = params.tune.model_copy(update={
                "pruner": pruner, "n_trials": n_trials, "timeout": None,
                "storage": f"journal:{scratch}/{pruner}.journal",
                "experiment": "imdb-benchmarks"})
            found, _, _, loop = work(params.model_copy(update={"tune": tune, "compute": single}),
                                     study, data_dir)
            trials = [t for t in found.trials if t.state.is_finished()]
            complete = [t for t in trials if t.value is not None
                        and t.state.name == "COMPLETE"]
            out[pruner] = {
                "trials": len(trials), "pruned": sum(t.state.name == "PRUNED" for t in trials),
                "epochs_run": sum(int(t.user_attrs.get("epochs_run", 0)) for t in trials),
                "epochs_budget": len(trials) * tune.trial_epochs(
                    params.train.models[tune.studies[study].model]),
                "seconds": round(loop.seconds, 1),
                "best_val_accuracy": max((t.value for t in complete), default=None)}
    return out


def markdown(report: dict) -> str:
    """``reports/benchmarks.md``: the machine, the side-by-side table, data stages, pruning."""
    m = report["machine"]
    lines = ["# Benchmarks", "",
             f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, TensorFlow "
             f"{m['tensorflow']}, Keras {m['keras']}, GPU: {', '.join(m['gpus']) or 'none'}. "
             f"Command: `{report['command']}`.", "",
             "## Training: classic Keras recipe against the pipeline", "",
             "Same model, seed and hyperparameters, same epochs, whole training split; "
             "samples/s = training reviews x epochs / seconds of `fit`; validation accuracy of "
             "the last epoch and of the best epoch (best val).", "",
             "| model | epochs | maxlen | classic samples/s | pipeline samples/s | speed-up | "
             "classic val acc | pipeline val acc | difference | classic best val | "
             "pipeline best val | difference (best) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["families"]:
        if "classic" not in r:
            continue
        c, p = r["classic"], r["pipeline"]
        best = ("- | - | -" if "best_val_accuracy" not in c else
                f"{c['best_val_accuracy']:.2%} | {p['best_val_accuracy']:.2%} | "
                f"{r['best_val_accuracy_difference'] * 100:+.2f} pts")
        speedup = f"{r['speedup']:.2f}x"
        if len(r.get("speedups", [])) > 1:
            speedup += f" (median of {', '.join(f'{x:.2f}' for x in r['speedups'])})"
        lines.append(f"| {r['model']} | {r['epochs']} | {r['maxlen']} | "
                     f"{c['samples_per_second']:,.0f} | {p['samples_per_second']:,.0f} | "
                     f"{speedup} | {c['val_accuracy']:.2%} | {p['val_accuracy']:.2%} | "
                     f"{r['val_accuracy_difference'] * 100:+.2f} pts | {best} |")
    if report.get("paths"):
        pm = report.get("paths_machine", m)
        lines += ["", "## Training: the previous pipeline path against the new one", "",
                  f"Measured with `{report['paths_command']}` on {pm['cores']} cores "
                  f"({pm['cpu']}). Previous: the model sections of `params.yaml` at "
                  f"{report['previous']}, one process with TensorFlow's default threads (as the "
                  "seeds and tune stages trained then). New: this `params.yaml`, trained as those "
                  "stages train now: `compute.workers` processes side by side (seeds train.seed, "
                  "+1, ...), each with its share of threads; samples/s of the processes together "
                  "(every review they trained on over the time from the first fit's start to the "
                  "last one's end) and per process. Same epochs, whole training split, no early "
                  "stopping; validation accuracy of the last and the best epoch (new: the "
                  "train.seed process; the others in the JSON).", "",
                  "| model | epochs | previous batch, lr | previous samples/s | new batch, lr | "
                  "workers x threads | new samples/s | per process | speed-up | previous val acc "
                  "(best) | new val acc (best) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in report["paths"]:
            o, n = r["previous"], r["new"]
            lines.append(
                f"| {r['model']} | {r['epochs']} | {o['batch_size']}, {o['learning_rate']:g} | "
                f"{o['samples_per_second']:,.0f} | {n['batch_size']}, {n['learning_rate']:g} | "
                f"{n['workers']} x {n['threads']} | {n['samples_per_second']:,.0f} | "
                f"{n['per_process_samples_per_second']:,.0f} | {r['speedup']:.2f}x | "
                f"{o['val_accuracy']:.2%} ({o['best_val_accuracy']:.2%}) | "
                f"{n['val_accuracy']:.2%} ({n['best_val_accuracy']:.2%}) |")
    if report.get("data_stages"):
        total = sum(report["data_stages"].values())
        lines += ["", "## Data stages", "",
                  "| stage | seconds |", "|---|---|",
                  *[f"| {k} | {v:.1f} |" for k, v in report["data_stages"].items()],
                  f"| **together** | **{total:.1f}** |"]
    if report.get("noop_repro_seconds") is not None:
        runs = report["noop_repro_seconds"]
        lines += ["", f"No-op `dvc repro` (everything up to date): median "
                      f"{statistics.median(runs):.1f} s of {len(runs)} runs "
                      f"({', '.join(f'{x:.1f}' for x in runs)} s)."]
    if report.get("pruning"):
        lines += ["", f"## Pruning ({report['pruning_study']})", "",
                  "| pruner | trials | pruned | epochs run / budget | epochs saved | seconds | "
                  "best val acc |", "|---|---|---|---|---|---|---|"]
        for pruner, r in report["pruning"].items():
            saved = 1 - r["epochs_run"] / r["epochs_budget"] if r["epochs_budget"] else 0.0
            best = "-" if r["best_val_accuracy"] is None else f"{r['best_val_accuracy']:.2%}"
            lines.append(f"| {pruner} | {r['trials']} | {r['pruned']} | {r['epochs_run']} / "
                         f"{r['epochs_budget']} | {saved:.0%} | {r['seconds']:.0f} | {best} |")
    return "\n".join(lines) + "\n"


ROOT = Path(__file__).resolve().parents[1]
# Measurements written by hand (one-off scripts) below this heading survive a rerun of the tool.
HAND_WRITTEN = "## Levers measured that do not pay"


def with_hand_written(text: str, existing: Path) -> str:
    """``text`` (this run's report) followed by the hand-written section of the report at
    ``existing``, from its :data:`HAND_WRITTEN` heading to the end (if it has one)."""
    old = existing.read_text(encoding="utf-8") if existing.is_file() else ""
    start = old.find(HAND_WRITTEN)
    return text if start < 0 else f"{text}\n{old[start:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, default=Path("data/vectorized"))
    parser.add_argument("--models", nargs="+", help="keys of train.models (default: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--study", default="lstm", help="tune.studies key for pruning")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1,
                        help="comparisons per family; the table shows the median speed-up")
    parser.add_argument("--update", action="store_true",
                        help="keep the families and sections of the existing report that this "
                             "run does not measure")
    parser.add_argument("--previous", default="4e51426", metavar="REV",
                        help="git revision whose params.yaml is the previous path ('' = none)")
    parser.add_argument("--skip-classic", action="store_true", help="no classic-recipe side")
    parser.add_argument("--skip-data", action="store_true")
    parser.add_argument("--skip-pruning", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks.md"))
    args = parser.parse_args()
    params = load_params(args.params)
    command = " ".join(["python tools/benchmark.py", *sys.argv[1:]])
    report = {"command": command, "machine": machine(), "families": []}
    previous = args.out.with_suffix(".json")
    if args.update and previous.is_file():  # keep what this run does not measure again
        earlier_report = read_json(previous, "benchmark report")
        if args.skip_classic:  # the classic table keeps its machine and command
            report = earlier_report
        else:
            report = {**earlier_report, "machine": report["machine"],
                      "command": f"{earlier_report['command']}`, then `{command}"}
    models = args.models or list(params.train.models)
    if not args.skip_classic:
        report["families"] = [f for f in report["families"] if f["model"] not in models]
        for name in models:
            repeats = []
            for _ in range(args.repeats):
                repeats.append(compare_family(params, name, args.data, args.epochs))
                print(f"benchmark {name}: {repeats[-1]['speedup']:.2f}x, val accuracy "
                      f"{repeats[-1]['val_accuracy_difference'] * 100:+.2f} pts", flush=True)
            report["families"].append(median_repeat(repeats))
    if args.previous:
        earlier = previous_sections(args.previous)
        report |= {"previous": args.previous, "paths_command": command,
                   "paths_machine": machine()}
        report["paths"] = [r for r in report.get("paths", []) if r["model"] not in models]
        for name in models:
            repeats = []
            for _ in range(args.repeats):
                repeats.append(compare_paths(params, name, args.data, args.epochs,
                                             earlier[name]))
                print(f"benchmark {name}: new path {repeats[-1]['speedup']:.2f}x the previous",
                      flush=True)
            report["paths"].append(median_repeat(repeats))
    order = list(params.train.models)
    for key in ("families", "paths"):
        report.get(key, []).sort(key=lambda f: order.index(f["model"]) if f["model"] in order
                                 else 99)
    if not args.skip_data:
        report["data_stages"] = data_stage_seconds(ROOT)
        report["noop_repro_seconds"] = noop_repro_seconds(ROOT)
    if not args.skip_pruning:
        report["pruning_study"] = f"{args.study}, {args.trials} trials"
        report["pruning"] = pruning_comparison(params, args.study, args.data, args.trials)
    write_json(args.out.with_suffix(".json"), report)
    text = markdown(report)
    write_text(args.out, with_hand_written(text, args.out))
    print(text)


if __name__ == "__main__":
    stage_main(main)
