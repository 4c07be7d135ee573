"""Fault injection: every kind of stage killed with SIGKILL at a random point, then `dvc repro`.

One scratch project (the real pipeline, a tiny slice of the real archive, one small model, one
study of it, one replicate seed) is driven through the DAG; each pass starts `dvc repro` and kills one
kind of stage with SIGKILL at a random point of its life (the seed is printed; set
``IMDB_FAULT_SEED`` to replay it). Afterwards one last `dvc repro` must complete, and then
`dvc status` is clean, no MLflow run is RUNNING, no temporary file is left anywhere, and
`git status` shows nothing but what a normal run writes. The matrix (stage x outcome) is printed
and written to ``$IMDB_FAULT_MATRIX`` when set.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import ROOT, SHARED_ARCHIVE, slice_archive
from smoke import prepare_workdir, tool_env

from imdb_rnn.config.params import apply_profile
from imdb_rnn.data.fetch import sha256_of

STUDY = "cnn_random"
# (label, stage script, what must be seen before the random delay starts, the longest delay),
# in the order `dvc repro` runs the stages (tune@ and seeds_tuned@ come before reference).
# Waits: "start" the stage's process exists; "run" an MLflow run is RUNNING; "trial" a trial
# of the study finished (another one is running); "retrain" the retrained model's temporary.
KILLS = [
    ("fetch", "fetch", "start", 0.4),
    ("preprocess", "preprocess", "start", 1.5),
    ("vectorize", "vectorize", "start", 1.5),
    ("embed", "embed", "start", 2.5),
    ("train", "train", "run", 1.0),
    ("evaluate", "evaluate", "start", 4.0),
    ("seeds", "seeds", "run", 1.0),
    ("tune (trial)", "tune", "trial", 0.5),
    ("tune (retrain)", "tune", "retrain", 0.5),
    ("reference", "reference", "start", 2.0),
    ("tune_report", "tune_report", "start", 1.5),
    ("samplers", "samplers", "run", 2.0),
    ("report", "report", "start", 2.5),
]
TIMEOUT = 300  # seconds for one `dvc repro`


def tiny_params(archive: Path) -> dict:
    """The real params with the smoke profile applied, cut to one model, one study, one
    replicate seed, and the given archive as the offline copy."""
    params = apply_profile({**yaml.safe_load((ROOT / "params.yaml").read_text()),
                            "profile": "smoke"})
    params["fetch"].update(local_archive=str(archive), local_sha256=sha256_of(archive))
    params["preprocess"]["per_label"] = 40
    # 40 consecutive ids per label are a few movies, none of them in the movie-disjoint list
    params["preprocess"]["validation"] = "random"
    params["vectorize"]["max_features"] = 2000
    params["embed"].update(epochs=1, use_unlabeled=False)
    params["train"]["models"] = {"cnn": params["train"]["models"]["cnn"] | {"epochs": 1}}
    tune = params["tune"]
    tune.update(n_trials=2, epochs=1, subsample=None, n_startup_trials=1,
                space={"cnn": tune["space"]["cnn"]},
                studies={STUDY: {"model": "cnn", "sampler": "random"}})
    params["samplers"].update(model="cnn", repeats=2, n_trials=2, subsample=None, epochs=1)
    params["report"].update(seeds=[5], bootstrap_resamples=200)
    return {"profile": "full", "profiles": {"smoke": {}}, **params}


def tiny_project(root: Path) -> Path:
    """``root``/project: a committed git + DVC project of the real pipeline with
    ``tiny_params`` on a slice of 40 reviews per split and label of the real archive."""
    archive = slice_archive(SHARED_ARCHIVE, root / "slice.tar.gz", per_dir=40)
    workdir = root / "project"
    prepare_workdir(ROOT, workdir, "smoke")
    (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params(archive), sort_keys=False))
    shutil.copy(ROOT / ".gitignore", workdir / ".gitignore")
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t"]):
        subprocess.run(command, cwd=workdir, env=tool_env(), check=True, capture_output=True)
    return workdir


def project_files(workdir: Path) -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=workdir,
                         capture_output=True, text=True, check=True).stdout
    return {line[3:] for line in out.splitlines()}


def declared_outputs(workdir: Path) -> list[str]:
    lock = yaml.safe_load((workdir / "dvc.lock").read_text())
    return [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]


def temporaries(workdir: Path) -> list[str]:
    return sorted(str(p.relative_to(workdir)) for p in workdir.rglob(".*.tmp-*")
                  if ".git" not in p.parts and ".dvc" not in p.parts)


def running_runs(workdir: Path) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    return [f"{r.info.run_name} ({r.info.run_id})" for r in client.search_runs(
        ids, "attributes.status = 'RUNNING'", max_results=1000)]


def _stage_process(dvc: psutil.Process, script: str) -> psutil.Process | None:
    """The Python process that runs ``stages/SCRIPT.py``: DVC starts it through ``$SHELL -c``
    (or /bin/sh), and dash does not exec its command, so the shell is a process of its own
    whose SIGKILL would leave the stage running as an orphan."""
    try:
        for child in dvc.children(recursive=True):
            cmdline = child.cmdline()
            if (len(cmdline) > 1 and Path(cmdline[0]).name.startswith("python")
                    and cmdline[1] == f"stages/{script}.py"):
                return child
    except psutil.Error:
        pass
    return None


def _ready(wait: str, workdir: Path, log: Path) -> bool:
    if wait == "start":
        return True
    if wait == "run":
        db = workdir / "mlflow.db"
        return db.exists() and _sql(db, "SELECT count(*) FROM runs WHERE status = 'RUNNING'") > 0
    if wait == "trial":
        return bool(re.search(r": trial \d+ (val_accuracy|pruned)", log.read_text(errors="replace")))
    return any((workdir / "models").glob(f".tuned_{STUDY}.tmp-*"))


def _sql(db: Path, query: str) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as connection:
            return int(connection.execute(query).fetchone()[0])
    except sqlite3.Error:
        return 0


def _kill_tree(process: psutil.Process) -> None:
    """SIGKILL a process and every process under it."""
    try:
        family = [*process.children(recursive=True), process]
    except psutil.Error:
        return
    for member in family:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def kill_during(workdir: Path, script: str, wait: str, longest: float, rng: random.Random,
                log: Path) -> str:
    """Run `dvc repro`; SIGKILL stage ``script`` at a random point after ``wait``; what happened."""
    log.write_text("")
    with open(log, "a") as out:
        # SHELL unset, as on CI: DVC runs each stage through /bin/sh, a process of its own.
        env = {k: v for k, v in tool_env().items() if k != "SHELL"}
        dvc = subprocess.Popen(["dvc", "repro"], cwd=workdir, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT
    outcome = "stage never started"
    try:
        parent = psutil.Process(dvc.pid)
        stage = None
        while time.monotonic() < deadline and dvc.poll() is None:
            stage = stage or _stage_process(parent, script)
            if stage is not None and _ready(wait, workdir, log):
                delay = rng.uniform(0.0, longest)
                time.sleep(delay)
                if stage.is_running() and stage.status() != psutil.STATUS_ZOMBIE:
                    stage.send_signal(signal.SIGKILL)
                    outcome = f"killed {delay:.2f} s after '{wait}'"
                else:
                    outcome = "finished before the kill"
                break
            if stage is not None and not stage.is_running():
                outcome = "finished before the kill"
                break
            time.sleep(0.01)
        if outcome == "finished before the kill":
            # This `dvc repro` would go on through the rest of the DAG, and every later pass
            # would find its stage already done: kill the whole run (whatever stage it is in;
            # one more fault the next `dvc repro` must recover from).
            _kill_tree(parent)
        dvc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if dvc.poll() is None:
            dvc.kill()
    return outcome


@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="offline IMDB copy not found")
def test_sigkill_anywhere_then_dvc_repro_leaves_nothing_behind(tmp_path):
    seed = int(os.environ.get("IMDB_FAULT_SEED", random.SystemRandom().randrange(10**6)))
    rng = random.Random(seed)
    print(f"\nfault injection seed {seed} (IMDB_FAULT_SEED={seed} replays it)")
    workdir = tiny_project(tmp_path)
    env = tool_env()

    matrix = []
    log = tmp_path / "dvc.log"
    recovered = []
    for label, script, wait, longest in KILLS:
        outcome = kill_during(workdir, script, wait, longest, rng, log)
        assert outcome != "stage never started", f"{label}: {log.read_text()[-2000:]}"
        recovered += _recovered(log.read_text())  # by this pass, of the kill before
        debris = [*running_runs(workdir), *temporaries(workdir)]
        matrix.append((label, outcome, "; ".join(debris) or "nothing"))

    final = subprocess.run(["dvc", "repro"], cwd=workdir, env=env, capture_output=True,
                           text=True, timeout=TIMEOUT * 2)
    status = subprocess.run(["dvc", "status", "--json"], cwd=workdir, env=env,
                            capture_output=True, text=True, check=True).stdout
    outputs = declared_outputs(workdir)
    unexpected = sorted(f for f in project_files(workdir)
                        if f != "dvc.lock" and Path(f).name != ".gitignore"
                        and not any(f == o or f.startswith(o.rstrip("/") + "/") for o in outputs))
    left = {"dvc repro": final.returncode, "dvc status": json.loads(status or "{}"),
            "RUNNING runs": running_runs(workdir), "temporaries": temporaries(workdir),
            "git status, new": unexpected}
    recovered += _recovered(final.stdout + final.stderr)
    table = "\n".join(f"| {label} | {outcome} | {debris} |" for label, outcome, debris in matrix)
    report = (f"seed {seed}\n\n| stage | kill | left RUNNING or on disk by the kill |\n"
              f"|---|---|---|\n{table}\n\nafter the last dvc repro: {json.dumps(left)}\n\n"
              "cleaned up by the next runs:\n" + "\n".join(recovered))
    print(report)
    if os.environ.get("IMDB_FAULT_MATRIX"):
        Path(os.environ["IMDB_FAULT_MATRIX"]).write_text(report)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert left == {"dvc repro": 0, "dvc status": {}, "RUNNING runs": [], "temporaries": [],
                    "git status, new": []}
    # The kill hit most kinds of stage (a very fast stage may end first on a fast machine).
    assert sum(outcome.startswith("killed") for _, outcome, _ in matrix) >= len(KILLS) - 3, matrix
    # The kills left debris that a later run cleaned up (what this test is about).
    assert any(debris != "nothing" for _, _, debris in matrix) and recovered, report


def _recovered(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.startswith("recovered:")]


# --- a full disk: one line naming the output, nothing partial ----------------------------------

def test_a_full_disk_inside_an_atomic_output_names_the_output(tmp_path):
    """ENOSPC from the kernel (/dev/full) while an output is written: one line that names the
    output, and neither the output, its temporary nor the folders made for it exist."""
    from imdb_rnn.errors import PipelineError
    from imdb_rnn.io import atomic_path

    target = tmp_path / "models" / "lstm" / "model.keras"
    with pytest.raises(PipelineError) as raised:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a model")
            with open("/dev/full", "wb") as full:
                full.write(b"x" * 4096)
                full.flush()
    assert str(raised.value) == f"no space left on device writing {target}"
    assert list(tmp_path.iterdir()) == []


FULL_DISK_STAGE = """
import shutil, sys
from imdb_rnn.cli import stage_main
from imdb_rnn.io import atomic_path

def main():
    with atomic_path(sys.argv[1], directory=True) as tmp:
        with open("/dev/zero", "rb") as zeros, open(tmp / "model.keras", "wb") as out:
            shutil.copyfileobj(zeros, out, 1 << 16)  # until the disk is full

stage_main(main, stage=False)
"""


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs mounted at ``tmp_path``/disk (root only; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_file_system_stops_a_stage_with_one_line_and_nothing_partial(tiny_disk):
    """A stage that fills a real file system (a tiny tmpfs) while writing its output folder."""
    import sys

    target = tiny_disk / "models" / "lstm"
    result = subprocess.run([sys.executable, "-c", FULL_DISK_STAGE, str(target)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: no space left on device writing {target}"]
    assert list(tiny_disk.iterdir()) == []  # no output, no temporary, no folder
