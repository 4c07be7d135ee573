"""The `reference` stage: the TF-IDF + logistic regression and majority-class models, recorded."""

from __future__ import annotations

import tempfile
from pathlib import Path

from imdb_rnn.config import Params
from imdb_rnn.evaluation import EvaluationPaths, tracked_metrics, write_evaluation
from imdb_rnn.evaluation.reference import (REFERENCE_MODELS, score_references,
                                            tfidf_logreg_weights)
from imdb_rnn.layout import PREDICTIONS, ROC, TEST_METRICS
from imdb_rnn.tracking import models
from imdb_rnn.tracking import runs as tracking
from imdb_rnn.tracking.served import save_reference


def reference_paths(out_dir: Path, predictions_dir: Path) -> dict[str, EvaluationPaths]:
    """Where each reference model's metrics, ROC points and predictions go."""
    return {name: EvaluationPaths(out_dir / name / TEST_METRICS, out_dir / name / ROC,
                                  predictions_dir / name / PREDICTIONS)
            for name in REFERENCE_MODELS}


def reference(params: Params, table_path: Path, out_dir: Path, predictions_dir: Path) -> dict:
    """Fit both reference models on train, evaluate on test, one run each, then the files.

    ``out_dir``/NAME gets the metrics and ROC points, ``predictions_dir``/NAME the predictions.
    """
    experiment = tracking.connect(params.mlflow)
    scored, reviews, labels = score_references(params, table_path)
    for name, model in scored.items():
        tags = tracking.run_tags(name, name, "reference", table_path, params)
        with experiment.run(name, tags=tags) as run:
            run.log_params({"model": name, "family": name, **model.params})
            # Both splits are rows of the prepared table: the table is the dataset.
            test_data = models.file_dataset(table_path, "imdb-reviews")
            models.log_datasets(run, [(test_data, "training and testing")])
            model_id = None
            if model.estimator is not None:
                with tempfile.TemporaryDirectory() as staging:
                    folder = Path(staging) / "reference"
                    save_reference(folder, **tfidf_logreg_weights(
                        model.estimator, lowercase=params.preprocess.lowercase,
                        punctuation=params.preprocess.punctuation))
                    model_id = models.log_reference(experiment, run, folder, name,
                                                    tags={"model": name, "family": name})
            run.log_metrics(tracked_metrics(model.result), dataset=test_data,
                            model_id=model_id)
    paths = reference_paths(out_dir, predictions_dir)
    for name, model in scored.items():
        write_evaluation(model.result, reviews, labels, model.probabilities,
                         threshold=params.evaluate.threshold, paths=paths[name])
    return {name: model.result for name, model in scored.items()}
