"""The seeds stages on a tiny trained network: seed runs summarised, the best-validation
replicate's model kept and logged (and nothing else), a study won by its baseline reusing the
baseline's seed runs, and register serving a kept replicate."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from test_evaluate import trained  # noqa: F401  (the fixture)

from imdb_rnn.config import StudyParams
from imdb_rnn.layout import SEED_FILE, Reports, seed_model_dir
from imdb_rnn.modeling.predict import Predictor
from imdb_rnn.pipeline.register import register
from imdb_rnn.pipeline.seeds import replicate
from imdb_rnn.pipeline.seeds_tuned import replicate_tuned
from imdb_rnn.tracking import runs as tracking


def with_seeds(params, seeds: list[int], studies: dict | None = None):
    """The fixture's params with replicate seeds ``seeds``, in this process (one worker)."""
    update = {"report": params.report.model_copy(update={"seeds": seeds}),
              "compute": params.compute.model_copy(update={"workers": 1, "threads": 1})}
    if studies is not None:
        update["tune"] = params.tune.model_copy(update={"studies": studies})
    return params.model_copy(update=update)


def baseline_files(tmp_path, summary: dict, val_accuracy: float):
    """The train.seed run's summary (its validation accuracy forced) and test metrics."""
    train_json, test_json = tmp_path / "base_train.json", tmp_path / "base_test.json"
    train_json.write_text(json.dumps(summary | {"best_val_accuracy": val_accuracy}))
    test_json.write_text(json.dumps({"accuracy": 0.5}))
    return train_json, test_json


def test_a_replicate_that_wins_on_validation_is_kept_logged_and_served(trained, tmp_path):  # noqa: F811
    params, data, model_dir, summary = trained
    params = with_seeds(params, [1, 42])  # 42 is train.seed: not trained again
    models = model_dir.parent
    reports = Reports(tmp_path / "reports")
    # a train.seed run no replicate can fall below on validation: the replicate wins
    train_json, test_json = baseline_files(tmp_path, summary, -1.0)
    out = seed_model_dir(models, "tiny")
    result = replicate(params, "tiny", data, train_json, test_json, reports.seeds("tiny"), out)
    assert result["seeds"] == [42, 1] and [r["source"] for r in result["runs"]] == [
        "baseline", "replicate"]
    assert result["best_val_seed"] == 1 and result["best_val_weights"] == "seeds"
    assert result["val_accuracy_mean"] == pytest.approx(
        (-1.0 + result["runs"][1]["val_accuracy"]) / 2)
    assert json.loads(reports.seeds("tiny").read_text()) == result
    # exactly what register needs: one model folder, its run file, seed.json
    assert sorted(p.name for p in out.iterdir()) == [
        "model.keras", "preprocessing.json", "run.json", SEED_FILE, "summary.txt", "vocab.txt"]
    assert json.loads((out / SEED_FILE).read_text())["best_val_seed"] == 1
    run_file = json.loads((out / "run.json").read_text())
    assert run_file["run_id"] == result["runs"][1]["run_id"]
    assert json.loads((out / "preprocessing.json").read_text())["params"]["seed"] == 1
    experiment = tracking.connect(params.mlflow, params.report.seed_experiment)
    logged = experiment.client.get_logged_model(run_file["model_id"])
    assert logged.source_run_id == run_file["run_id"] and logged.tags["seed"] == "1"
    run = experiment.client.get_run(run_file["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["seed"] == "1"
    assert 0 <= Predictor(out).predict(["great loved great"])[0] <= 1
    # register serves it: tiny is the only configuration
    pd.DataFrame({"model": ["tiny"], "mean_accuracy": [0.5], "mean_ci_low": [0.4],
                  "mean_ci_high": [0.6]}).to_csv(tmp_path / "board.csv", index=False)
    registered = register(params.model_copy(update={"tune": params.tune.model_copy(
        update={"studies": {}})}), reports, models, tmp_path / "board.csv")
    assert registered["model_dir"] == str(out) and registered["served_seed"] == 1
    assert registered["model_id"] == run_file["model_id"]
    champion = experiment.client.get_model_version_by_alias("imdb-sentiment", "champion")
    assert champion.source == f"models:/{run_file['model_id']}"


def test_the_train_seed_run_winning_keeps_no_replicate_weights(trained, tmp_path):  # noqa: F811
    params, data, model_dir, summary = trained
    params = with_seeds(params, [1])
    train_json, test_json = baseline_files(tmp_path, summary, 2.0)  # unbeatable
    out = tmp_path / "models/seeds/tiny"
    result = replicate(params, "tiny", data, train_json, test_json, tmp_path / "s.json", out)
    assert result["best_val_seed"] == 42 and result["best_val_weights"] == "train"
    assert result["weights_of"] == "tiny"
    assert [p.name for p in out.iterdir()] == [SEED_FILE]
    experiment = tracking.connect(params.mlflow, params.report.seed_experiment)
    assert experiment.client.search_logged_models([experiment.id]) == []


def test_no_replicate_seed_writes_the_train_seed_run_alone(trained, tmp_path):  # noqa: F811
    params, data, _, summary = trained
    params = with_seeds(params, [])
    train_json, test_json = baseline_files(tmp_path, summary, 0.7)
    result = replicate(params, "tiny", data, train_json, test_json, tmp_path / "s.json",
                       tmp_path / "seeds_tiny")
    assert result["seeds"] == [42] and result["test_accuracy_std"] is None
    assert result["val_accuracy_mean"] == 0.7 and result["best_val_weights"] == "train"


def test_a_study_won_by_its_baseline_reuses_the_baselines_seed_runs(trained, tmp_path):  # noqa: F811
    params, data, _, summary = trained
    params = with_seeds(params, [1], {"s": StudyParams(model="tiny", sampler="tpe")})
    baseline = {"model": "tiny", "family": "lstm", "seeds": [42, 1],
                "runs": [{"seed": 42, "val_accuracy": 0.7, "test_accuracy": 0.6},
                         {"seed": 1, "val_accuracy": 0.8, "test_accuracy": 0.65}],
                "val_accuracy_mean": 0.75, "best_val_seed": 1, "best_val_weights": "seeds",
                "weights_of": "tiny"}
    (tmp_path / "tiny.json").write_text(json.dumps(baseline))
    (tmp_path / "best.json").write_text(json.dumps({"best_is_baseline": True,
                                                    "best_params": {"units": 4}}))
    out = tmp_path / "models/seeds/tuned_s"
    result = replicate_tuned(params, "s", data, tmp_path / "best.json", tmp_path / "no.json",
                             tmp_path / "no.json", tmp_path / "tiny.json",
                             tmp_path / "tuned_s.json", out)
    assert result == baseline | {"model": "tuned_s", "reused_from": "seeds@tiny"}
    assert [p.name for p in out.iterdir()] == [SEED_FILE]
    assert json.loads((out / SEED_FILE).read_text())["weights_of"] == "tiny"
    experiment = tracking.connect(params.mlflow, params.report.seed_experiment)
    assert experiment.client.search_runs([experiment.id]) == []  # nothing trained


def test_a_tuned_configuration_is_trained_with_the_baselines_seeds(trained, tmp_path):  # noqa: F811
    params, data, _, summary = trained
    params = with_seeds(params, [1], {"s": StudyParams(model="tiny", sampler="tpe")})
    (tmp_path / "best.json").write_text(json.dumps({"best_is_baseline": False,
                                                    "best_params": {"units": 3}}))
    train_json, test_json = baseline_files(tmp_path, summary, 2.0)
    result = replicate_tuned(params, "s", data, tmp_path / "best.json", train_json, test_json,
                             tmp_path / "missing.json", tmp_path / "tuned_s.json",
                             tmp_path / "models/seeds/tuned_s")
    assert result["model"] == "tuned_s" and result["seeds"] == [42, 1]
    assert "reused_from" not in result and result["weights_of"] == "tuned_s"
    experiment = tracking.connect(params.mlflow, params.report.seed_experiment)
    (run,) = experiment.client.search_runs([experiment.id])
    assert run.info.run_name == "tuned_s-seed1" and run.data.params["units"] == "3"
    assert run.data.tags["stage"] == "seeds_tuned@s"
