"""The train and evaluate stages' logic on tiny data: the model folder, and where test metrics go."""

from __future__ import annotations

import json

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
