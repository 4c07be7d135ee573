"""The `reference` stage: TF-IDF + logistic regression, NBSVM and a majority-class null model.

Both are fitted on the same training split as the neural models and evaluated on the same test
split in the same way, so they line up in the leaderboard and in MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_rnn.data.preprocess import read_table
from imdb_rnn.data.vectorize import log_count_ratio
from imdb_rnn.evaluation.metrics import classification_metrics
from imdb_rnn.config.params import NbsvmParams, Params, ReferenceParams

REFERENCE_MODELS = ("tfidf_logreg", "nbsvm", "majority")


def tfidf_logreg_weights(pipeline: Any, *, lowercase: bool, punctuation: str) -> dict:
    """The fitted TF-IDF + logistic regression ``pipeline`` as plain data: its terms in column
    order, their idf, the coefficients and intercept, and the text settings it was fitted with
    (what its logged model scores raw text with: imdb_rnn.tracking.served.save_reference)."""
    vectorizer, logreg = pipeline.steps[0][1], pipeline.steps[-1][1]
    if vectorizer.norm != "l2" or list(logreg.classes_) != [0, 1]:
        raise ValueError("the reference export expects L2-normed TF-IDF and labels 0/1")
    return {"terms": sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get),
            "idf": vectorizer.idf_, "coef": logreg.coef_[0],
            "intercept": float(logreg.intercept_[0]),
            "settings": {"lowercase": lowercase, "punctuation": punctuation,
                         "ngram_max": vectorizer.ngram_range[1],
                         "sublinear_tf": bool(vectorizer.sublinear_tf)}}


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


class Nbsvm:
    """NBSVM as NB-weighted logistic regression (Wang & Manning 2012; Mesnil et al. 2014 for
    trigrams): binary n-gram features of the standardised tokens, each column scaled by the
    log-count ratio r = log((p / |p|1) / (q / |q|1)), p and q the positive and negative
    reviews' feature counts plus ``alpha``; an L2 logistic regression on the scaled features."""

    def __init__(self, nb: NbsvmParams, seed: int) -> None:
        self.nb = nb
        self.seed = seed

    def fit(self, texts: pd.Series, labels: pd.Series) -> Nbsvm:
        from scipy import sparse
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer = CountVectorizer(token_pattern=None, tokenizer=str.split,
                                          lowercase=False, binary=True,
                                          ngram_range=(1, self.nb.ngram_max))
        x = self.vectorizer.fit_transform(texts)
        y = np.asarray(labels)
        self.ratio = sparse.diags(log_count_ratio(np.asarray(x[y == 1].sum(axis=0)).ravel(),
                                                  np.asarray(x[y == 0].sum(axis=0)).ravel(),
                                                  self.nb.alpha))
        self.logreg = LogisticRegression(C=self.nb.C, solver="liblinear", dual=True,
                                         max_iter=1000, random_state=self.seed)
        self.logreg.fit(x @ self.ratio, y)
        return self

    def predict_proba(self, texts: pd.Series) -> np.ndarray:
        return self.logreg.predict_proba(self.vectorizer.transform(texts) @ self.ratio)

    @property
    def features(self) -> int:
        return len(self.vectorizer.vocabulary_)


@dataclass(frozen=True)
class Scored:
    """One reference model on the test split."""

    result: dict  # test metrics, training seconds, throughput
    probabilities: np.ndarray
    params: dict  # what to record with it
    estimator: Any = None  # the fitted pipeline over standardised text, to log


def score_references(params: Params, table_path: Path
                     ) -> tuple[dict[str, Scored], np.ndarray, np.ndarray]:
    """Fit the reference models on train and score the test split.

    Returns the scored models by name, and the test reviews' keys and labels.
    """
    rp = params.reference
    table = read_table(table_path, ["review", "split", "label", "text"])
    train = table[table["split"] == "train"]
    test = table[table["split"] == "test"]
    start = time.perf_counter()
    pipeline = fit_tfidf_logreg(train["text"], train["label"], rp)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    nbsvm = Nbsvm(rp.nbsvm, rp.seed).fit(train["text"], train["label"])
    nbsvm_seconds = time.perf_counter() - start
    positive_rate = float(train["label"].mean())
    models: dict[str, tuple[Callable[[pd.Series], np.ndarray], float, dict]] = {
        "tfidf_logreg": (lambda texts: pipeline.predict_proba(texts)[:, 1], fit_seconds,
                         {"tfidf_C": rp.C, "tfidf_ngram_max": rp.ngram_max,
                          "tfidf_min_df": rp.min_df, "tfidf_max_features": rp.max_features,
                          "seed": rp.seed}),
        "nbsvm": (lambda texts: nbsvm.predict_proba(texts)[:, 1], nbsvm_seconds,
                  {"nbsvm_ngram_max": rp.nbsvm.ngram_max, "nbsvm_alpha": rp.nbsvm.alpha,
                   "nbsvm_C": rp.nbsvm.C, "nbsvm_features": nbsvm.features, "seed": rp.seed}),
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
        estimator = pipeline if name == "tfidf_logreg" else None
        evaluated[name] = Scored(result, probabilities, model_params, estimator)
    return evaluated, test["review"].to_numpy(), test["label"].to_numpy()
