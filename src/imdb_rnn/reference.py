"""The `reference` stage: TF-IDF + logistic regression and a majority-class null model.

Both are fitted on the same training split as the neural models and evaluated on the same test
split in the same way, so they line up in the leaderboard and in MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_rnn import tracking
from imdb_rnn.artifacts import read_table
from imdb_rnn.evaluation import (EvaluationPaths, classification_metrics, tracked_metrics,
                                 write_evaluation)
from imdb_rnn.params import Params, ReferenceParams

REFERENCE_MODELS = ("tfidf_logreg", "majority")


def fit_tfidf_logreg(texts: pd.Series, labels: pd.Series, rp: ReferenceParams):
    """TF-IDF over the standardised tokens (the neural models' tokens), logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(token_pattern=None, tokenizer=str.split, lowercase=False,
                        ngram_range=(1, rp.ngram_max), min_df=rp.min_df,
                        max_features=rp.max_features, sublinear_tf=True),
        LogisticRegression(C=rp.C, max_iter=1000, random_state=rp.seed),
    )
    return pipeline.fit(texts, labels)


def reference(params: Params, table_path: Path, out_dir: Path, predictions_dir: Path) -> dict:
    """Fit both reference models on train, evaluate on test, log runs, then write the files."""
    rp = params.reference
    experiment_id = tracking.connect(params.mlflow)
    table = read_table(table_path, ["review", "split", "label", "text"])
    train = table[table["split"] == "train"]
    test = table[table["split"] == "test"]
    start = time.perf_counter()
    pipeline = fit_tfidf_logreg(train["text"], train["label"], rp)
    fit_seconds = time.perf_counter() - start
    positive_rate = float(train["label"].mean())
    models: dict[str, tuple[Callable[[pd.Series], np.ndarray], float, dict]] = {
        "tfidf_logreg": (lambda texts: pipeline.predict_proba(texts)[:, 1], fit_seconds,
                         {"tfidf_C": rp.C, "tfidf_ngram_max": rp.ngram_max,
                          "tfidf_min_df": rp.min_df, "tfidf_max_features": rp.max_features,
                          "seed": rp.seed}),
        # Always the training base rate: the accuracy any model must beat.
        "majority": (lambda texts: np.full(len(texts), positive_rate), 0.0,
                     {"positive_rate": positive_rate}),
    }
    evaluated = {}
    for name, (predict, train_seconds, model_params) in models.items():
        start = time.perf_counter()
        probabilities = np.asarray(predict(test["text"]), dtype=np.float64)
        seconds = max(time.perf_counter() - start, 1e-9)
        result = {"model": name,
                  **classification_metrics(test["label"].to_numpy(), probabilities,
                                           params.evaluate.threshold),
                  "train_seconds": round(train_seconds, 2),
                  "reviews_per_second": round(len(test) / seconds, 1)}
        evaluated[name] = (result, probabilities, model_params)
    for name, (result, _, model_params) in evaluated.items():
        tags = tracking.run_tags(name, name, "reference", table_path)
        with tracking.run(experiment_id, name, tags=tags):
            tracking.log_params({"model": name, "family": name, **model_params})
            tracking.log_metrics(tracked_metrics(result))
    for name, (result, probabilities, _) in evaluated.items():
        write_evaluation(result, test["review"].to_numpy(), test["label"].to_numpy(),
                         probabilities, threshold=params.evaluate.threshold,
                         paths=EvaluationPaths(out_dir / name / "metrics.json",
                                               out_dir / name / "roc.csv",
                                               predictions_dir / name / "predictions.csv"))
    return {name: result for name, (result, _, _) in evaluated.items()}
