"""The register stage on two tiny trained networks: the champion by mean validation accuracy over
training seeds, served with its best-validation seed's weights."""

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


def seed_summary(reports: Reports, name: str, vals: dict[int, float], *,
                 weights: str = "train") -> None:
    """A seeds stage's summary of ``name``: validation accuracy per seed, the best seed's
    weights in the train stage's folder (``weights='train'``) or the seeds stage's."""
    runs = [{"seed": seed, "val_accuracy": val, "test_accuracy": 0.5, "epochs": 1,
             "source": "baseline" if seed == 42 else "replicate"} for seed, val in vals.items()]
    best = max(runs, key=lambda r: r["val_accuracy"])
    reports.seeds(name).parent.mkdir(parents=True, exist_ok=True)
    reports.seeds(name).write_text(json.dumps({
        "model": name, "family": "lstm", "seeds": list(vals), "runs": runs,
        "val_accuracy_mean": sum(vals.values()) / len(vals), "best_val_seed": best["seed"],
        "best_val_weights": weights, "weights_of": name}))


def two_networks(trained, tmp_path, vals: dict[str, dict[int, float]]):  # noqa: F811
    """Models tiny and other in a project layout, with the given validation accuracies per
    training seed and a leaderboard that ranks them the other way on test."""
    params, data, model_dir, _ = trained
    section = type(params.train.models["tiny"]).model_validate({**TINY_LSTM, "units": 3})
    params = params.model_copy(update={"train": params.train.model_copy(update={
        "models": {"tiny": params.train.models["tiny"], "other": section}}),
        "tune": params.tune.model_copy(update={"studies": {}})})
    reports = Reports(tmp_path / "reports")
    shutil.copytree(model_dir, tmp_path / "project_models" / "tiny")
    train(params, "other", TrainPaths(data, tmp_path / "project_models" / "other",
                                      tmp_path / "other_history.csv", tmp_path / "other.json"))
    for name, per_seed in vals.items():
        seed_summary(reports, name, per_seed)
    board = tmp_path / "leaderboard.csv"
    pd.DataFrame({"model": ["tiny", "other"], "mean_accuracy": [0.9, 0.6],
                  "mean_ci_low": [0.85, 0.5], "mean_ci_high": [0.95, 0.7]}
                 ).to_csv(board, index=False)
    return params, reports, board


def test_the_best_mean_validation_accuracy_wins_and_a_rerun_keeps_its_version(trained, tmp_path):  # noqa: F811
    # other's train.seed run has the best single validation accuracy (0.95), but over its
    # seeds tiny is better (0.85 against 0.80): the mean decides
    params, reports, board = two_networks(trained, tmp_path, {
        "tiny": {42: 0.95, 1: 0.70, 2: 0.90}, "other": {42: 0.97, 1: 0.65, 2: 0.78}})
    models = tmp_path / "project_models"
    result = register(params, reports, models, board)
    # tiny: better over seeds on validation, worse on test; the choice never looks at test
    assert result["model"] == "tiny" and result["version"] == "1" and result["new_version"]
    assert result["val_accuracy_mean"] == pytest.approx(0.85)
    assert result["served_seed"] == 42 and result["val_accuracy"] == 0.95
    assert result["model_dir"] == str(models / "tiny")
    assert [c["model"] for c in result["candidates"]] == ["tiny", "other"]
    client = tracking.connect(params.mlflow).client
    version = client.get_model_version_by_alias("imdb-sentiment", "champion")
    run_file = json.loads((models / "tiny/run.json").read_text())
    assert str(version.version) == "1" and version.source == f"models:/{run_file['model_id']}"
    # The version links to its logged model both ways: its source is models:/MODEL_ID (MLflow
    # 3.17's SQL registry keeps no model_id column: ModelVersion.model_id reads None from it),
    # and the logged model's mlflow.modelVersions tag, which the UI reads ("Not registered"
    # without it), names the version.
    assert version.run_id == run_file["run_id"]
    logged = client.get_logged_model(run_file["model_id"])
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [
        {"name": "imdb-sentiment", "version": 1}]
    assert version.description.startswith("tiny (lstm): mean validation accuracy 85.00%")
    assert version.tags["test_accuracy_mean_ci95"] == "[0.85000, 0.95000]"
    assert version.tags["val_accuracy_mean"] == "0.85000"
    assert version.tags["chosen_by"] == "best mean validation accuracy over training seeds"
    assert version.tags["served_seed"] == "42" and version.tags["seeds"] == "42 1 2"
    again = register(params, reports, models, board)
    assert again["version"] == "1" and not again["new_version"]
    # a new best mean moves the alias; the earlier version stays
    seed_summary(reports, "other", {42: 0.97, 1: 0.90, 2: 0.90})
    moved = register(params, reports, models, board)
    assert moved["model"] == "other" and moved["version"] == "2"
    assert str(client.get_model_version_by_alias("imdb-sentiment", "champion").version) == "2"
    assert {str(v.version) for v in client.search_model_versions("name = 'imdb-sentiment'")} == {
        "1", "2"}
    text = markdown(moved)
    assert "**other** (lstm) is version 2" in text and "| other (champion) | 3 | 92.33% |" in text
    assert "seed 42 (validation 97.00%" in text


def test_a_replicate_that_won_on_validation_is_served_from_the_seeds_folder(trained, tmp_path):  # noqa: F811
    params, reports, board = two_networks(trained, tmp_path, {
        "tiny": {42: 0.70, 1: 0.90}, "other": {42: 0.6, 1: 0.6}})
    models = tmp_path / "project_models"
    seed_summary(reports, "tiny", {42: 0.70, 1: 0.90}, weights="seeds")
    with pytest.raises(PipelineError, match=r"seeds/tiny/run.json"):  # not kept: named
        register(params, reports, models, board)
    # stand-in for the replicate the seeds stage keeps (tests/test_seeds.py keeps a real one)
    shutil.copytree(models / "other", models / "seeds" / "tiny")
    result = register(params, reports, models, board)
    kept = json.loads((models / "seeds/tiny/run.json").read_text())
    assert result["model"] == "tiny" and result["served_seed"] == 1
    assert result["model_dir"] == str(models / "seeds" / "tiny")
    assert result["model_id"] == kept["model_id"]


def test_a_network_trained_before_mlflow_models_is_named(trained, tmp_path):  # noqa: F811
    params, reports, board = two_networks(trained, tmp_path, {
        "tiny": {42: 0.7}, "other": {42: 0.8}})
    run_file = tmp_path / "project_models/tiny/run.json"
    run_file.write_text(json.dumps({"run_id": "abc"}))
    with pytest.raises(PipelineError, match=r"tiny/run.json: no model_id"):
        register(params, reports, tmp_path / "project_models", board)


def test_a_seed_summary_of_the_earlier_seeds_stage_is_named(trained, tmp_path):  # noqa: F811
    params, reports, board = two_networks(trained, tmp_path, {
        "tiny": {42: 0.7}, "other": {42: 0.8}})
    reports.seeds("tiny").write_text(json.dumps({"model": "tiny", "runs": []}))
    with pytest.raises(PipelineError, match=r"seeds/tiny.json: no best_val_seed"):
        register(params, reports, tmp_path / "project_models", board)
