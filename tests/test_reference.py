"""The reference stage on a tiny table: both models scored and recorded, TF-IDF as an MLflow
Model of raw text."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
import pandas as pd

from conftest import ROOT

from imdb_rnn.config.params import load_params
from imdb_rnn.data.text import standardize
from imdb_rnn.pipeline.reference import reference
from imdb_rnn.tracking import runs as tracking
from imdb_rnn.tracking.models import file_md5


def test_tfidf_is_logged_as_a_raw_text_model_with_its_table_and_test_metrics(tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    rows = []
    for split, n in (("train", 40), ("test", 20)):
        for i in range(n):
            words = "Great, LOVED it!<br />" if i % 2 else "awful and dull..."
            rows.append({"review": f"{split}/{i}.txt", "split": split, "label": i % 2,
                         "text": standardize(f"{words} film {i}")})
    table = tmp_path / "reviews.parquet"
    pd.DataFrame(rows).to_parquet(table)
    params = load_params(ROOT / "params.yaml")
    params = params.model_copy(update={
        "reference": params.reference.model_copy(update={"min_df": 1}),
        "mlflow": params.mlflow.model_copy(update={
            "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "baselines"})})
    results = reference(params, table, tmp_path / "reports", tmp_path / "evaluation")
    assert set(results) == {"tfidf_logreg", "nbsvm", "majority"}
    # NBSVM separates the toy reviews, as TF-IDF does; the null model cannot
    assert results["nbsvm"]["accuracy"] == 1.0 and results["majority"]["accuracy"] == 0.5
    assert runs_params_nbsvm(params, tmp_path)["nbsvm_ngram_max"] == str(
        params.reference.nbsvm.ngram_max)
    experiment = tracking.connect(params.mlflow)
    runs = {r.info.run_name: r for r in experiment.runs("")}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    (dataset,) = runs["tfidf_logreg"].inputs.dataset_inputs
    assert dataset.dataset.name == "imdb-reviews" and dataset.dataset.digest == file_md5(table)
    (logged,) = experiment.client.search_logged_models([experiment.id])
    assert logged.source_run_id == runs["tfidf_logreg"].info.run_id
    assert {m.key: m.value for m in logged.metrics}["test_accuracy"] == results[
        "tfidf_logreg"]["accuracy"]
    mlflow.set_tracking_uri(params.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    raw = ["Great, LOVED it!<br /> film 3", "awful and dull... film 4"]
    answer = model.predict(pd.DataFrame({"review": raw}))
    served = answer["positive_probability"].to_numpy()
    assert served.shape == (2,) and served[0] > 0.5 > served[1]
    assert list(answer["label"]) == ["pos", "neg"]  # the networks' answer, the same shape
    saved = pd.read_csv(tmp_path / "evaluation/tfidf_logreg/predictions.csv")
    test_rows = [r for r in rows if r["split"] == "test"]
    # The plain-data scoring equals scikit-learn's on the same reviews.
    np.testing.assert_allclose(served, saved.set_index("review").loc[
        [test_rows[3]["review"], test_rows[4]["review"]], "probability"], rtol=1e-6)
    assert json.loads((tmp_path / "reports/majority/metrics.json").read_text())["accuracy"] == 0.5


def runs_params_nbsvm(params, tmp_path):
    from imdb_rnn.tracking import runs as tracking

    experiment = tracking.connect(params.mlflow)
    (run,) = [r for r in experiment.runs("") if r.info.run_name == "nbsvm"]
    return run.data.params


def test_nbsvm_weights_each_ngram_by_its_naive_bayes_log_count_ratio():
    """r = log((p/|p|1) / (q/|q|1)) with alpha-smoothed binary counts: a word seen only in
    positive reviews gets a positive ratio, one in both equally often none."""
    from imdb_rnn.config.params import NbsvmParams
    from imdb_rnn.evaluation.reference import Nbsvm

    texts = pd.Series(["good film", "good good film", "bad film", "bad plot film"])
    labels = pd.Series([1, 1, 0, 0])
    model = Nbsvm(NbsvmParams(ngram_max=1, alpha=1.0, C=1.0), seed=0).fit(texts, labels)
    ratio = dict(zip(model.vectorizer.get_feature_names_out(), model.ratio.diagonal()))
    # p = counts in positive + 1: good 3, film 3, bad 1, plot 1 (sum 8); q: good 1, film 3,
    # bad 3, plot 2 (sum 9)
    assert ratio["good"] == pytest.approx(np.log((3 / 8) / (1 / 9)))
    assert ratio["bad"] == pytest.approx(np.log((1 / 8) / (3 / 9)))
    assert ratio["film"] == pytest.approx(np.log((3 / 8) / (3 / 9)))
    assert model.predict_proba(pd.Series(["good"]))[0, 1] > 0.5 > model.predict_proba(
        pd.Series(["bad"]))[0, 1]
