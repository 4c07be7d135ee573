"""The `train` stage: fit one model section, save its folder and history, record one MLflow run."""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from imdb_rnn.config import ModelSection, Params, model_section
from imdb_rnn.data import VOCAB_FILE, initial_embedding, load_sequences, load_vocabulary
from imdb_rnn.evaluation import plots
from imdb_rnn.io import atomic_path, atomic_paths, write_json
from imdb_rnn.modeling import (MODEL_FILE, PREPROCESSING_FILE, RUN_FILE, SUMMARY_FILE, Stopping,
                               TrainResult, fit, recipe_for)
from imdb_rnn.tracking import models
from imdb_rnn.tracking import runs as tracking
from imdb_rnn.redaction import redact_url


@dataclass(frozen=True)
class TrainPaths:
    data_dir: Path
    model_dir: Path
    history_csv: Path
    metrics_json: Path


class LiveEpochs(keras.callbacks.Callback):
    """Log each epoch's metrics to the MLflow run as the epoch ends (step = epoch number), so
    the UI shows a training while it runs; the epoch's seconds follow with the history."""

    def __init__(self, run: tracking.Run) -> None:
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        values = {k: float(v) for k, v in (logs or {}).items()
                  if isinstance(v, int | float | np.floating)}
        self.run.log_metrics(values, step=epoch + 1)


def fit_section(params: Params, section: ModelSection, data_dir: Path, *, seed: int,
                verbose: int | None = None,
                callbacks: Sequence[keras.callbacks.Callback] = ()
                ) -> tuple[TrainResult, float | None]:
    """Fit ``section`` on the training split, early stopping on validation, training seed
    ``seed``; returns the result and the share of the vocabulary the pretrained vectors cover."""
    train = load_sequences(data_dir / "train.npz")
    val = load_sequences(data_dir / "val.npz")
    vocabulary = load_vocabulary(data_dir / VOCAB_FILE)
    matrix, coverage = initial_embedding(section, vocabulary, seed)
    result = fit(recipe_for(section, params.train), train, val, vocab_size=len(vocabulary), seed=seed,
                 stopping=Stopping(params.train.monitor, params.train.patience),
                 embedding=matrix, verbose=verbose, callbacks=callbacks)
    return result, coverage


def training_summary(name: str, section: ModelSection, result: TrainResult,
                     coverage: float | None) -> dict:
    """The training summary a train stage writes (a DVC metric) and logs."""
    best = result.best
    return {
        "model": name, "family": section.family,
        "params_count": int(result.model.count_params()),
        "epochs": len(result.history), "best_epoch": result.best_epoch,
        "best_val_accuracy": best["val_accuracy"], "best_val_loss": best["val_loss"],
        "train_seconds": round(result.seconds, 2),
        "pretrained_coverage": coverage,
        "train_samples_per_second": round(result.samples_per_second, 1),
    }


def save_model_folder(params: Params, section: ModelSection, result: TrainResult,
                      data_dir: Path, folder: Path, resolved: Mapping) -> str:
    """Write what a model folder holds (Keras model, vocabulary, preprocessing settings with
    the resolved ``params``, Keras' summary) into ``folder``; returns the summary's text."""
    text_summary = io.StringIO()
    result.model.summary(print_fn=lambda line, **_: text_summary.write(line + "\n"))
    result.model.save(folder / MODEL_FILE)
    shutil.copyfile(data_dir / VOCAB_FILE, folder / VOCAB_FILE)
    write_json(folder / PREPROCESSING_FILE, {
        "lowercase": params.preprocess.lowercase,
        "punctuation": params.preprocess.punctuation,
        **recipe_for(section).shape.to_json(), "family": section.family, "params": dict(resolved),
    })
    (folder / SUMMARY_FILE).write_text(text_summary.getvalue(), encoding="utf-8")
    return text_summary.getvalue()


def log_model_folder(experiment: tracking.Experiment, run: tracking.Run, folder: Path,
                     name: str, tags: Mapping[str, str]) -> str:
    """Log the model folder ``folder`` as ``run``'s MLflow Model ``name`` and record both in
    its run file (what register reads); returns the logged model's id."""
    model_id = models.log_network(experiment, run, folder,
                                  (MODEL_FILE, VOCAB_FILE, PREPROCESSING_FILE), name, tags=tags)
    # A DVC output (cached, pushed to remotes): the store's URL without its password.
    write_json(folder / RUN_FILE, {"run_id": run.id, "model_id": model_id,
                                   "tracking_uri": redact_url(experiment.uri)})
    return model_id


def train(params: Params, name: str, paths: TrainPaths, *, section: ModelSection | None = None,
          experiment: str | None = None, stage: str | None = None,
          extra_tags: Mapping[str, str] | None = None,
          fitted: tuple[TrainResult, float | None] | None = None) -> dict:
    """Train model ``name`` on the train split (early stopping on val), save it, log its run.

    By default the model is ``train.models.NAME``; the tune stage passes its best section
    (``section``), its own MLflow ``experiment``, ``stage`` name and tags, and, when a trial
    already trained that section exactly as this would (``fitted``: its result and pretrained
    coverage), that model instead of a second fit. Outputs are moved into
    place only after the MLflow run is complete, so a failure anywhere leaves no output that
    looks finished.
    """
    section = section or model_section(params, name)
    mlflow_experiment = tracking.connect(params.mlflow, experiment)  # fail now, not after training
    resolved = tracking.run_params(params, name, section)
    tags = tracking.run_tags(name, section.family, stage or f"train@{name}", paths.data_dir,
                             params)
    tags |= dict(extra_tags or {})
    # The run ends (FINISHED) before the outputs move into place: a store that fails at its
    # end fails the stage with no output written.
    with atomic_path(paths.model_dir, directory=True) as model_tmp, \
            atomic_paths(paths.history_csv, paths.metrics_json) as (history_tmp, metrics_tmp), \
            mlflow_experiment.run(name, tags=tags) as run:
        run.log_params(resolved)
        models.log_splits(run, paths.data_dir, ["train", "val"])
        result, coverage = fitted or fit_section(params, section, paths.data_dir,
                                                 seed=params.train.seed,
                                                 callbacks=[LiveEpochs(run)])
        summary = training_summary(name, section, result, coverage)
        text_summary = save_model_folder(params, section, result, paths.data_dir, model_tmp,
                                         resolved)
        # Trained here: the epochs' metrics were logged live, their seconds are known now.
        run.log_history(result.history if fitted else
                        [{"epoch": r["epoch"], "seconds": r["seconds"]} for r in result.history])
        run.log_metrics({k: v for k, v in summary.items()
                         if isinstance(v, (int, float)) and k != "epochs"}
                        | {"epochs_trained": summary["epochs"]})
        run.log_text(text_summary, "model_summary.txt")
        figure = plots.learning_curves(result.history, f"{name} ({section.family})")
        run.log_figure(figure, "learning_curves.png")
        plots.close(figure)
        # After the metrics: the logged model takes the run's step-0 metrics with it.
        log_model_folder(mlflow_experiment, run, model_tmp, name,
                         tags={"model": name, "family": section.family})
        pd.DataFrame(result.history).to_csv(history_tmp, index=False, float_format="%.5f")
        write_json(metrics_tmp, summary)
    return summary
