"""The pipeline's stages on PostgreSQL with a password: no password is ever written, an outage is
one line, and a plain `dvc repro` afterwards leaves nothing RUNNING.

One scratch PostgreSQL server of this module (Debian's ``postgresql``; skipped where it is not
installed), with a role that must log in with its password (scram-sha-256: a URL whose password
was redacted before connecting would be refused), holds the Optuna study and MLflow's store.
A tiny project of the real pipeline runs ``tune@STUDY`` (and everything it needs) on it; a
second study storage on the same server is stopped in the middle of a trial. At the end every
byte the runs wrote is searched for the password.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import ROOT, SHARED_ARCHIVE

from imdb_rnn.search import study as tuning

optuna.logging.set_verbosity(optuna.logging.WARNING)

ROLE = "pipeline"
# A password that appears nowhere but in the store URLs given to the pipeline (hex: the same
# in a URL, URL-encoded or not).
SENTINEL = "sntl" + secrets.token_hex(12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A scratch PostgreSQL server, its role ``ROLE`` with the password ``SENTINEL``."""

    def __init__(self) -> None:
        from servers import Postgres

        self.postgres = Postgres.scratch()
        hba = self.postgres.data / "pg_hba.conf"
        # The role logs in with its password; the superuser (the test's own checks) as before.
        hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        self.postgres.stop()
        self.postgres.start()
        self.sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{SENTINEL}'")

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.postgres.port, user="imdb",
                                      dbname=database)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
        connection.close()

    def url(self, database: str) -> str:
        """A new database of the role, as the role's URL with its password."""
        self.sql(f'CREATE DATABASE "{database}" OWNER {ROLE}')
        return (f"postgresql+psycopg2://{ROLE}:{SENTINEL}@127.0.0.1:{self.postgres.port}/"
                f"{database}")

    def dump(self, database: str) -> bytes:
        """Everything in ``database`` (pg_dump, plain SQL), as the superuser."""
        found = [self.postgres.bin / "pg_dump",
                 *sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), reverse=True)]
        pg_dump = next((str(p) for p in found if p.is_file()), None) or shutil.which("pg_dump")
        return subprocess.run([pg_dump, "-h", "127.0.0.1", "-p",
                               str(self.postgres.port), "-U", "imdb", database],
                              capture_output=True, check=True, timeout=120).stdout


@pytest.fixture(scope="module")
def server():
    from servers import postgres_bin

    if postgres_bin() is None:
        pytest.skip("PostgreSQL server not installed (Debian: apt-get install postgresql)")
    server = Server()
    try:
        yield server
    finally:
        server.postgres.remove()


def test_the_role_cannot_log_in_without_its_password(server):
    """What makes the search below meaningful: the stages connect with the password itself."""
    import psycopg2

    for password in ("***", ""):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(host="127.0.0.1", port=server.postgres.port, user=ROLE,
                             password=password, dbname="postgres", connect_timeout=5)


# --- a tiny project on PostgreSQL -----------------------------------------------------------

# What every command of this module printed, searched for the password at the end.
OUTPUTS: dict[str, str] = {}


def _run(label: str, args: list[str], cwd: Path, env: dict[str, str],
         timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    OUTPUTS[label] = done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def project(server, tmp_path_factory):
    """A tiny project (test_faults.tiny_project) whose trials run 30 epochs (long enough to be
    stopped in the middle of one) in two worker processes, with `dvc repro tune@STUDY` done on the
    module's server: its study (database ``optuna``) and MLflow's store (database ``mlflow``,
    artifacts in ``mlartifacts/`` of the project)."""
    from smoke import tool_env
    from test_faults import STUDY, tiny_project

    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"offline IMDB copy not found at {SHARED_ARCHIVE}")
    workdir = tiny_project(tmp_path_factory.mktemp("postgresql-stages"))
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["tune"].update(epochs=30, patience=30, n_trials=2, pruner="none")
    params["compute"].update(workers=2, threads=1)  # the stage and one more worker process
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    urls = {"optuna": server.url("optuna"), "mlflow": server.url("mlflow")}
    env = tool_env({"MLFLOW_TRACKING_URI": urls["mlflow"], tuning.STORAGE_ENV: urls["optuna"]})
    run = _run("dvc repro tune@STUDY", ["dvc", "repro", f"tune@{STUDY}"], workdir, env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return workdir, env, urls, STUDY


def test_the_stages_on_postgresql_record_the_stores_without_the_password(project, server):
    workdir, _, urls, study = project
    best = json.loads((workdir / f"reports/tune/{study}/best.json").read_text())
    redacted = urls["optuna"].replace(SENTINEL, "***")
    assert best["storage"] == redacted
    run_file = json.loads((workdir / "models/cnn/run.json").read_text())
    assert run_file["tracking_uri"] == urls["mlflow"].replace(SENTINEL, "***")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(urls["mlflow"])
    experiment = client.get_experiment_by_name("imdb-tuning")
    parents = client.search_runs([experiment.experiment_id], "tags.run_kind = 'study'")
    assert [p.data.params["storage"] for p in parents] == [redacted]
    assert parents[0].data.tags["optuna_storage"] == tuning.storage_key(
        urls["optuna"], best["study"])


def _running_trial(url: str, deadline: float, stage: subprocess.Popen):
    """The study of the storage ``url`` (its only one), and its first trial seen RUNNING with
    its params drawn."""
    storage = tuning.open_storage(url)
    while time.monotonic() < deadline and stage.poll() is None:
        names = optuna.study.get_all_study_names(storage)
        if names:
            study = optuna.load_study(study_name=names[0], storage=storage)
            running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if t.params]
            if running:
                return names[0], running[0]
        time.sleep(0.1)
    return None, None


@pytest.mark.slow
def test_a_storage_outage_mid_trial_is_one_line_and_a_plain_repro_leaves_nothing_running(
        project, server):
    """The issue's case: tune@STUDY ran on one storage (DVC's run cache holds it), then runs
    again (-f) on another, whose server stops in the middle of a trial. The stage fails with one
    line naming the storage; after the restart a plain `dvc repro` restores the stage from
    DVC's run cache (no stage opens the study), and still no trial is left RUNNING: the failed
    stage handed its trial to a process that fails it (and queues it again) once the storage
    answers."""
    from mlflow.tracking import MlflowClient

    from test_faults import temporaries

    workdir, env, urls, study = project
    other = server.url("optuna_outage")
    outage_env = env | {tuning.STORAGE_ENV: other}
    stage = subprocess.Popen(["dvc", "repro", "-f", "-s", f"tune@{study}"], cwd=workdir,
                             env=outage_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    name, victim = _running_trial(other, time.monotonic() + 300, stage)
    if victim is None:
        stage.kill()
        pytest.fail(f"the stage ended before a trial ran: {stage.communicate()[0][-3000:]}")
    server.postgres.stop()
    stopped = time.monotonic()
    try:
        out, _ = stage.communicate(timeout=300)
        failed_in = time.monotonic() - stopped
    finally:
        server.postgres.start()
    OUTPUTS["dvc repro -f -s tune@STUDY (storage stopped)"] = out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    print(f"exit {stage.returncode} after {failed_in:.1f} s: {errors}")
    assert stage.returncode != 0, out
    assert "Traceback" not in out and "invalid data in the commit" not in out, out
    assert len(errors) == 1, out
    # The store that failed first: both live on the stopped server (as in the README's recipe).
    assert errors[0].startswith((
        f"error: Optuna storage {other.replace(SENTINEL, '***')} failed: OperationalError: ",
        f"error: MLflow tracking store {urls['mlflow'].replace(SENTINEL, '***')} failed: ")), \
        errors[0]
    assert len(errors[0]) <= 400, errors[0]
    assert temporaries(workdir) == []

    rerun = _run("dvc repro (after the outage)", ["dvc", "repro", f"tune@{study}"], workdir,
                 env | {tuning.STORAGE_ENV: other})
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    print(rerun.stdout[-2000:])
    # The processes the failed stage handed its trial and runs to close them once the server
    # answers (every few seconds, backing off to 5 s for a trial, 10 s for a run).
    client = MlflowClient(urls["mlflow"])
    ids = [e.experiment_id for e in client.search_experiments()]
    deadline = time.monotonic() + 90
    while True:
        trials = optuna.load_study(study_name=name, storage=tuning.open_storage(other)
                                   ).get_trials(deepcopy=False)
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        runs = [r.info.run_name for r in client.search_runs(ids, "attributes.status = 'RUNNING'")]
        if not (running or runs) or time.monotonic() > deadline:
            break
        time.sleep(1)
    states = {t.number: t.state.name for t in trials}
    print(f"trials after the rerun: {states}; MLflow runs RUNNING: {runs}")
    assert not running, states
    assert not runs, runs
    assert states[victim.number] == "FAIL", states
    assert trials[victim.number].user_attrs["fail_reason"].startswith("worker ")
    status = subprocess.run(["dvc", "status", "--json", "--with-deps", f"tune@{study}"],
                            cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=120)
    assert json.loads(status.stdout) == {}, status.stdout


def test_an_unreachable_postgresql_tracking_store_fails_in_seconds_in_one_line(tmp_path):
    """MLflow's SQL store retries a first connection for about 100 s (ten tries, a multi-line
    warning each); the stage tries once."""
    from test_tuning import make_project, outputs

    project = make_project(tmp_path)
    uri = f"postgresql+psycopg2://{ROLE}:{SENTINEL}@127.0.0.1:{_free_port()}/mlflow"
    env = {k: v for k, v in os.environ.items() if k != tuning.STORAGE_ENV}
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "tune.py"), "--study", "ff_tpe",
                           *outputs("ff_tpe")], cwd=project, env=env | {"MLFLOW_TRACKING_URI": uri},
                          capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    out = done.stdout + done.stderr
    OUTPUTS["stages/tune.py (tracking store unreachable)"] = out
    print(f"exit {done.returncode} in {seconds:.1f} s: {out.strip()}")
    assert done.returncode == 1
    assert out.strip().splitlines() == [line for line in out.strip().splitlines()
                                        if line.startswith("error: ")], out
    assert len(out.strip().splitlines()) == 1, out
    assert out.startswith(f"error: MLflow tracking store {uri.replace(SENTINEL, '***')} is "
                          "unreachable: OperationalError: "), out
    assert seconds < 30, seconds  # the interpreter, TensorFlow's import, one refused connection


def _count(data: bytes) -> int:
    return data.count(SENTINEL.encode())


def test_the_password_is_nowhere(project, server):
    """Last: every file of the project (work tree and git), DVC's cache (its run cache too),
    MLflow's store (its database dumped, its artifacts), Optuna's studies (dumped), the
    server's log, and what every command of this module printed."""
    from mlflow.tracking import MlflowClient

    workdir, _, urls, _ = project
    cache = workdir / ".dvc" / "cache"
    places: dict[str, tuple[int, int]] = {}  # place -> (items searched, occurrences)

    def files(root: Path, skip: Path | None = None) -> tuple[int, int]:
        paths = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
                 and (skip is None or skip not in p.parents)]
        return len(paths), sum(_count(p.read_bytes()) for p in paths)

    places["work tree (every file, .git included, DVC cache apart)"] = files(workdir, cache)
    places["DVC cache (.dvc/cache, its run cache included)"] = files(cache)
    client = MlflowClient(urls["mlflow"])
    roots = {e.artifact_location.removeprefix("file://") for e in client.search_experiments()}
    artifacts = [p for root in roots for p in Path(root).rglob("*") if p.is_file()]
    assert artifacts, roots
    places["MLflow artifacts " + ", ".join(sorted(roots))] = (
        len(artifacts), sum(_count(p.read_bytes()) for p in artifacts))
    for database in ("mlflow", "optuna", "optuna_outage"):
        dump = server.dump(database)
        places[f"pg_dump of database {database}"] = (1, _count(dump))
    places["PostgreSQL server log"] = (1, _count(server.postgres.log.read_bytes()))
    places["captured stdout+stderr: " + "; ".join(OUTPUTS)] = (
        len(OUTPUTS), sum(_count(text.encode()) for text in OUTPUTS.values()))
    for place, (searched, found) in places.items():
        print(f"{found} occurrence(s) in {place} ({searched} searched)")
    assert re.fullmatch(r"sntl[0-9a-f]{24}", SENTINEL)
    assert _count(f"x{SENTINEL}y\n{SENTINEL}".encode()) == 2  # the search finds what is there
    assert {place: found for place, (_, found) in places.items() if found} == {}
