"""Signals to `dvc repro`: the running stage and its worker processes stop with it, in seconds.

`dvc repro` runs a stage as ``/bin/sh -c CMD``, and dash (Debian's /bin/sh) does not exec the
command: the stage is DVC's grandchild. Killing DVC alone (SIGTERM, SIGKILL) used to leave the
shell waiting and the stage training on under PID 1, writing outputs that ``dvc.lock`` never
records. Each case here starts `dvc repro` of one stage of a tiny real project (a ``train``
stage, or a ``tune`` stage with a worker process), sends the signal when the stage is in the
middle of its work, and asserts that within :data:`STOP_WITHIN` seconds no process of the
project is left; that the stage wrote one ``error:`` line and no traceback; that no MLflow run
and no Optuna trial is left RUNNING and no temporary file is left; and that the next plain
`dvc repro` of the stage succeeds and leaves the same clean state. Ctrl-C is SIGINT to the
process group of `dvc repro`, as a terminal sends it.

The table of the cases is printed, and written to ``$IMDB_SIGNAL_TABLE`` when set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import yaml

from conftest import SHARED_ARCHIVE
from imdb_rnn.cli import STOP_SECONDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bad_input  # noqa: E402
from smoke import tool_env
from test_faults import _sql, running_runs, temporaries, tiny_project

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="offline IMDB copy not found")]

# cli.STOP_SECONDS (a stage's clean stop, then SIGKILL) plus the margin of a busy 2-core machine
STOP_WITHIN = 20.0
TIMEOUT = 600  # seconds for one `dvc repro`
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}
TABLE: list[str] = []


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The fault tests' tiny project with one long training per case (train@long_SIGNAL) and
    one study per case (tune@cnn_SIGNAL, 4 trials of 25 epochs, two worker processes), the
    studies' baseline train@cnn already trained."""
    workdir = tiny_project(tmp_path_factory.mktemp("signals"))
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    cnn = params["train"]["models"]["cnn"]
    for name in SIGNALS:
        params["train"]["models"][f"long_{name}"] = cnn | {"epochs": 80}
    params["tune"].update(n_trials=4, epochs=25, pruner="none",
                          studies={f"cnn_{name}": {"model": "cnn", "sampler": "random"}
                                   for name in SIGNALS})
    params["compute"] = {"workers": 2, "threads": 1}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = tool_env()
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "cases"],
                   cwd=workdir, env=env, check=True, capture_output=True)
    setup = subprocess.run(["dvc", "repro", "train@cnn"], cwd=workdir, env=env,
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    yield workdir
    if TABLE:
        table = ("| stage | signal to `dvc repro` | dvc exit | the stage's error line | stopped "
                 "in | left RUNNING or on disk | next `dvc repro` |\n|---|---|---|---|---|---|---|\n"
                 + "\n".join(TABLE))
        print("\n" + table)
        if os.environ.get("IMDB_SIGNAL_TABLE"):
            Path(os.environ["IMDB_SIGNAL_TABLE"]).write_text(table + "\n")


def project_processes(workdir: Path) -> list[str]:
    """Every process working in the project (the stage, its shell, its workers, DVC)."""
    found = []
    for process in psutil.process_iter(["pid", "cwd", "cmdline"]):
        try:
            if process.info["cwd"] and Path(process.info["cwd"]) == workdir \
                    and process.pid != os.getpid():
                found.append(f"{process.pid} {' '.join(process.info['cmdline'] or [])[:120]}")
        except (psutil.Error, OSError):
            continue
    return found


def running_trials(workdir: Path) -> list[str]:
    """The RUNNING trials of the project's journal (tools/bad_input.py reads it the same way)."""
    return bad_input.running_trials(workdir / "studies" / "optuna.journal")


def _stage_tree(dvc: psutil.Process, script: str) -> tuple[psutil.Process | None, list]:
    """The stage's Python process (``stages/SCRIPT.py``) and every process under DVC."""
    try:
        below = dvc.children(recursive=True)
    except psutil.Error:
        return None, []
    for child in below:
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if len(cmdline) > 1 and cmdline[1] == f"stages/{script}.py":
            return child, below
    return None, below


def _workers(stage: psutil.Process) -> list[psutil.Process]:
    try:
        return [c for c in stage.children(recursive=True)
                if "multiprocessing" in " ".join(c.cmdline()) and "spawn_main" in
                " ".join(c.cmdline())]
    except psutil.Error:
        return []


def _runs(workdir: Path) -> int:
    return _sql(workdir / "mlflow.db", "SELECT count(*) FROM runs")


def _ready(kind: str, workdir: Path, log: Path, stage: psutil.Process, runs: int) -> bool:
    """In the middle of the work: a training has started its MLflow run (the store has more
    runs than before); a study has finished a trial and its worker process trains another."""
    if kind == "train":
        return _runs(workdir) > runs
    return (bool(re.search(r": trial \d+ (val_accuracy|pruned)", log.read_text(errors="replace")))
            and bool(_workers(stage)))


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("kind", ["train", "tune"])
@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_signal_to_dvc_repro_stops_the_stage_and_its_workers(project, kind, name, tmp_path):
    workdir = project
    target = f"train@long_{name}" if kind == "train" else f"tune@cnn_{name}"
    env = {k: v for k, v in tool_env().items() if k != "SHELL"}  # DVC runs /bin/sh -c, as on CI
    log = tmp_path / "dvc.log"
    runs = _runs(workdir)
    with open(log, "w") as out:
        # a session of its own: the process group a terminal's Ctrl-C goes to
        dvc = subprocess.Popen(["dvc", "repro", target], cwd=workdir, env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        parent = psutil.Process(dvc.pid)
        deadline = time.monotonic() + TIMEOUT
        stage, tree = None, []
        while time.monotonic() < deadline and dvc.poll() is None:
            stage, tree = _stage_tree(parent, kind)
            if stage is not None and _ready(kind, workdir, log, stage, runs):
                break
            time.sleep(0.05)
        assert stage is not None and dvc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
        stage, tree = _stage_tree(parent, kind)
        workers = _workers(stage)
        if kind == "tune":
            assert workers, "the study ran no worker process"
        # The shell between DVC and the stage: the stage is not DVC's child.
        shell = psutil.Process(stage.ppid())
        assert shell.pid != dvc.pid and Path(shell.cmdline()[0]).name in ("sh", "dash"), \
            shell.cmdline()
        sent = time.monotonic()
        if name == "SIGINT":
            os.killpg(dvc.pid, signal.SIGINT)
        else:
            dvc.send_signal(SIGNALS[name])
        _, alive = psutil.wait_procs([stage, *tree], timeout=STOP_WITHIN)
        stopped = time.monotonic() - sent
        dvc_rc = dvc.wait(timeout=STOP_WITHIN)
        left = project_processes(workdir)
    finally:
        for process in (dvc, ):
            if process.poll() is None:
                process.kill()
    output = log.read_text(errors="replace")
    assert not alive, f"still running {STOP_WITHIN} s after {name}: {alive}\n{output[-3000:]}"
    assert not left, left
    errors = _error_lines(output)
    assert len(errors) == 1, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-5000:]
    debris = [*running_runs(workdir), *running_trials(workdir), *temporaries(workdir)]
    # A clean stop leaves nothing. A stage that could not end cleanly within its watchdog's
    # STOP_SECONDS (a starved machine) is SIGKILLed by it: what that leaves RUNNING names its
    # dead owner, and the next run must clean it up (asserted below, after the rerun).
    if stopped < STOP_SECONDS:
        assert not debris, debris

    rerun = subprocess.run(["dvc", "repro", target], cwd=workdir, env=env, capture_output=True,
                           text=True, timeout=TIMEOUT)
    status = subprocess.run(["dvc", "status", target, "--json"], cwd=workdir, env=env,
                            capture_output=True, text=True, check=True).stdout
    after = {"RUNNING runs": running_runs(workdir), "RUNNING trials": running_trials(workdir),
             "temporaries": temporaries(workdir), "dvc status": json.loads(status or "{}")}
    TABLE.append(f"| {target} ({len(workers)} worker process{'es' if len(workers) != 1 else ''}) "
                 f"| {name} | {dvc_rc} | `{errors[0]}` | {stopped:.1f} s | "
                 f"{'; '.join(debris) or 'nothing'} | exit {rerun.returncode}, "
                 f"{json.dumps(after)} |")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert after == {"RUNNING runs": [], "RUNNING trials": [], "temporaries": [],
                     "dvc status": {}}
