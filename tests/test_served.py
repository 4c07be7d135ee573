"""Logged models without pickles, and what they answer: a tiny trained network and the TF-IDF
reference logged as MLflow models from code, loaded by imdb_rnn's own code only, and served by a
real ``mlflow models serve`` that refuses what is not a review in every request format."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model

from test_evaluate import trained  # noqa: F401  (the fixture)

from imdb_rnn.data.text import standardize
from imdb_rnn.errors import PipelineError
from imdb_rnn.evaluation.reference import fit_tfidf_logreg, tfidf_logreg_weights
from imdb_rnn.modeling.predict import Predictor
from imdb_rnn.tracking import models
from imdb_rnn.tracking import runs as tracking
from imdb_rnn.tracking.served import RefusedInput, TfidfReference, save_reference

GOOD = ["A wonderful, moving film.", "Dull and far too long."]
# What is not a review, with the reason the served model gives (row 0 each time).
NOT_REVIEWS = {"": "has no words", "   \n\t": "has no words", "<br /><br />": "has no words",
               42: "is int, not text", 3.5: "is float, not text", True: "is bool, not text",
               None: "is NoneType, not text"}
# The served model's message for each reason: JSON values reach predict as Python or NumPy
# scalars, and a null in a column of numbers as NaN.
REASONS = {"has no words": re.escape("has no words (empty, whitespace or markup only)"),
           "is int, not text": r"is int(64)?, not text", "is float, not text": r"is float(64)?, not text",
           "is bool, not text": r"is bool_?, not text",
           "is NoneType, not text": r"is (NoneType|float(64)?), not text"}


def test_the_reference_scores_from_plain_data_as_scikit_learn_does(tmp_path):
    from imdb_rnn.config.params import ReferenceParams

    raw = ["Great, LOVED it!<br />A great film", "awful and dull... a dull film",
           "great great great acting", "dull plot, awful awful", "a film", "loved the plot"]
    labels = pd.Series([1, 0, 1, 0, 1, 1])
    texts = pd.Series([standardize(t) for t in raw])
    rp = ReferenceParams.model_validate({"C": 4.0, "ngram_max": 2, "min_df": 1,
                                         "max_features": None, "seed": 0,
                                         "nbsvm": {"ngram_max": 2, "alpha": 1.0, "C": 1.0}})
    pipeline = fit_tfidf_logreg(texts, labels, rp)
    save_reference(tmp_path / "reference",
                   **tfidf_logreg_weights(pipeline, lowercase=True, punctuation="split"))
    assert sorted(p.name for p in (tmp_path / "reference").iterdir()) == [
        "settings.json", "weights.npz"]
    reference = TfidfReference(tmp_path / "reference")  # np.load without pickle
    unseen = ["Great film, never seen a plot so dull", "zzz unknown words only", raw[0]]
    expected = pipeline.predict_proba([standardize(t) for t in raw + unseen])[:, 1]
    np.testing.assert_allclose(reference.predict(raw + unseen), expected, rtol=1e-12, atol=1e-12)


def _local_copy(uri: str, tracking_uri: str, where: Path) -> Path:
    with tracking.environment(MLFLOW_TRACKING_URI=tracking_uri):
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(where)))


def test_a_logged_network_is_its_own_code_and_weights_and_nothing_else_loads(  # noqa: F811
        trained, tmp_path):
    params, _, model_dir, _ = trained
    uri = params.mlflow.tracking_uri
    model_id = json.loads((model_dir / "run.json").read_text())["model_id"]
    local = _local_copy(f"models:/{model_id}", uri, tmp_path / "copy")
    assert not [p for p in local.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
    flavor = Model.load(str(local)).flavors["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model" and not flavor["code"]
    assert (local / "network.py").read_bytes() == models.MODEL_CODE["network"].read_bytes()

    predict = models.load_text_model(f"models:/{model_id}", uri)
    np.testing.assert_allclose(predict(GOOD), Predictor(model_dir).predict(GOOD), atol=1e-6)
    with pytest.raises(PipelineError, match=r"^review at row 1 has no words \(empty"):
        predict(["fine", "<br />"])

    # The same model with other code in its code file: refused before MLflow would run it.
    (local / "network.py").write_text("import os\nos.system('touch pwned')\n")
    with pytest.raises(PipelineError, match=r"its code file network.py is not imdb_rnn's own"):
        models.load_text_model(str(local), uri)
    with pytest.raises(PipelineError, match=r"its code file network.py is not imdb_rnn's own"):
        models.download_checked_model(str(local), uri, tmp_path / "checked")
    assert not Path("pwned").exists()
    # A model of the old kind, its python_model pickled: refused as well.
    from imdb_rnn.tracking.served import ReviewSentiment

    experiment = tracking.connect(params.mlflow)
    with experiment.run("pickled") as run, models._tracking(experiment):
        pickled = Model.log(artifact_path=None, name="model", flavor=mlflow.pyfunc,
                            run_id=run.id, python_model=ReviewSentiment(),
                            artifacts={"model_dir": str(model_dir)}).model_id
    with pytest.raises(PipelineError, match=r"not logged as this project's model from code "
                                            r"\(a pickled python_model"):
        models.load_text_model(f"models:/{pickled}", uri)


def test_pyfunc_predict_refuses_what_is_not_a_review(trained, tmp_path):  # noqa: F811
    params, _, model_dir, _ = trained
    model_id = json.loads((model_dir / "run.json").read_text())["model_id"]
    local = _local_copy(f"models:/{model_id}", params.mlflow.tracking_uri, tmp_path / "copy")
    model = mlflow.pyfunc.load_model(str(local))
    assert model.predict(pd.DataFrame({"review": GOOD})).shape == (2, 2)  # probability, label
    for value, reason in NOT_REVIEWS.items():
        with pytest.raises(RefusedInput) as error:
            model.predict(pd.DataFrame({"review": [value]}))
        assert error.value.message == f"review at row 0 {reason}" + (
            " (empty, whitespace or markup only)" if reason == "has no words" else "")
        assert error.value.get_http_status_code() == 400


def _post(base: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(f"{base}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _formats(values: list) -> dict[str, dict]:
    """The same reviews in each of the scoring server's JSON request formats."""
    return {"dataframe_split": {"dataframe_split": {"columns": ["review"],
                                                    "data": [[v] for v in values]}},
            "dataframe_records": {"dataframe_records": [{"review": v} for v in values]},
            "inputs": {"inputs": values},
            "inputs (columns)": {"inputs": {"review": values}},
            "instances": {"instances": values},
            "instances (records)": {"instances": [{"review": v} for v in values]}}


def test_the_served_champion_answers_reviews_and_refuses_the_rest_with_one_line(  # noqa: F811
        trained, tmp_path):
    """`mlflow models serve` of models:/imdb-sentiment@champion: 200 with imdb-predict's
    probabilities for reviews; for anything else a 400 whose message is the one-line reason,
    in every request format, with no stack trace and nothing of the request echoed."""
    from servers import free_port

    params, _, model_dir, _ = trained
    run = json.loads((model_dir / "run.json").read_text())
    experiment = tracking.connect(params.mlflow)
    models.register_champion(experiment, "imdb-sentiment", "champion",
                             model_id=run["model_id"], tags={},
                             description="tiny")
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": params.mlflow.tracking_uri}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
             "models:/imdb-sentiment@champion", "--env-manager", "local", "-p", str(port),
             "-w", "1"], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    answers = []
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{base}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "the model server did not start in 180 s"
                time.sleep(0.5)
        expected = Predictor(model_dir).predict(GOOD)
        for name, body in _formats(GOOD).items():
            status, text = _post(base, body)
            answers.append((name, body, status, text))
            assert status == 200, (name, text)
            rows = json.loads(text)["predictions"]
            assert all(set(row) == {"positive_probability", "label"} for row in rows), rows
            served = [row["positive_probability"] for row in rows]
            assert [row["label"] for row in rows] == ["pos" if p >= 0.5 else "neg" for p in served]
            np.testing.assert_allclose(served, expected, atol=5e-5, err_msg=name)
        for value, reason in NOT_REVIEWS.items():
            # Alone, and after a review (row 1). Not after a review as instances records:
            # MLflow parses [{"review": "a"}, {"review": 2}] into one NumPy array of text.
            mixed = {name: body for name, body in _formats(["a fine film", value]).items()
                     if isinstance(value, str) or name != "instances (records)"}
            for row, bodies in ((0, _formats([value])), (1, mixed)):
                for name, body in bodies.items():
                    status, text = _post(base, body)
                    answers.append((name, body, status, text))
                    answer = json.loads(text)
                    assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE", (
                        name, body, text)
                    # One line, the reason alone: no stack trace, nothing of the request.
                    assert re.fullmatch(rf"review at row {row} {REASONS[reason]}",
                                        answer["message"]), (name, body, text)
                    assert set(answer) <= {"error_code", "message", "sqlstate", "error_class"}
        assert "Traceback" not in log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)
        for name, body, status, text in answers:
            print(f"{json.dumps(body)} -> {status} {text}")
