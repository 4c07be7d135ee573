"""Test-split metrics: exact values on small hand-made predictions, and the written files."""

import json

import numpy as np
import pandas as pd
import pytest

from imdb_rnn.evaluation.metrics import (ROC_POINTS, EvaluationPaths, classification_metrics, roc_points,
                                 tracked_metrics, write_evaluation)


def test_metrics_exact():
    labels = np.array([1, 1, 0, 0])
    probabilities = np.array([0.9, 0.4, 0.6, 0.1])
    m = classification_metrics(labels, probabilities)
    assert m["accuracy"] == 0.5
    assert m["confusion"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert m["precision"] == m["recall"] == m["f1"] == 0.5
    assert m["roc_auc"] == 0.75
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.4, 0.9])))


def test_roc_is_thinned():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 5000)
    roc = roc_points(labels, rng.random(5000))
    assert len(roc) <= ROC_POINTS
    assert roc["fpr"].iloc[0] == 0 and roc["tpr"].iloc[-1] == 1
    assert np.isfinite(roc["threshold"]).all()


def test_write_evaluation(tmp_path):
    labels, probabilities = np.array([0, 1]), np.array([0.2, 0.7])
    result = {"model": "m", **classification_metrics(labels, probabilities)}
    write_evaluation(result, np.array(["a", "b"]), labels, probabilities, threshold=0.5,
                     paths=EvaluationPaths(tmp_path / "m.json", tmp_path / "roc.csv",
                                           tmp_path / "p" / "pred.csv"))
    assert json.loads((tmp_path / "m.json").read_text()) == result
    predictions = pd.read_csv(tmp_path / "p" / "pred.csv")
    assert predictions.columns.tolist() == ["review", "label", "probability", "predicted"]
    assert predictions["predicted"].tolist() == [0, 1]


def test_tracked_metrics_share_names_across_models():
    neural = {"model": "lstm", "reviews": 2, "accuracy": 0.9, "roc_auc": 0.95,
              "confusion": {"tn": 1}, "reviews_per_second": 100.0}
    reference = {"model": "tfidf", "reviews": 2, "accuracy": 0.9, "train_seconds": 3.0}
    assert tracked_metrics(neural) == {"test_accuracy": 0.9, "test_roc_auc": 0.95,
                                       "reviews_per_second": 100.0}
    assert tracked_metrics(reference) == {"test_accuracy": 0.9, "train_seconds": 3.0}
