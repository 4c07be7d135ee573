"""The `evaluate` stage: test-split predictions of a trained model, its metrics and files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from imdb_rnn.config import Params
from imdb_rnn.data import load_sequences
from imdb_rnn.evaluation import (EvaluationPaths, classification_metrics, plots, tracked_metrics,
                                 write_evaluation)
from imdb_rnn.io import read_json
from imdb_rnn.modeling import RUN_FILE, Predictor
from imdb_rnn.tracking import models
from imdb_rnn.tracking import runs as tracking

# Reviews predicted once before timing, so graph tracing does not count against throughput.
WARMUP_REVIEWS = 256


def test_metrics(predictor: Predictor, data_dir: Path, params: Params
                 ) -> tuple[dict, np.ndarray, object]:
    """Metrics of a loaded model on the whole test split, with its probabilities and reviews."""
    test = load_sequences(data_dir / "test.npz")
    batch_size = params.evaluate.batch_size
    predictor.predict_sequences(test.subset(np.arange(min(len(test), WARMUP_REVIEWS))), batch_size)
    start = time.perf_counter()
    probabilities = predictor.predict_sequences(test, batch_size)
    seconds = time.perf_counter() - start
    result = {**classification_metrics(test.labels, probabilities, params.evaluate.threshold),
              "predict_seconds": round(seconds, 2),
              "reviews_per_second": round(len(test) / seconds, 1)}
    return result, probabilities, test


def evaluate(params: Params, name: str, model_dir: Path, data_dir: Path,
             paths: EvaluationPaths, *, experiment: str | None = None) -> dict:
    """Evaluate a trained model on the whole test split and record the results.

    The results go to the model's training run (read from its folder), which keeps its status
    and end time. When this store does not hold that run (the model came from another machine
    through a DVC remote, say), they go to a new run of their own that names it.
    """
    mlflow_experiment = tracking.connect(params.mlflow, experiment)
    run_file = read_json(model_dir / RUN_FILE, "training run file")
    training_run = run_file["run_id"]
    predictor = Predictor(model_dir)
    metrics, probabilities, test = test_metrics(predictor, data_dir, params)
    result = {"model": name, **metrics}
    run = mlflow_experiment.attach(training_run)
    with (tracking.updating(run) if run is not None else
          mlflow_experiment.run(name, tags={"model": name, "run_kind": "evaluation",
                                            "training_run_id": training_run})) as target:
        test_data = models.log_splits(target, data_dir, ["test"])["test"]
        # On the training run, the test metrics are its logged model's too.
        target.log_metrics(tracked_metrics(result), dataset=test_data,
                           model_id=run_file.get("model_id") if run is not None else None)
        figure = plots.confusion_matrix(result["confusion"], f"{name}: test confusion")
        target.log_figure(figure, "confusion_matrix.png")
        plots.close(figure)
        target.log_dict(result, "evaluation/metrics.json")
    write_evaluation(result, test.reviews, test.labels, probabilities,
                     threshold=params.evaluate.threshold, paths=paths)
    return result
