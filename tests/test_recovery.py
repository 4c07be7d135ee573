"""Recovery after SIGKILL, and two writers at once: runs, temporaries, DVC's lock, the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import ROOT
from trial_memory import rss_growth
from test_tuning import make_project

from imdb_rnn.config.params import MlflowParams
from imdb_rnn.io import atomic_path, sweep_stale_temporaries
from imdb_rnn.process import Owner
from imdb_rnn.tracking import runs as tracking

KILLED = textwrap.dedent("""
    import os, signal, sys
    from imdb_rnn.tracking import runs as tracking
    from imdb_rnn.io import atomic_path
    from imdb_rnn.config.params import MlflowParams

    experiment = tracking.connect(MlflowParams(tracking_uri=sys.argv[1], experiment="e"))
    with experiment.run("killed") as run, atomic_path(sys.argv[2]) as tmp:
        print(run.id, tmp, flush=True)
        tmp.write_text("half")
        os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.fixture
def store(tmp_path, monkeypatch) -> MlflowParams:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return MlflowParams(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="e")


def test_the_next_run_fails_a_killed_runs_mlflow_run_and_removes_its_temporary(tmp_path, store):
    out = tmp_path / "out.txt"
    killed = subprocess.run([sys.executable, "-c", KILLED, store.tracking_uri, str(out)],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    run_id, tmp = killed.stdout.split()
    client = MlflowClient(store.tracking_uri)
    assert client.get_run(run_id).info.status == "RUNNING"  # SIGKILL cannot be caught
    assert Path(tmp).is_file()
    tags = client.get_run(run_id).data.tags
    assert {"owner.host", "owner.pid", "owner.start", "owner.boot"} <= set(tags)

    live = tracking.connect(store)  # the next run of the stage: recovery comes first
    with live.run("alive") as alive:
        assert client.get_run(run_id).info.status == "FAILED"
        assert "died" in client.get_run(run_id).data.tags["fail_reason"]
        tracking.connect(store)  # a second process now: this one's run is alive, kept
        assert client.get_run(alive.id).info.status == "RUNNING"
    assert sweep_stale_temporaries(tmp_path) == [Path(tmp)]
    assert not Path(tmp).exists() and not out.exists()


def test_runs_of_other_hosts_are_never_declared_dead(store):
    experiment = tracking.connect(store)
    elsewhere = experiment.client.create_run(
        experiment.id, run_name="elsewhere",
        tags=Owner("another-host", 1, "1").tags())
    tracking.connect(store)
    assert experiment.client.get_run(elsewhere.info.run_id).info.status == "RUNNING"
    assert Owner("another-host", 1, "1").alive() is None


def test_a_live_writers_temporary_is_kept_a_dead_ones_removed(tmp_path):
    target = tmp_path / "reports" / "x.json"
    target.parent.mkdir()
    me = Owner.current()
    dead = target.parent / ".x.json.tmp-99999999-1-abcdefgh"
    old_style = target.parent / ".x.json.tmp-abcdefgh"  # written before owners were recorded
    dead.write_text("half")
    old_style.write_text("half")
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(f".x.json.tmp-{me.pid}-{me.start}-")
        assert sorted(sweep_stale_temporaries(tmp_path)) == sorted([dead, old_style])
        assert tmp.exists()  # ours: alive
        tmp.write_text("{}")
    assert target.read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


SLOW_STAGE = {"stages": {"slow": {
    "cmd": "python -c \"import time, pathlib; time.sleep(8); pathlib.Path('out.txt')"
           ".write_text('done')\"",
    "outs": ["out.txt"]}}}


def test_a_second_dvc_repro_in_one_workspace_stops_with_one_line_and_changes_nothing(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, env=env, check=True)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(SLOW_STAGE))
    first = subprocess.Popen(["dvc", "repro"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / ".dvc" / "tmp").glob("rwlock*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    before = sorted(p.name for p in tmp_path.iterdir())
    second = subprocess.run(["dvc", "repro"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    after = sorted(p.name for p in tmp_path.iterdir())
    assert first.poll() is None, "the first dvc repro ended before the second started"
    assert second.returncode != 0
    # DVC's own message: one ERROR line naming the busy output, then the PID holding it.
    errors = [line for line in second.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "out.txt' is busy" in errors[0], second.stderr
    assert f"(PID {first.pid})" in second.stderr, second.stderr
    assert after == before  # no dvc.lock, no output: the second touched nothing
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert (tmp_path / "out.txt").read_text() == "done" and (tmp_path / "dvc.lock").is_file()


WRITER = textwrap.dedent("""
    import sys
    from imdb_rnn.tracking import runs as tracking
    from imdb_rnn.config.params import MlflowParams

    experiment = tracking.connect(MlflowParams(tracking_uri=sys.argv[1], experiment="e"))
    for i in range(int(sys.argv[3])):
        with experiment.run(f"{sys.argv[2]}-{i}") as run:
            run.log_params({"i": i, "who": sys.argv[2]})
            for step in range(10):
                run.log_metrics({"m": step + i / 100}, step=step)
""")


def test_two_processes_writing_one_sqlite_store_lose_nothing(store):
    runs, steps = 15, 10
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, store.tracking_uri, who,
                                 str(runs)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for who in ("worker", "stage")]
    for writer in writers:
        out, _ = writer.communicate(timeout=300)
        assert writer.returncode == 0, out
    client = MlflowClient(store.tracking_uri)
    experiment = client.get_experiment_by_name("e")
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    assert sorted(r.info.run_name for r in found) == sorted(
        f"{who}-{i}" for who in ("worker", "stage") for i in range(runs))
    for run in found:
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "m")) == steps


@pytest.mark.slow
def test_twenty_trials_in_one_process_keep_memory_flat(tmp_path):
    """RSS after each trial is in the trials table; after two warm-up trials its trend grows by
    less than 60 MB over the next 18 (tiny data: a leak of a model or graph per trial shows)."""
    project = make_project(tmp_path, n_trials=20, pruner="none", epochs=1)
    out = tmp_path / "rss.csv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "trial_memory.py"), "--params", "params.yaml",
         "--study", "ff_random", "--trials", "20", "--warmup", "2", "--tolerance-mb", "60",
         "--out", str(out)], cwd=project, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = pd.read_csv(out)
    assert len(table) == 20 and table["rss_mb"].notna().all()
    assert rss_growth(table["rss_mb"].tolist(), 2) < 60


def test_the_rss_trend_tells_a_leak_from_one_large_trial():
    assert rss_growth([900, 1000] + [1000 + 10 * i for i in range(18)], 2) == pytest.approx(170)
    spike = [900, 1000] + [1000] * 9 + [1500] + [1000] * 8
    assert abs(rss_growth(spike, 2)) < 30


def test_an_owner_of_another_machine_or_container_is_never_declared_dead():
    import dataclasses

    me = Owner.current()
    gone = dataclasses.replace(me, pid=99999999)
    assert gone.alive() is False
    assert dataclasses.replace(gone, machine="another-machine").alive() is None
    assert dataclasses.replace(gone, pidns="1").alive() is None  # a container, same hostname
    rebooted = dataclasses.replace(me, boot="an-earlier-boot")
    assert rebooted.alive() is (False if me.machine else None)
    assert Owner.from_tags(me.tags()) == me


def test_the_sweep_leaves_names_that_are_not_its_own(tmp_path):
    theirs = [tmp_path / ".cache.tmp-notours", tmp_path / ".x.tmp-1-2-toolong123"]
    for path in theirs:
        path.write_text("keep")
    old_folder = tmp_path / ".models.tmp-99999999-1-old"  # a folder moved aside, then killed
    old_folder.mkdir()
    assert sweep_stale_temporaries(tmp_path) == [old_folder]
    assert all(path.exists() for path in theirs)



def test_an_exited_process_not_yet_reaped_is_dead():
    """A worker killed while its parent still runs is a zombie until the parent reaps it: its
    pid still answers kill(0), but its trial and MLflow run must be recovered all the same."""
    child = subprocess.Popen(["sleep", "0.2"])
    owner = Owner.current()
    from imdb_rnn.process import _start_ticks

    owner = Owner(owner.host, child.pid, _start_ticks(child.pid), owner.boot, owner.machine,
                  owner.pidns)
    assert owner.alive() is True
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert owner.alive() is False  # a zombie: exited, parent (this test) not waited yet
    child.wait()
    assert owner.alive() is False
