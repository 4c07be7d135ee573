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


def compare_family(params: Params, name: str, data_dir: Path, epochs: int, *,
                   previous: dict | None = None, classic: bool = True) -> dict:
    """For model ``name``, ``epochs`` epochs each on the whole training split, same seed:

    - classic: the textbook recipe (every review padded to maxlen, ``model.fit`` defaults);
    - previous (with ``previous``, a section of an earlier params.yaml): the pipeline path as it
      was, one process with TensorFlow's default threads;
    - pipeline: this params.yaml's section as the seeds and tune stages train it now: ``compute``
      worker processes side by side (seeds train.seed, +1, ...), samples/s of them together.
    """
    section = params.train.models[name].model_copy(update={"epochs": epochs})
    train, val = (load_sequences(data_dir / f"{s}.npz") for s in ("train", "val"))
    vocabulary = load_vocabulary(data_dir / VOCAB_FILE)
    matrix, _ = initial_embedding(section, vocabulary, params.train.seed)
    kwargs = {"vocab_size": len(vocabulary), "seed": params.train.seed, "embedding": matrix}
    out = {"model": name, "family": section.family, "epochs": epochs, "maxlen": section.maxlen,
           "train_reviews": len(train), "batch_size": section.batch_size,
           "learning_rate": section.learning_rate}
    if classic:
        out["classic"] = side(recipe_for(section, feed="classic"), train, val, **kwargs)
    if previous is not None:
        old = _section(previous | {"epochs": epochs})
        out["previous"] = side(recipe_for(old), train, val, **kwargs) | {
            "batch_size": old.batch_size, "learning_rate": old.learning_rate}
    the_plan = compute.plan(params.compute)
    jobs = [(section.model_dump(), data_dir, epochs, params.train.seed + i, params.train.seed)
            for i in range(the_plan.workers)]
    start = time.perf_counter()
    sides = compute.run_parallel(_side_in_worker, jobs, the_plan, f"benchmark {name}")
    # The processes together: every review they trained on, over the time from the first
    # fit's start to the last one's end (the processes' start-up and data loading left out,
    # as in a single fit's figure).
    window = max(s["ended"] for s in sides) - min(s["began"] for s in sides)
    out["pipeline"] = {
        "workers": the_plan.workers, "threads": the_plan.threads,
        "seconds": time.perf_counter() - start,
        "samples_per_second": sum(s["samples"] for s in sides) / window,
        "per_process_samples_per_second": statistics.fmean(s["samples_per_second"]
                                                           for s in sides),
        "val_accuracy": sides[0]["val_accuracy"],
        "best_val_accuracy": sides[0]["best_val_accuracy"],
        "val_accuracies": [s["val_accuracy"] for s in sides]}
    pipeline = out["pipeline"]
    if classic:
        c = out["classic"]
        out |= {"speedup": pipeline["samples_per_second"] / c["samples_per_second"],
                "val_accuracy_difference": pipeline["val_accuracy"] - c["val_accuracy"],
                "best_val_accuracy_difference": (pipeline["best_val_accuracy"]
                                                 - c["best_val_accuracy"])}
    if previous is not None:
        out["speedup_over_previous"] = (pipeline["samples_per_second"]
                                        / out["previous"]["samples_per_second"])
    return out


def median_repeat(results: list[dict]) -> dict:
    """Of repeated comparisons of one family, the one with the median speed-up, listing all.

    A shared 2-core machine swings by a third from minute to minute; repeats (each classic
    then pipeline, back to back) show that spread instead of hiding it in one number.
    """
    key = "speedup_over_previous" if "speedup_over_previous" in results[0] else "speedup"
    if key not in results[0]:
        return results[0]
    ranked = sorted(results, key=lambda r: r[key])
    return {**ranked[(len(ranked) - 1) // 2], "speedups": [r[key] for r in results]}


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
                "epochs_budget": len(trials) * tune.epochs,
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
    moved = [r for r in report["families"] if "previous" in r]
    if moved:
        lines += ["", "## Training: the previous pipeline path against the new one", "",
                  f"Previous: the model sections of `params.yaml` at {report.get('previous')}, "
                  "one process with TensorFlow's default threads (as the seeds and "
                  "tune stages trained then). New: this `params.yaml`, trained as those stages "
                  "train now: `compute.workers` processes side by side (seeds train.seed, +1, "
                  "...), each with its share of threads; samples/s of the processes together, "
                  "and per process. Same epochs, whole training split, no early stopping; "
                  "validation accuracy of the last and the best epoch (new: the train.seed "
                  "process).", "",
                  "| model | epochs | previous batch, lr | previous samples/s | new batch, lr | "
                  "workers x threads | new samples/s | per process | speed-up | previous val acc "
                  "(best) | new val acc (best) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in moved:
            o, p = r["previous"], r["pipeline"]
            lines.append(
                f"| {r['model']} | {r['epochs']} | {o['batch_size']}, {o['learning_rate']:g} | "
                f"{o['samples_per_second']:,.0f} | {r['batch_size']}, {r['learning_rate']:g} | "
                f"{p['workers']} x {p['threads']} | {p['samples_per_second']:,.0f} | "
                f"{p['per_process_samples_per_second']:,.0f} | "
                f"{r['speedup_over_previous']:.2f}x | {o['val_accuracy']:.2%} "
                f"({o['best_val_accuracy']:.2%}) | {p['val_accuracy']:.2%} "
                f"({p['best_val_accuracy']:.2%}) |")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, default=Path("data/vectorized"))
    parser.add_argument("--models", nargs="+", help="keys of train.models (default: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--study", default="lstm_tpe", help="tune.studies key for pruning")
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
        report = {**read_json(previous, "benchmark report"), "machine": report["machine"]}
        report["command"] = f"{report['command']}`, then `{command}"
        again = set(args.models or params.train.models)
        report["families"] = [f for f in report["families"] if f["model"] not in again]
    earlier = previous_sections(args.previous) if args.previous else {}
    report["previous"] = args.previous or None
    for name in args.models or list(params.train.models):
        repeats = []
        for _ in range(args.repeats):
            repeats.append(compare_family(params, name, args.data, args.epochs,
                                          previous=earlier.get(name),
                                          classic=not args.skip_classic))
            print(f"benchmark {name}: " + ", ".join(
                f"{k} {repeats[-1][k]:.2f}x" for k in ("speedup", "speedup_over_previous")
                if k in repeats[-1]), flush=True)
        report["families"].append(median_repeat(repeats))
    order = list(params.train.models)
    report["families"].sort(key=lambda f: order.index(f["model"]) if f["model"] in order else 99)
    if not args.skip_data:
        report["data_stages"] = data_stage_seconds(ROOT)
        report["noop_repro_seconds"] = noop_repro_seconds(ROOT)
    if not args.skip_pruning:
        report["pruning_study"] = f"{args.study}, {args.trials} trials"
        report["pruning"] = pruning_comparison(params, args.study, args.data, args.trials)
    write_json(args.out.with_suffix(".json"), report)
    write_text(args.out, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    stage_main(main)
