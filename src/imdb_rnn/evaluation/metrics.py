"""Test-split metrics shared by every model (neural, TF-IDF reference, null model) and their files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from imdb_rnn.io import atomic_paths, write_json

# Keep the ROC curve file small enough for git: at most this many points.
ROC_POINTS = 200


TEST_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray,
                           threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1, ROC AUC, log loss and the confusion matrix."""
    labels = np.asarray(labels).astype(int)
    predicted = (probabilities >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    clipped = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return {
        "reviews": int(len(labels)),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probabilities)),
        "log_loss": float(skm.log_loss(labels, clipped, labels=[0, 1])),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def roc_points(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """ROC curve (fpr, tpr, threshold), thinned to at most ROC_POINTS rows."""
    fpr, tpr, thresholds = skm.roc_curve(labels, probabilities, drop_intermediate=True)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).round().astype(int))
    # roc_curve's first threshold is +inf; JSON and CSV readers prefer a finite number.
    return pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep],
                         "threshold": np.minimum(thresholds[keep], 1.0)})


def predictions_table(reviews: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                      threshold: float = 0.5) -> pd.DataFrame:
    """One row per test review: its key, true label, probability and predicted label."""
    return pd.DataFrame({"review": reviews, "label": np.asarray(labels).astype(int),
                         "probability": probabilities.astype(np.float32),
                         "predicted": (probabilities >= threshold).astype(int)})


@dataclass(frozen=True)
class EvaluationPaths:
    """Where one model's evaluation goes."""

    metrics_json: Path
    roc_csv: Path
    predictions_csv: Path


def write_evaluation(result: dict, reviews: np.ndarray, labels: np.ndarray,
                     probabilities: np.ndarray, *, threshold: float, paths: EvaluationPaths) -> None:
    """Write the metrics JSON, the ROC CSV and the per-review predictions, all or none."""
    with atomic_paths(paths.predictions_csv, paths.roc_csv, paths.metrics_json) as tmps:
        predictions_table(reviews, labels, probabilities, threshold).to_csv(tmps[0], index=False)
        roc_points(labels, probabilities).to_csv(tmps[1], index=False, float_format="%.5f")
        write_json(tmps[2], result)


def tracked_metrics(result: dict) -> dict[str, float]:
    """The numbers of a result as MLflow metrics: test-split metrics get a ``test_`` prefix.

    The same names for every model (neural, reference, null), so the compare view lines them up.
    """
    return {(f"test_{k}" if k in TEST_METRICS else k): v for k, v in result.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "reviews"}
