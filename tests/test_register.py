"""The register stage on two tiny trained networks: the champion by validation accuracy."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from test_evaluate import TINY_LSTM, trained  # noqa: F401  (the fixture)

from imdb_rnn.errors import PipelineError
from imdb_rnn.layout import Reports
from imdb_rnn.pipeline.register import markdown, register
from imdb_rnn.pipeline.train import TrainPaths, train
from imdb_rnn.tracking import runs as tracking


def two_networks(trained, tmp_path, val: dict[str, float]):  # noqa: F811
    """Models tiny and other in a project layout, with the given validation accuracies and a
    leaderboard that ranks them the other way on test."""
    params, data, model_dir, _ = trained
    section = type(params.train.models["tiny"]).model_validate({**TINY_LSTM, "units": 3})
    params = params.model_copy(update={"train": params.train.model_copy(update={
        "models": {"tiny": params.train.models["tiny"], "other": section}}),
        "tune": params.tune.model_copy(update={"studies": {}})})
    reports = Reports(tmp_path / "reports")
    shutil.copytree(model_dir, tmp_path / "project_models" / "tiny")
    train(params, "other", TrainPaths(data, tmp_path / "project_models" / "other",
                                      tmp_path / "other_history.csv", tmp_path / "other.json"))
    for name, accuracy in val.items():
        reports.train_dir(name).mkdir(parents=True)
        reports.train_summary(name).write_text(json.dumps(
            {"family": "lstm", "best_val_accuracy": accuracy}))
    board = tmp_path / "leaderboard.csv"
    pd.DataFrame({"model": ["tiny", "other"], "test_accuracy": [0.9, 0.6],
                  "ci_low": [0.85, 0.5], "ci_high": [0.95, 0.7]}).to_csv(board, index=False)
    return params, reports, board


def test_the_best_validation_accuracy_wins_and_a_rerun_keeps_its_version(trained, tmp_path):  # noqa: F811
    params, reports, board = two_networks(trained, tmp_path, {"tiny": 0.7, "other": 0.8})
    models = tmp_path / "project_models"
    result = register(params, reports, models, board)
    # other: better on validation, worse on test; the choice never looks at test
    assert result["model"] == "other" and result["version"] == "1" and result["new_version"]
    assert [c["model"] for c in result["candidates"]] == ["other", "tiny"]
    client = tracking.connect(params.mlflow).client
    version = client.get_model_version_by_alias("imdb-sentiment", "champion")
    run_file = json.loads((models / "other/run.json").read_text())
    assert str(version.version) == "1" and version.source == f"models:/{run_file['model_id']}"
    assert version.tags["test_accuracy_ci95"] == "[0.50000, 0.70000]"
    assert version.tags["val_accuracy"] == "0.80000"
    again = register(params, reports, models, board)
    assert again["version"] == "1" and not again["new_version"]
    # a new best moves the alias; the earlier version stays
    reports.train_summary("tiny").write_text(json.dumps({"family": "lstm",
                                                         "best_val_accuracy": 0.9}))
    moved = register(params, reports, models, board)
    assert moved["model"] == "tiny" and moved["version"] == "2"
    assert str(client.get_model_version_by_alias("imdb-sentiment", "champion").version) == "2"
    assert {str(v.version) for v in client.search_model_versions("name = 'imdb-sentiment'")} == {
        "1", "2"}
    text = markdown(moved)
    assert "**tiny** (lstm) is version 2" in text and "| tiny (champion) | 90.00% |" in text


def test_a_network_trained_before_mlflow_models_is_named(trained, tmp_path):  # noqa: F811
    params, reports, board = two_networks(trained, tmp_path, {"tiny": 0.7, "other": 0.8})
    run_file = tmp_path / "project_models/tiny/run.json"
    run_file.write_text(json.dumps({"run_id": "abc"}))
    with pytest.raises(PipelineError, match=r"tiny/run.json: no model_id"):
        register(params, reports, tmp_path / "project_models", board)
