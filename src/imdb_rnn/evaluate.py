"""The `evaluate` stage: test-split predictions of a trained model, its metrics and files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from imdb_rnn import plots, tracking
from imdb_rnn.artifacts import RUN_FILE
from imdb_rnn.evaluation import (EvaluationPaths, classification_metrics, tracked_metrics,
                                 write_evaluation)
from imdb_rnn.io import read_json
from imdb_rnn.params import Params
from imdb_rnn.predict import Predictor
from imdb_rnn.vectorize import load_sequences

# Reviews predicted once before timing, so graph tracing does not count against throughput.
WARMUP_REVIEWS = 256


def evaluate(params: Params, name: str, model_dir: Path, data_dir: Path,
             paths: EvaluationPaths, *, experiment: str | None = None) -> dict:
    """Evaluate a trained model on the whole test split; add the results to its training run."""
    experiment_id = tracking.connect(params.mlflow, experiment)
    run_id = read_json(model_dir / RUN_FILE, "training run file")["run_id"]
    tracking.check_run(run_id)
    predictor = Predictor(model_dir)
    test = load_sequences(data_dir / "test.npz")
    batch_size = params.evaluate.batch_size
    predictor.predict_sequences(test.subset(np.arange(min(len(test), WARMUP_REVIEWS))), batch_size)
    start = time.perf_counter()
    probabilities = predictor.predict_sequences(test, batch_size)
    seconds = time.perf_counter() - start
    result = {"model": name,
              **classification_metrics(test.labels, probabilities, params.evaluate.threshold),
              "predict_seconds": round(seconds, 2),
              "reviews_per_second": round(len(test) / seconds, 1)}
    with tracking.run(experiment_id, name, run_id=run_id):
        tracking.log_metrics(tracked_metrics(result))
        figure = plots.confusion_matrix(result["confusion"], f"{name}: test confusion")
        tracking.log_figure(figure, "confusion_matrix.png")
        plots.close(figure)
        tracking.log_dict(result, "evaluation/metrics.json")
    write_evaluation(result, test.reviews, test.labels, probabilities,
                     threshold=params.evaluate.threshold, paths=paths)
    return result
