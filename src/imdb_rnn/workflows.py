"""What the train, evaluate and reference stages do, as plain functions over paths and params."""

from __future__ import annotations

import io
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_rnn import plots, tracking
from imdb_rnn.errors import PipelineError
from imdb_rnn.evaluation import write_evaluation
from imdb_rnn.io import atomic_path, read_json, write_json
from imdb_rnn.params import Params
from imdb_rnn.vectorize import VOCAB_FILE, load_sequences, load_vocabulary

MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
RUN_FILE = "run.json"
DATA_DIR = "data/vectorized"  # as declared in dvc.yaml; used only to look up its DVC hash


def model_section(params: Params, name: str):
    """The ``train.models.NAME`` section; an unknown name lists the valid ones."""
    try:
        return params.train.models[name]
    except KeyError:
        raise PipelineError(f"params.yaml: train.models has no model {name!r}; valid: "
                            f"{', '.join(params.train.models)}") from None


def run_params(params: Params, name: str) -> dict:
    """Every resolved param of one training run, flat, with the same names for every family."""
    section = model_section(params, name)
    return {
        "model": name,
        **section.model_dump(),
        "seed": params.train.seed,
        "monitor": params.train.monitor,
        "patience": params.train.patience,
        "max_features": params.vectorize.max_features,
        "lowercase": params.preprocess.lowercase,
        "punctuation": params.preprocess.punctuation,
        "split_seed": params.preprocess.split_seed,
        "val_fraction": params.preprocess.val_fraction,
    }


def run_tags(name: str, family: str, stage: str) -> dict[str, str]:
    return {"model": name, "family": family, "stage": stage,
            "git_commit": tracking.git_commit(), "data_md5": tracking.dvc_hash(DATA_DIR)}


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


@dataclass(frozen=True)
class EvaluationPaths:
    metrics_json: Path
    roc_csv: Path
    predictions_csv: Path


def evaluate(params: Params, name: str, model_dir: Path, data_dir: Path,
             paths: EvaluationPaths) -> dict:
    """Evaluate a trained model on the whole test split; log the results to its training run."""
    from imdb_rnn.models import load_model
    from imdb_rnn.training import InputShape, predict_probabilities

    experiment_id = tracking.connect(params.mlflow)
    run_id = read_json(model_dir / RUN_FILE)["run_id"]
    preprocessing = read_json(model_dir / PREPROCESSING_FILE)
    model = load_model(model_dir / MODEL_FILE)
    test = load_sequences(data_dir / "test.npz")
    shape = InputShape(preprocessing["maxlen"], preprocessing["padding"],
                       preprocessing["truncating"], preprocessing["fixed_length"])
    predict_probabilities(model, test.subset(np.arange(min(len(test), 256))), shape,
                          params.evaluate.batch_size)  # warm-up: tracing is not throughput
    start = time.perf_counter()
    probabilities = predict_probabilities(model, test, shape, params.evaluate.batch_size)
    seconds = time.perf_counter() - start
    extra = {"predict_seconds": round(seconds, 2),
             "reviews_per_second": round(len(test) / seconds, 1)}
    result = write_evaluation(name, test.reviews, test.labels, probabilities,
                              threshold=params.evaluate.threshold, extra=extra,
                              metrics_path=paths.metrics_json, roc_path=paths.roc_csv,
                              predictions_path=paths.predictions_csv)
    _log_evaluation(experiment_id, name, result, paths, run_id=run_id)
    return result


def _log_evaluation(experiment_id: str, name: str, result: dict, paths: EvaluationPaths, *,
                    run_id: str) -> None:
    with tracking.run(experiment_id, name, run_id=run_id):
        tracking.log_metrics({f"test_{k}": v for k, v in result.items()
                              if isinstance(v, (int, float)) and k != "reviews"})
        figure = plots.confusion_matrix(result["confusion"], f"{name}: test confusion")
        tracking.log_figure(figure, "confusion_matrix.png")
        plots.close(figure)
        tracking.log_artifact(paths.roc_csv, artifact_path="evaluation")
        tracking.log_artifact(paths.metrics_json, artifact_path="evaluation")


def reference(params: Params, table_path: Path, out_dir: Path, predictions_dir: Path) -> dict:
    """Fit TF-IDF + logistic regression and the majority-class null model on train; test them."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rp = params.reference
    experiment_id = tracking.connect(params.mlflow)
    table = pd.read_parquet(table_path, columns=["review", "split", "label", "text"])
    train = table[table["split"] == "train"]
    test = table[table["split"] == "test"]
    # Same tokens as the neural models: the standardised text split on spaces.
    pipeline = make_pipeline(
        TfidfVectorizer(token_pattern=None, tokenizer=str.split, lowercase=False,
                        ngram_range=(1, rp.ngram_max), min_df=rp.min_df,
                        max_features=rp.max_features, sublinear_tf=True),
        LogisticRegression(C=rp.C, max_iter=1000, random_state=rp.seed),
    )
    results = {}
    start = time.perf_counter()
    pipeline.fit(train["text"], train["label"])
    fit_seconds = time.perf_counter() - start
    positive_rate = float(train["label"].mean())
    models = {
        "tfidf_logreg": (lambda texts: pipeline.predict_proba(texts)[:, 1], fit_seconds,
                         {"C": rp.C, "ngram_max": rp.ngram_max, "min_df": rp.min_df,
                          "max_features": rp.max_features, "seed": rp.seed}),
        # Always the training base rate: the accuracy any model must beat.
        "majority": (lambda texts: np.full(len(texts), positive_rate), 0.0,
                     {"positive_rate": positive_rate}),
    }
    for name, (predict, seconds, model_params) in models.items():
        with tracking.run(experiment_id, name, tags=run_tags(name, name, "reference")):
            tracking.log_params({"model": name, "family": name, **model_params})
            start = time.perf_counter()
            probabilities = np.asarray(predict(test["text"]), dtype=np.float64)
            predict_seconds = time.perf_counter() - start
            extra = {"train_seconds": round(seconds, 2),
                     "reviews_per_second": round(len(test) / max(predict_seconds, 1e-9), 1)}
            paths = EvaluationPaths(out_dir / name / "metrics.json", out_dir / name / "roc.csv",
                                    predictions_dir / name / "predictions.csv")
            results[name] = write_evaluation(
                name, test["review"].to_numpy(), test["label"].to_numpy(), probabilities,
                threshold=params.evaluate.threshold, extra=extra,
                metrics_path=paths.metrics_json, roc_path=paths.roc_csv,
                predictions_path=paths.predictions_csv)
            tracking.log_metrics({f"test_{k}": v for k, v in results[name].items()
                                  if isinstance(v, (int, float)) and k != "reviews"})
    return results


def describe(result: dict) -> str:
    """One line of a result for the terminal."""
    return json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                       for k, v in result.items() if not isinstance(v, dict)})
