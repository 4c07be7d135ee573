"""The train and evaluate stages' logic on tiny data: the model folder, and where test metrics go."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT

from imdb_rnn.config.params import load_params
from imdb_rnn.data.vectorize import vectorize_table
from imdb_rnn.evaluation.metrics import EvaluationPaths
from imdb_rnn.modeling.predict import Predictor
from imdb_rnn.pipeline.evaluate import evaluate
from imdb_rnn.pipeline.train import TrainPaths, train
from imdb_rnn.tracking import runs as tracking

TINY_LSTM = {"family": "lstm", "maxlen": 20, "padding": "post", "truncating": "pre",
             "optimizer": "adam", "learning_rate": 0.01, "clipnorm": 1.0, "batch_size": 16,
             "epochs": 2, "embedding_file": None, "embedding_dim": 4, "dropout": 0.0,
             "embedding_trainable": True, "units": 4, "num_layers": 1, "recurrent_dropout": 0.0,
             "pooling": "last"}


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """A tiny LSTM trained by the train stage's logic, its run in the project's store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    rng = np.random.default_rng(0)
    rows = []
    for split, n in (("train", 64), ("val", 16), ("test", 24)):
        for i in range(n):
            words = rng.choice(["great", "loved"] if i % 2 else ["awful", "dull"], 5)
            rows.append({"split": split, "label": i % 2, "review": f"{split}/{i}.txt",
                         "text": " ".join(words)})
    data = tmp_path / "vectorized"
    data.mkdir()
    vectorize_table(pd.DataFrame(rows), 30, data)
    params = load_params(ROOT / "params.yaml")
    section = type(params.train.models["lstm"]).model_validate(TINY_LSTM)
    params = params.model_copy(update={
        "train": params.train.model_copy(update={"models": {"tiny": section}}),
        "mlflow": params.mlflow.model_copy(update={
            "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "baselines"})})
    model_dir = tmp_path / "models" / "tiny"
    summary = train(params, "tiny", TrainPaths(data, model_dir, tmp_path / "history.csv",
                                               tmp_path / "train.json"))
    return params, data, model_dir, summary


def paths(root) -> EvaluationPaths:
    return EvaluationPaths(root / "metrics.json", root / "roc.csv", root / "predictions.csv")


def test_the_model_folder_predicts_and_names_its_run(trained, tmp_path):
    params, data, model_dir, summary = trained
    assert summary["model"] == "tiny" and summary["epochs"] >= 1
    run_id = json.loads((model_dir / "run.json").read_text())["run_id"]
    experiment = tracking.connect(params.mlflow)
    stored = experiment.client.get_run(run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params["clipnorm"] == "1.0" and stored.data.params["maxlen"] == "20"
    predictor = Predictor(model_dir)
    assert predictor.shape.maxlen == 20 and predictor.shape.length is None
    probabilities = predictor.predict(["great loved great", "awful dull awful"])
    assert probabilities.shape == (2,) and ((0 <= probabilities) & (probabilities <= 1)).all()


def test_test_metrics_go_to_the_training_run(trained, tmp_path):
    params, data, model_dir, _ = trained
    run_id = json.loads((model_dir / "run.json").read_text())["run_id"]
    result = evaluate(params, "tiny", model_dir, data, paths(tmp_path / "eval"))
    assert result["reviews"] == 24 and 0 <= result["accuracy"] <= 1
    experiment = tracking.connect(params.mlflow)
    stored = experiment.client.get_run(run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.metrics["test_accuracy"] == result["accuracy"]
    assert len(experiment.runs("")) == 1  # no second run
    assert json.loads((tmp_path / "eval/metrics.json").read_text())["accuracy"] == result[
        "accuracy"]
    assert len(pd.read_csv(tmp_path / "eval/predictions.csv")) == 24


def test_a_training_run_missing_from_the_store_gets_an_evaluation_run(trained, tmp_path):
    """A model trained elsewhere (from a DVC remote, say): its run is not in this store."""
    params, data, model_dir, _ = trained
    training_run = json.loads((model_dir / "run.json").read_text())["run_id"]
    elsewhere = params.model_copy(update={"mlflow": params.mlflow.model_copy(
        update={"tracking_uri": f"sqlite:///{tmp_path}/other.db"})})
    result = evaluate(elsewhere, "tiny", model_dir, data, paths(tmp_path / "eval"))
    experiment = tracking.connect(elsewhere.mlflow)
    assert experiment.attach(training_run) is None
    (run,) = experiment.runs("")
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert run.data.tags["run_kind"] == "evaluation"
    assert run.data.tags["training_run_id"] == training_run
    assert run.data.tags["model"] == "tiny"
    assert run.data.metrics["test_accuracy"] == result["accuracy"]
    assert (tmp_path / "eval/metrics.json").is_file()


def test_the_network_is_an_mlflow_model_of_raw_text_with_its_data_and_test_metrics(trained,
                                                                                    tmp_path):
    import mlflow

    from imdb_rnn.tracking.models import file_md5

    params, data, model_dir, _ = trained
    run_file = json.loads((model_dir / "run.json").read_text())
    result = evaluate(params, "tiny", model_dir, data, paths(tmp_path / "eval"))
    experiment = tracking.connect(params.mlflow)
    logged = experiment.client.get_logged_model(run_file["model_id"])
    assert logged.source_run_id == run_file["run_id"] and logged.name == "tiny"
    assert logged.params["maxlen"] == "20" and logged.tags["family"] == "lstm"
    run_tags = experiment.client.get_run(run_file["run_id"]).data.tags
    assert (run_tags["profile"], run_tags["per_label"]) == ("full", "None")
    assert "dvc_experiment" not in run_tags  # not started by `dvc exp run`
    on_model = {m.key: m for m in logged.metrics}
    assert on_model["test_accuracy"].value == result["accuracy"]
    assert on_model["test_accuracy"].dataset_name == "imdb-test"
    assert on_model["test_accuracy"].dataset_digest == file_md5(data / "test.npz")
    assert "best_val_accuracy" in on_model  # the training summary came along
    inputs = experiment.client.get_run(run_file["run_id"]).inputs.dataset_inputs
    by_name = {i.dataset.name: i for i in inputs}
    assert set(by_name) == {"imdb-train", "imdb-val", "imdb-test"}
    assert by_name["imdb-train"].dataset.digest == file_md5(data / "train.npz")
    assert {t.value for t in by_name["imdb-val"].tags} == {"validation"}
    texts = ["great loved great", "awful dull awful", "loved it"]
    mlflow.set_tracking_uri(params.mlflow.tracking_uri)
    # the model folder travels under a plain name (a stage's hidden temporary would be swept)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{run_file['model_id']}",
                                                     dst_path=str(tmp_path / "download")))
    assert sorted(p.name for p in (local / "artifacts" / "model_dir").iterdir()) == [
        "model.keras", "preprocessing.json", "vocab.txt"]
    served = mlflow.pyfunc.load_model(f"models:/{run_file['model_id']}")
    assert served.metadata.get_input_schema().input_names() == ["review"]
    out = served.predict(pd.DataFrame({"review": texts}))
    assert list(out.columns) == ["positive_probability", "label"]
    assert (out["label"] == np.where(out["positive_probability"] >= 0.5, "pos", "neg")).all()
    np.testing.assert_allclose(out["positive_probability"], Predictor(model_dir).predict(texts),
                               rtol=1e-6)
    by_run = mlflow.pyfunc.load_model(f"runs:/{run_file['run_id']}/tiny")
    again = by_run.predict(pd.DataFrame({"review": texts}))["positive_probability"]
    np.testing.assert_allclose(again, out["positive_probability"], rtol=1e-6)
    with pytest.raises(Exception, match="review at row 1 is int"):
        served.predict(pd.DataFrame({"review": ["fine", 3]}))
