"""The reference stage on a tiny table: both models scored and recorded, TF-IDF as an MLflow
Model of raw text."""

from __future__ import annotations

import json

import mlflow
import numpy as np
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
    assert set(results) == {"tfidf_logreg", "majority"}
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
