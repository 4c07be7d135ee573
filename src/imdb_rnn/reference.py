"""The `reference` stage: TF-IDF + logistic regression and a majority-class null model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_rnn import tracking
from imdb_rnn.artifacts import run_tags
from imdb_rnn.evaluation import EvaluationPaths, write_evaluation
from imdb_rnn.params import Params


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
                threshold=params.evaluate.threshold, extra=extra, paths=paths)
            tracking.log_metrics({f"test_{k}": v for k, v in results[name].items()
                                  if isinstance(v, (int, float)) and k != "reviews"})
    return results


