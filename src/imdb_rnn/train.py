"""The `train` stage: fit one model section, save its folder and history, log the MLflow run."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from imdb_rnn import plots, tracking
from imdb_rnn.artifacts import (MODEL_FILE, PREPROCESSING_FILE, RUN_FILE, model_section,
                                run_params, run_tags)
from imdb_rnn.io import atomic_path, write_json
from imdb_rnn.params import Params
from imdb_rnn.vectorize import VOCAB_FILE, load_sequences, load_vocabulary


@dataclass(frozen=True)
class TrainPaths:
    data_dir: Path
    model_dir: Path
    history_csv: Path
    metrics_json: Path


def train(params: Params, name: str, paths: TrainPaths) -> dict:
    """Train model ``name`` on the train split (early stopping on val), save it, log to MLflow."""
    from imdb_rnn.training import input_shape_for, train_model

    section = model_section(params, name)
    experiment_id = tracking.connect(params.mlflow)  # fail now, not after training
    vocabulary = load_vocabulary(paths.data_dir / VOCAB_FILE)
    train_seqs = load_sequences(paths.data_dir / "train.npz")
    val_seqs = load_sequences(paths.data_dir / "val.npz")
    resolved = run_params(params, name)
    with tracking.run(experiment_id, name, tags=run_tags(name, section.family,
                                                         f"train@{name}")) as run_id:
        tracking.log_params(resolved)
        result = train_model(section, train_seqs, val_seqs, vocab_size=len(vocabulary),
                             seed=params.train.seed, monitor=params.train.monitor,
                             patience=params.train.patience)
        best = result.history[result.best_epoch - 1]
        summary = {
            "model": name, "family": section.family,
            "params_count": int(result.model.count_params()),
            "epochs": len(result.history), "best_epoch": result.best_epoch,
            "best_val_accuracy": best["val_accuracy"], "best_val_loss": best["val_loss"],
            "train_seconds": round(result.seconds, 2),
            "train_samples_per_second": round(
                result.train_samples * len(result.history) / result.seconds, 1),
        }
        text_summary = io.StringIO()
        result.model.summary(print_fn=lambda line, **_: text_summary.write(line + "\n"))
        shape = input_shape_for(section)
        with atomic_path(paths.model_dir, directory=True) as tmp:
            result.model.save(tmp / MODEL_FILE)
            shutil.copyfile(paths.data_dir / VOCAB_FILE, tmp / VOCAB_FILE)
            write_json(tmp / PREPROCESSING_FILE, {
                "lowercase": params.preprocess.lowercase,
                "punctuation": params.preprocess.punctuation,
                "maxlen": shape.maxlen, "padding": shape.padding,
                "truncating": shape.truncating, "fixed_length": shape.fixed_length,
                "family": section.family, "params": resolved,
            })
            (tmp / "summary.txt").write_text(text_summary.getvalue(), encoding="utf-8")
            write_json(tmp / RUN_FILE, {"run_id": run_id,
                                        "tracking_uri": tracking.tracking_uri(params.mlflow)})
        with atomic_path(paths.history_csv) as tmp:
            pd.DataFrame(result.history).to_csv(tmp, index=False, float_format="%.5f")
        write_json(paths.metrics_json, summary)
        tracking.log_history(result.history)
        tracking.log_metrics({k: v for k, v in summary.items()
                              if isinstance(v, (int, float)) and k != "epochs"} |
                             {"epochs_trained": summary["epochs"]})
        tracking.log_text(text_summary.getvalue(), "model_summary.txt")
        figure = plots.learning_curves(result.history, f"{name} ({section.family})")
        tracking.log_figure(figure, "learning_curves.png")
        plots.close(figure)
        for file in (MODEL_FILE, VOCAB_FILE, PREPROCESSING_FILE):
            tracking.log_artifact(paths.model_dir / file, artifact_path="model")
    return summary


