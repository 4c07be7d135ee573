"""MLflow tracking against a real SQLite store: experiment kind, run states, fast failures."""

from __future__ import annotations

import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from imdb_rnn.tracking import runs as tracking
from imdb_rnn.errors import PipelineError
from imdb_rnn.config.params import MlflowParams


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return MlflowParams(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="exp")


def test_experiment_is_marked_as_model_training(store):
    experiment_id = tracking.connect(store)
    tags = MlflowClient().get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert tracking.connect(store) == experiment_id  # idempotent


def test_environment_overrides_the_params_uri(store, monkeypatch, tmp_path):
    other = f"sqlite:///{tmp_path}/other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    assert tracking.tracking_uri(store) == other


def test_run_finishes_or_fails_but_always_closes(store):
    experiment_id = tracking.connect(store)
    with tracking.run(experiment_id, "ok", tags={"family": "lstm"}) as ok_id:
        tracking.log_params({"units": 4})
        tracking.log_history([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4}])
    with pytest.raises(RuntimeError):
        with tracking.run(experiment_id, "boom") as failed_id:
            raise RuntimeError("training crashed")
    assert mlflow.active_run() is None
    client = MlflowClient()
    assert client.get_run(ok_id).info.status == "FINISHED"
    assert client.get_run(failed_id).info.status == "FAILED"
    assert [m.value for m in client.get_metric_history(ok_id, "loss")] == [0.5, 0.4]
    end_time = client.get_run(ok_id).info.end_time
    with tracking.run(experiment_id, "ok", run_id=ok_id):  # update, as evaluate does
        tracking.log_metrics({"test_accuracy": 0.9})
        tracking.log_dict({"a": 1}, "evaluation/metrics.json")
    updated = client.get_run(ok_id)
    assert updated.data.metrics["test_accuracy"] == 0.9
    # still FINISHED, and its duration is still the training's
    assert (updated.info.status, updated.info.end_time) == ("FINISHED", end_time)
    assert "evaluation" in {a.path for a in client.list_artifacts(ok_id)}


def test_failed_update_keeps_the_training_run_finished(store):
    experiment_id = tracking.connect(store)
    with tracking.run(experiment_id, "m") as run_id:
        pass
    with pytest.raises(RuntimeError):
        with tracking.run(experiment_id, "m", run_id=run_id):
            raise RuntimeError("evaluation crashed")
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["update_failed"] == "RuntimeError: evaluation crashed"


def test_check_run_names_a_missing_run(store):
    tracking.connect(store)
    with pytest.raises(PipelineError, match="MLflow run 0+ not found"):
        tracking.check_run("0" * 32)


def test_reopening_a_missing_run_is_one_line(store):
    experiment_id = tracking.connect(store)
    with pytest.raises(PipelineError, match="MLflow run 0+ of m cannot be reopened"):
        with tracking.run(experiment_id, "m", run_id="0" * 32):
            pass


def test_unreachable_server_fails_fast(monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(PipelineError, match=r"MLflow tracking store http://127.0.0.1:9 is "
                                            r"unreachable") as info:
        tracking.connect(store)
    assert "\n" not in str(info.value)
    assert time.perf_counter() - start < 30


def test_dvc_hash_reads_the_lock(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  vectorize:\n    outs:\n"
                    "    - path: data/vectorized\n      md5: abc.dir\n")
    assert tracking.dvc_hash("data/vectorized", str(lock)) == "abc.dir"
    assert tracking.dvc_hash("other", str(lock)) == "unknown"
    assert tracking.dvc_hash("x", str(tmp_path / "missing.lock")) == "unknown"
