"""The `train` stage: fit one model section, log the MLflow run, then save its folder and history."""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from imdb_rnn import plots, tracking
from imdb_rnn.embed import initial_embedding
from imdb_rnn.artifacts import (MODEL_FILE, PREPROCESSING_FILE, RUN_FILE, model_section,
                                run_params)
from imdb_rnn.io import atomic_path, atomic_paths, write_json
from imdb_rnn.params import ModelSection, Params
from imdb_rnn.vectorize import VOCAB_FILE, load_sequences, load_vocabulary


@dataclass(frozen=True)
class TrainPaths:
    data_dir: Path
    model_dir: Path
    history_csv: Path
    metrics_json: Path


def train(params: Params, name: str, paths: TrainPaths, *, section: ModelSection | None = None,
          experiment: str | None = None, stage: str | None = None,
          extra_tags: Mapping[str, str] | None = None) -> dict:
    """Train model ``name`` on the train split (early stopping on val), log it, save it.

    By default the model is ``train.models.NAME``; the tune stage passes its best section
    (``section``), its own MLflow ``experiment``, ``stage`` name and tags.
    Outputs are moved into place only after the MLflow run is complete, so a failure anywhere
    leaves no output that looks finished.
    """
    from imdb_rnn.training import input_shape_for, train_model

    section = section or model_section(params, name)
    experiment_id = tracking.connect(params.mlflow, experiment)  # fail now, not after training
    train_seqs = load_sequences(paths.data_dir / "train.npz")
    val_seqs = load_sequences(paths.data_dir / "val.npz")
    vocabulary = load_vocabulary(paths.data_dir / VOCAB_FILE)
    resolved = run_params(params, name, section)
    tags = tracking.run_tags(name, section.family, stage or f"train@{name}", paths.data_dir)
    tags |= dict(extra_tags or {})
    with tracking.run(experiment_id, name, tags=tags) as run_id, \
            atomic_path(paths.model_dir, directory=True) as model_tmp, \
            atomic_paths(paths.history_csv, paths.metrics_json) as (history_tmp, metrics_tmp):
        tracking.log_params(resolved)
        matrix, coverage = initial_embedding(section, vocabulary, params.train.seed)
        result = train_model(section, train_seqs, val_seqs, vocab_size=len(vocabulary),
                             seed=params.train.seed, monitor=params.train.monitor,
                             patience=params.train.patience, embedding_matrix=matrix)
        best = result.history[result.best_epoch - 1]
        summary = {
            "model": name, "family": section.family,
            "params_count": int(result.model.count_params()),
            "epochs": len(result.history), "best_epoch": result.best_epoch,
            "best_val_accuracy": best["val_accuracy"], "best_val_loss": best["val_loss"],
            "train_seconds": round(result.seconds, 2),
            "pretrained_coverage": coverage,
            "train_samples_per_second": round(
                result.train_samples * len(result.history) / result.seconds, 1),
        }
        text_summary = io.StringIO()
        result.model.summary(print_fn=lambda line, **_: text_summary.write(line + "\n"))
        shape = input_shape_for(section)
        result.model.save(model_tmp / MODEL_FILE)
        shutil.copyfile(paths.data_dir / VOCAB_FILE, model_tmp / VOCAB_FILE)
        write_json(model_tmp / PREPROCESSING_FILE, {
            "lowercase": params.preprocess.lowercase,
            "punctuation": params.preprocess.punctuation,
            "maxlen": shape.maxlen, "padding": shape.padding,
            "truncating": shape.truncating, "fixed_length": shape.fixed_length,
            "family": section.family, "params": resolved,
        })
        (model_tmp / "summary.txt").write_text(text_summary.getvalue(), encoding="utf-8")
        write_json(model_tmp / RUN_FILE, {"run_id": run_id,
                                          "tracking_uri": tracking.tracking_uri(params.mlflow)})
        tracking.log_history(result.history)
        tracking.log_metrics({k: v for k, v in summary.items()
                              if isinstance(v, (int, float)) and k != "epochs"}
                             | {"epochs_trained": summary["epochs"]})
        tracking.log_text(text_summary.getvalue(), "model_summary.txt")
        figure = plots.learning_curves(result.history, f"{name} ({section.family})")
        tracking.log_figure(figure, "learning_curves.png")
        plots.close(figure)
        for file in (MODEL_FILE, VOCAB_FILE, PREPROCESSING_FILE):
            tracking.log_artifact(model_tmp / file, artifact_path="model")
        pd.DataFrame(result.history).to_csv(history_tmp, index=False, float_format="%.5f")
        write_json(metrics_tmp, summary)
    return summary
