"""MLflow tracking against a real SQLite store: experiment kind, run states, fast failures."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import mlflow
import pytest

from imdb_rnn.config.params import MlflowParams
from imdb_rnn.errors import PipelineError
from imdb_rnn.process import Owner
from imdb_rnn.tracking import closer
from imdb_rnn.tracking import runs as tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return MlflowParams(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="exp")


def test_experiment_is_marked_as_model_training(store):
    experiment = tracking.connect(store)
    assert experiment.uri == store.tracking_uri
    tags = experiment.client.get_experiment(experiment.id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert tracking.connect(store).id == experiment.id  # idempotent
    other = tracking.connect(store, "other")
    assert other.id != experiment.id
    assert other.client.get_experiment(other.id).name == "other"


def test_environment_overrides_the_params_uri(store, monkeypatch, tmp_path):
    other = f"sqlite:///{tmp_path}/other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    assert tracking.tracking_uri(store) == other


def test_run_finishes_or_fails_but_always_closes(store):
    experiment = tracking.connect(store)
    with experiment.run("ok", tags={"family": "lstm"}) as ok:
        ok.log_params({"units": 4})
        ok.log_history([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4}])
    with pytest.raises(RuntimeError):
        with experiment.run("boom") as failed:
            raise RuntimeError("training crashed")
    assert mlflow.active_run() is None  # nothing on MLflow's active-run stack
    client = experiment.client
    assert client.get_run(ok.id).info.status == "FINISHED"
    assert client.get_run(ok.id).data.params == {"units": "4"}
    assert client.get_run(ok.id).data.tags["family"] == "lstm"
    assert client.get_run(failed.id).info.status == "FAILED"
    assert [(m.step, m.value) for m in client.get_metric_history(ok.id, "loss")] == [
        (1, 0.5), (2, 0.4)]
    end_time = client.get_run(ok.id).info.end_time
    attached = experiment.attach(ok.id)  # update, as evaluate does
    assert attached is not None and attached.id == ok.id
    with tracking.updating(attached) as run:
        run.log_metrics({"test_accuracy": 0.9})
        run.log_dict({"a": 1}, "evaluation/metrics.json")
    updated = client.get_run(ok.id)
    assert updated.data.metrics["test_accuracy"] == 0.9
    # still FINISHED, and its duration is still the training's
    assert (updated.info.status, updated.info.end_time) == ("FINISHED", end_time)
    assert "evaluation" in {a.path for a in client.list_artifacts(ok.id)}


def test_failed_update_keeps_the_training_run_finished(store):
    experiment = tracking.connect(store)
    with experiment.run("m") as run:
        pass
    with pytest.raises(RuntimeError):
        with tracking.updating(experiment.attach(run.id)):
            raise RuntimeError("evaluation crashed")
    stored = experiment.client.get_run(run.id)
    assert stored.info.status == "FINISHED"
    assert stored.data.tags["update_failed"] == "RuntimeError: evaluation crashed"


def test_attaching_a_missing_run_gives_none(store):
    experiment = tracking.connect(store)
    assert experiment.attach("0" * 32) is None


def test_finished_runs_are_found_newest_first_one_per_name(store):
    experiment = tracking.connect(store)
    ids = []
    for name in ("a", "b", "a"):
        with experiment.run(name) as run:
            ids.append(run.id)
        time.sleep(0.01)  # distinct start times
    with pytest.raises(RuntimeError):
        with experiment.run("c"):
            raise RuntimeError("failed runs are left out")
    assert experiment.finished_run_ids() == [ids[2], ids[1]]
    assert [r.info.run_id for r in experiment.runs("tags.mlflow.runName = 'b'")] == [ids[1]]
    assert experiment.link(ids[0]) == f"#/experiments/{experiment.id}/runs/{ids[0]}"


def test_a_run_that_cannot_start_is_one_line(store):
    experiment = tracking.connect(store)
    broken = tracking.Experiment(experiment.client, "999999", experiment.uri)
    with pytest.raises(PipelineError, match=r"MLflow run m cannot be started: ") as error:
        with broken.run("m"):
            pass
    assert "\n" not in str(error.value)


def test_unreachable_server_fails_fast(monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(PipelineError, match=r"MLflow tracking store http://127.0.0.1:9 is "
                                            r"unreachable") as info:
        tracking.connect(store)
    # The cause, not urllib3's retries and pool reprs.
    assert str(info.value).endswith("[Errno 111] Connection refused"), str(info.value)
    assert time.perf_counter() - start < 30


def test_dvc_hash_reads_the_lock(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  vectorize:\n    outs:\n"
                    "    - path: data/vectorized\n      md5: abc.dir\n")
    assert tracking.dvc_hash("data/vectorized", str(lock)) == "abc.dir"
    assert tracking.dvc_hash("other", str(lock)) == "unknown"
    assert tracking.dvc_hash("x", str(tmp_path / "missing.lock")) == "unknown"


def test_a_store_that_stops_answering_mid_stage_is_one_line_naming_it(store, monkeypatch):
    from mlflow.tracking import MlflowClient

    from servers import free_port

    experiment = tracking.connect(store)
    with experiment.run("gone") as run:
        pass
    # The same run, through a tracking server that is not there (any more).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = f"http://127.0.0.1:{free_port()}"
    gone = tracking.Experiment(MlflowClient(uri), experiment.id, uri)
    lost = tracking.Run(gone.client, run.id)
    for call in (lambda: lost.log_metrics({"accuracy": 0.5}), lambda: lost.set_tags({"a": 1}),
                 lambda: lost.end("FAILED"), lambda: gone.status(run.id),
                 lambda: gone.runs("")):
        with pytest.raises(PipelineError) as error:
            call()
        message = str(error.value)
        assert message.startswith(f"MLflow tracking store {uri} failed: ") and "\n" not in message
        assert len(message) <= 300


def test_a_block_failing_with_the_store_gone_keeps_its_own_error(store, monkeypatch):
    """The run cannot be ended FAILED when the store is gone: the block's error is the one
    raised, and the run is handed to a process that ends it once the store answers."""
    experiment = tracking.connect(store)
    monkeypatch.setattr(tracking.Run, "end", _store_gone)
    handed = []
    monkeypatch.setattr(tracking, "hand_off", lambda uri, run_id: handed.append(run_id))
    with pytest.raises(ValueError, match="the block's own"), experiment.run("dies") as run:
        raise ValueError("the block's own error")
    with pytest.raises(PipelineError, match="failed"), experiment.run("ends") as finished:
        pass  # the work succeeded, ending the run did not: the stage fails
    assert handed == [run.id, finished.id]


def _dead_owner() -> Owner:
    """The owner tags of a process that has exited."""
    out = subprocess.run([sys.executable, "-c", "import json; from imdb_rnn.process import Owner;"
                          " print(json.dumps(Owner.current().tags()))"],
                         capture_output=True, text=True, check=True).stdout
    return Owner.from_tags(json.loads(out))


def test_the_closer_ends_a_dead_processs_run_once_the_store_answers(store):
    experiment = tracking.connect(store)
    dead = _dead_owner()
    mine = experiment.client.create_run(experiment.id, run_name="lost", tags=dead.tags())
    theirs = experiment.client.create_run(experiment.id, run_name="alive",
                                          tags=Owner.current().tags())
    done = experiment.client.create_run(experiment.id, run_name="done", tags=dead.tags())
    experiment.client.set_terminated(done.info.run_id, "FINISHED")
    uri = store.tracking_uri
    assert closer.close_when_answering(uri, mine.info.run_id, dead, 30)
    ended = experiment.client.get_run(mine.info.run_id)
    assert ended.info.status == "FAILED" and "stopped answering" in ended.data.tags["fail_reason"]
    # A live owner's run is waited for, never ended; a finished run is left as it is.
    assert not closer.close_when_answering(uri, theirs.info.run_id, Owner.current(), 1.0)
    assert experiment.client.get_run(theirs.info.run_id).info.status == "RUNNING"
    assert not closer.close_when_answering(uri, done.info.run_id, dead, 30)
    assert experiment.client.get_run(done.info.run_id).info.status == "FINISHED"


def test_the_closer_waits_for_a_store_that_is_not_there_yet(store):
    from servers import free_port

    dead = _dead_owner()
    started = time.monotonic()
    assert not closer.close_when_answering(f"http://127.0.0.1:{free_port()}", "0" * 32, dead,
                                           3.0, pause=0.2)
    assert 3.0 <= time.monotonic() - started < 30


def _store_gone(self, status):
    raise PipelineError("MLflow tracking store http://127.0.0.1:9 failed: ...")


def test_every_run_says_its_profile_slice_and_dvc_experiment(monkeypatch, tmp_path):
    """Two runs named `cnn`, one from `dvc repro` and one from `dvc exp run -S profile=smoke`,
    are told apart by their tags."""
    from imdb_rnn.config.params import load_params
    from imdb_rnn.tracking.runs import run_tags

    from conftest import ROOT

    params = load_params(ROOT / "params.yaml", profile="smoke")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    plain = run_tags("cnn", "cnn", "train@cnn", tmp_path, params)
    assert plain["profile"] == "smoke" and plain["per_label"] == str(params.preprocess.per_label)
    assert "dvc_experiment" not in plain
    monkeypatch.setenv("DVC_EXP_NAME", "bushy-ruck")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0123abc")
    tagged = run_tags("cnn", "cnn", "train@cnn", tmp_path, params)
    assert (tagged["dvc_experiment"], tagged["dvc_baseline_rev"]) == ("bushy-ruck", "0123abc")
