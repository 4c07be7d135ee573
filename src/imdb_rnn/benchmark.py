"""Training speed, side by side: the classic Keras recipe against the pipeline's own path.

For each model family, the same model (built from its ``train.models`` section, same seed and
hyperparameters) is trained for the same number of epochs on the whole training split twice:

- **classic**: every review cut and padded to ``maxlen`` as one NumPy array, ``model.fit`` with
  default settings (shuffled batches), as the textbook examples do;
- **pipeline**: ``training.train_model``: a ``tf.data`` pipeline of length-bucketed batches
  padded only to their longest review, prefetched.

Both report training samples per second and the last epoch's validation accuracy. The rest of
the benchmark times the data stages (in a scratch copy of the project), a no-op ``dvc repro``,
and one search with and without pruning.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from imdb_rnn.embed import initial_embedding
from imdb_rnn.params import ModelSection, Params
from imdb_rnn.training import builder_kwargs, compile_model, train_model
from imdb_rnn.vectorize import VOCAB_FILE, Sequences, load_sequences, load_vocabulary

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


def padded(sequences: Sequences, section: ModelSection) -> np.ndarray:
    """The classic input: one (n, maxlen) array, cut and padded as the section says."""
    rows = [sequences.row(i) for i in range(len(sequences))]
    return keras.utils.pad_sequences(rows, maxlen=section.maxlen, padding=section.padding,
                                     truncating=section.truncating, dtype="int32", value=0)


def classic_train(section: ModelSection, train: Sequences, val: Sequences, *, vocab_size: int,
                  seed: int, embedding_matrix: np.ndarray | None) -> dict:
    """``model.fit`` on padded NumPy arrays with default settings; samples/s and val accuracy."""
    from imdb_rnn.models import build_model

    keras.utils.set_random_seed(seed)
    keras.backend.clear_session()
    model = build_model(section.family, vocab_size=vocab_size, **builder_kwargs(section))
    if embedding_matrix is not None:
        model.get_layer("embedding").set_weights([embedding_matrix])
    compile_model(model, optimizer=section.optimizer, learning_rate=section.learning_rate)
    x, y = padded(train, section), train.labels.astype(np.float32)
    xv, yv = padded(val, section), val.labels.astype(np.float32)
    start = time.perf_counter()
    fit = model.fit(x, y, batch_size=section.batch_size, epochs=section.epochs,
                    validation_data=(xv, yv), verbose=2)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "samples_per_second": len(x) * section.epochs / seconds,
            "val_accuracy": float(fit.history["val_accuracy"][-1]),
            "best_val_accuracy": float(max(fit.history["val_accuracy"]))}


def pipeline_train(section: ModelSection, train: Sequences, val: Sequences, *, vocab_size: int,
                   seed: int, embedding_matrix: np.ndarray | None) -> dict:
    """The pipeline's path for the same epochs (no early stopping); samples/s, val accuracy."""
    result = train_model(section, train, val, vocab_size=vocab_size, seed=seed,
                         monitor="val_loss", patience=section.epochs, verbose=2,
                         embedding_matrix=embedding_matrix)
    return {"seconds": result.seconds,
            "samples_per_second": len(train) * len(result.history) / result.seconds,
            "val_accuracy": result.history[-1]["val_accuracy"],
            "best_val_accuracy": max(row["val_accuracy"] for row in result.history)}


def compare_family(params: Params, name: str, data_dir: Path, epochs: int) -> dict:
    """Classic against pipeline for model ``name``, ``epochs`` epochs each, same seed."""
    section = params.train.models[name].model_copy(update={"epochs": epochs})
    train, val = (load_sequences(data_dir / f"{s}.npz") for s in ("train", "val"))
    vocabulary = load_vocabulary(data_dir / VOCAB_FILE)
    matrix, _ = initial_embedding(section, vocabulary, params.train.seed)
    kwargs = {"vocab_size": len(vocabulary), "seed": params.train.seed,
              "embedding_matrix": matrix}
    classic = classic_train(section, train, val, **kwargs)
    pipeline = pipeline_train(section, train, val, **kwargs)
    return {"model": name, "family": section.family, "epochs": epochs, "maxlen": section.maxlen,
            "train_reviews": len(train), "classic": classic, "pipeline": pipeline,
            "speedup": pipeline["samples_per_second"] / classic["samples_per_second"],
            "val_accuracy_difference": pipeline["val_accuracy"] - classic["val_accuracy"],
            "best_val_accuracy_difference": (pipeline["best_val_accuracy"]
                                             - classic["best_val_accuracy"])}


def median_repeat(results: list[dict]) -> dict:
    """Of repeated comparisons of one family, the one with the median speed-up, listing all.

    A shared 2-core machine swings by a third from minute to minute; repeats (each classic
    then pipeline, back to back) show that spread instead of hiding it in one number.
    """
    ranked = sorted(results, key=lambda r: r["speedup"])
    return {**ranked[(len(ranked) - 1) // 2], "speedups": [r["speedup"] for r in results]}


def _timed(args: list[str], cwd: Path) -> float:
    from imdb_rnn.smoke import tool_env

    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=tool_env(), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def data_stage_seconds(root: Path) -> dict[str, float]:
    """Seconds of each data stage, run one by one in a scratch copy of the project."""
    from imdb_rnn.smoke import scratch_project

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
    from imdb_rnn.tune import work

    out = {}
    with tempfile.TemporaryDirectory(prefix="imdb-bench-") as scratch:
        for pruner in (params.tune.pruner, "none"):
            tune = params.tune.model_copy(update={
                "pruner": pruner, "n_trials": n_trials, "timeout": None,
                "storage": f"journal:{scratch}/{pruner}.journal",
                "experiment": "imdb-benchmarks"})
            found, _, _, loop = work(params.model_copy(update={"tune": tune}), study, data_dir)
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
