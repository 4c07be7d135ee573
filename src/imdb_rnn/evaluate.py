"""The `evaluate` stage: test-split predictions of a trained model, its metrics and files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from imdb_rnn import plots, tracking
from imdb_rnn.artifacts import MODEL_FILE, PREPROCESSING_FILE, RUN_FILE
from imdb_rnn.evaluation import EvaluationPaths, write_evaluation
from imdb_rnn.io import read_json
from imdb_rnn.params import Params
from imdb_rnn.vectorize import load_sequences


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
                              threshold=params.evaluate.threshold, extra=extra, paths=paths)
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


