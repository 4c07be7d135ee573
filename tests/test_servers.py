"""Beyond one machine, on real servers started here on localhost: an Optuna study on PostgreSQL
with several worker processes, Optuna's heartbeat catching a dead worker, and an MLflow
tracking server (PostgreSQL backend store, proxied artifacts) that the pipeline logs to over
HTTP. Skipped where Debian's postgresql is not installed (.ci/run installs it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import ROOT, SHARED_ARCHIVE
from test_tuning import finish, make_project, outputs

from imdb_rnn.search import study as tuning

optuna.logging.set_verbosity(optuna.logging.WARNING)


def tune_process(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    """The tune stage (or a worker with --worker) as its own process, with ``env`` added."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MLFLOW_TRACKING_URI", tuning.STORAGE_ENV, tuning.GRACE_ENV)}
    return subprocess.Popen([sys.executable, str(ROOT / "stages" / "tune.py"), *args],
                            cwd=project, env=clean | env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def load_study(project: Path, storage: str) -> optuna.Study:
    from imdb_rnn.config.params import load_params

    params = load_params(project / "params.yaml")
    name = tuning.study_name("ff_tpe", params, project / "data" / "vectorized")
    return optuna.load_study(study_name=name, storage=tuning.open_storage(storage))


def tracking_runs(uri: str, experiment: str = "imdb-tuning") -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=1000) if found else []


OPEN_AT = """
import sys, time
from imdb_rnn.search import study
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
study.open_storage(sys.argv[1])
"""


def test_processes_opening_an_empty_postgresql_database_at_once_all_get_the_storage(postgres):
    """They all create Optuna's tables; PostgreSQL fails all but one CREATE TABLE."""
    for round_ in range(2):
        url = postgres.url(f"empty_{round_}")
        at = time.time() + 8  # every process imported and waiting by then
        processes = [subprocess.Popen([sys.executable, "-c", OPEN_AT, url, str(at)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True) for _ in range(6)]
        outs = [p.communicate(timeout=120)[0] for p in processes]
        assert [p.returncode for p in processes] == [0] * 6, outs


@pytest.mark.slow
def test_a_postgresql_study_shared_by_the_stage_and_three_workers(tmp_path, postgres):
    storage = postgres.url("study_workers")
    project = make_project(tmp_path, n_trials=10)
    env = {tuning.STORAGE_ENV: storage}
    # All four at once on an empty database: they race to create Optuna's tables and the study.
    workers = [tune_process(project, env, "--study", "ff_tpe", "--worker") for _ in range(3)]
    stage = tune_process(project, env, "--study", "ff_tpe", *outputs("ff_tpe"))
    logs = [finish(p) for p in (*workers, stage)]

    trials = load_study(project, storage).get_trials()
    finished = [t for t in trials if t.state in tuning.FINISHED]
    assert len(finished) == 10, logs[-1]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 10  # none repeated
    assert len({t.user_attrs["worker"] for t in finished}) >= 2, logs  # shared, not serial
    best = json.loads((project / "reports/tune/ff_tpe/best.json").read_text())
    assert best["storage"] == storage
    assert best["trials_complete"] + best["trials_pruned"] == 10
    runs = tracking_runs(f"sqlite:///{project}/mlflow.db")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if r.data.tags.get("run_kind") == "trial"]
    # One run per trial that ran, none lost. A worker that claimed a trial just after others
    # had claimed the study's last ones fails it at once ("surplus"), before any run starts.
    ran = [t for t in trials if t.state != TrialState.WAITING
           and not t.user_attrs.get("fail_reason", "").startswith("surplus")]
    assert sorted(int(r.data.tags["optuna_trial"]) for r in children) == sorted(
        t.number for t in ran)


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_by_the_heartbeat_and_retried(tmp_path, postgres):
    """A worker on another machine killed mid-trial: no process here can tell it died, so only
    Optuna's heartbeat can. The grace period is shortened to 8 s (IMDB_TUNE_GRACE_SECONDS)."""
    storage = postgres.url("study_heartbeat")
    # Trials long enough to be killed in the middle of one.
    project = make_project(tmp_path, n_trials=4, epochs=12, patience=12, pruner="none")
    env = {tuning.STORAGE_ENV: storage, tuning.GRACE_ENV: "8"}
    doomed = tune_process(project, env, "--study", "ff_tpe", "--worker")
    deadline = time.monotonic() + 300
    victim = None
    while victim is None and time.monotonic() < deadline and doomed.poll() is None:
        try:
            running = [t for t in load_study(project, storage).get_trials(
                deepcopy=False, states=(TrialState.RUNNING,)) if t.params]
        except KeyError:  # study not created yet
            running = []
        if running:
            victim = running[0]
        else:
            time.sleep(0.1)
    assert victim is not None, "the worker finished or failed before it could be killed"
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    killed_at = datetime.now()
    doomed.stdout.close()
    # As if it had run elsewhere: the process-id check of this host cannot claim it.
    study = load_study(project, storage)
    study._storage.set_trial_user_attr(victim._trial_id, "worker", "elsewhere:1:1")  # noqa: SLF001

    out = finish(tune_process(project, env, "--study", "ff_tpe", *outputs("ff_tpe")))
    trials = {t.number: t for t in load_study(project, storage).get_trials()}
    assert trials[victim.number].state == TrialState.FAIL, out
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state in tuning.FINISHED, out
    # The same configuration again (killed between two suggestions, the sampler draws the rest).
    assert trials[victim.number].params.items() <= retries[0].params.items()
    assert sum(t.state in tuning.FINISHED for t in trials.values()) == 4
    assert not [t for t in trials.values() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    runs = tracking_runs(f"sqlite:///{project}/mlflow.db")
    assert not [r for r in runs if r.info.status == "RUNNING"]  # the dead trial's run: FAILED
    # Found stale by the first trial claimed after the grace period (the stage checks before
    # each trial, and every 5 s while it waits for other workers' trials).
    # Stale 8 s after its last heartbeat, which came up to one beat (2 s) before the kill.
    detected = (trials[victim.number].datetime_complete - killed_at).total_seconds()
    assert 8 - 8 // 4 - 1 <= detected <= 8 + 60, detected  # beat: grace // 4; 1 s slack
    print(f"killed trial {victim.number}: failed by the heartbeat {detected:.0f} s after the "
          f"kill (grace 8 s), retried as trial {retries[0].number}")


# --- the pipeline on an MLflow tracking server --------------------------------------------------

def _request(server, method: str, path: str, body: dict | None = None, *,
             credentials: tuple[str, str] | None = None, host: str | None = None) -> int:
    """The status of one plain HTTP request to the tracking server's REST API."""
    import base64
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if host is not None:
        headers["Host"] = host  # urllib sends this one instead of its own
    request = urllib.request.Request(f"{server.uri}{path}", method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_tracking_server_answers_only_authenticated_requests_to_its_own_address(
        tracking_server):
    """What the issue found open: a client with no credentials created an experiment and the
    registered model, and ``Host: localhost`` passed the host check from another address."""
    import psutil

    admin = (tracking_server.username, tracking_server.password)
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    create = "/api/2.0/mlflow/experiments/create"
    register = "/api/2.0/mlflow/registered-models/create"
    spoofed = ("localhost", f"localhost:{tracking_server.port}", "mlflow.example.org",
               f"10.0.0.1:{tracking_server.port}")
    statuses = {
        "read, no credentials": _request(tracking_server, "GET", search),
        "create experiment, no credentials": _request(tracking_server, "POST", create,
                                                      {"name": "intruder"}),
        "register model, no credentials": _request(tracking_server, "POST", register,
                                                   {"name": "imdb-sentiment-intruder"}),
        "read, wrong password": _request(tracking_server, "GET", search,
                                         credentials=(admin[0], "not-the-password")),
        **{f"read, admin, Host: {host}": _request(tracking_server, "GET", search,
                                                 credentials=admin, host=host)
           for host in spoofed},
        "create experiment, no credentials, Host: localhost": _request(
            tracking_server, "POST", create, {"name": "intruder"}, host="localhost"),
        "read, admin": _request(tracking_server, "GET", search, credentials=admin),
        "health, no credentials": _request(tracking_server, "GET", "/health"),
    }
    print("\n".join(f"{what}: {status}" for what, status in statuses.items()))
    assert statuses["read, no credentials"] == 401
    assert statuses["create experiment, no credentials"] == 401
    assert statuses["register model, no credentials"] == 401
    assert statuses["read, wrong password"] == 401
    for host in spoofed:
        assert statuses[f"read, admin, Host: {host}"] == 403, host
    assert statuses["create experiment, no credentials, Host: localhost"] == 403
    assert statuses["read, admin"] == 200 and statuses["health, no credentials"] == 200
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_server.uri)  # the session's credentials, from the environment
    assert client.get_experiment_by_name("intruder") is None
    assert not client.search_registered_models("name = 'imdb-sentiment-intruder'")
    # It listens on the loopback address only.
    server = psutil.Process(tracking_server.process.pid)
    listening = {c.laddr.ip for p in (server, *server.children(recursive=True))
                 for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN
                 and c.laddr.port == tracking_server.port}
    assert listening == {"127.0.0.1"}, listening
    # The admin password is in no file of the server's (its config, log, user store).
    secret = tracking_server.password.encode()
    assert not [f for f in tracking_server.log.parent.rglob("*")
                if f.is_file() and secret in f.read_bytes()]


def test_the_tracking_server_takes_the_pipelines_credentials_from_the_environment(
        tracking_server, monkeypatch):
    """MLflow's client (and so every stage) authenticates with MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD; without them a stage stops at its start with one line."""
    from imdb_rnn.config.params import MlflowParams
    from imdb_rnn.errors import PipelineError
    from imdb_rnn.tracking import runs as tracking

    params = MlflowParams(tracking_uri=tracking_server.uri, experiment="imdb-auth-check")
    experiment = tracking.connect(params)
    with experiment.run("authenticated") as run:
        run.log_metrics({"accuracy": 0.5})
    assert experiment.client.get_run(run.id).info.status == "FINISHED"
    experiment.client.create_registered_model("imdb-auth-check")  # a registry write
    assert experiment.client.get_registered_model("imdb-auth-check").name == "imdb-auth-check"
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    with pytest.raises(PipelineError, match=r"refused the credentials .*401") as error:
        tracking.connect(params)
    message = str(error.value)
    assert "\n" not in message and tracking_server.password not in message, message


# What every command run on the served DAG printed (stdout and stderr), searched for the
# tracking server's password by the last test.
OUTPUTS: dict[str, str] = {}


@pytest.fixture(scope="module")
def served_dag(tracking_server, postgres, tmp_path_factory):
    """The whole DAG of a tiny project (test_faults.tiny_project: one model, one study, one
    replicate seed), logging to the tracking server over HTTP and keeping its study on
    PostgreSQL; the project is kept for the tests below. (.ci/run runs the smoke profile's
    DAG on servers too: tools/smoke.py --servers.)"""
    from smoke import check_outputs, tool_env

    from test_faults import tiny_project

    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"offline IMDB copy not found at {SHARED_ARCHIVE}")
    workdir = tiny_project(tmp_path_factory.mktemp("served-dag"))
    env = tool_env({"MLFLOW_TRACKING_URI": tracking_server.uri,
                    tuning.STORAGE_ENV: postgres.url("dag_studies")})
    run = subprocess.run(["dvc", "repro"], cwd=workdir, env=env, capture_output=True,
                         text=True, timeout=600)
    OUTPUTS["dvc repro (served_dag)"] = run.stdout + run.stderr
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with (workdir.parent / "checks.log").open("w") as log:  # searched as a file
        check_outputs(workdir, log)
    return workdir


@pytest.mark.slow
def test_the_dag_logs_everything_to_the_tracking_server(served_dag, tracking_server):
    """No run left RUNNING, artifacts stored through the server, each model's test accuracy on
    its run and logged model, the champion downloaded back and predicting raw text."""
    from smoke import check_served

    print("\n".join(check_served(served_dag, tracking_server.uri, tracking_server.artifacts)))
    registry = json.loads((served_dag / "reports/registry.json").read_text())
    assert registry["version"] and registry["model"]


@pytest.mark.slow
def test_the_server_stopped_mid_stage_fails_it_in_one_line_and_a_rerun_loses_nothing(
        served_dag, tracking_server):
    from mlflow.tracking import MlflowClient

    from smoke import tool_env

    workdir = served_dag
    # MLflow retries a lost server for minutes by default (MLFLOW_HTTP_REQUEST_MAX_RETRIES).
    env = tool_env({"MLFLOW_TRACKING_URI": tracking_server.uri,
                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"})
    client = MlflowClient(tracking_server.uri)
    experiment = client.get_experiment_by_name("imdb-baselines")
    before = {r.info.run_id for r in client.search_runs([experiment.experiment_id],
                                                         max_results=5000)}
    stage = subprocess.Popen(["dvc", "repro", "--force", "--single-item", "train@cnn"],
                             cwd=workdir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    started = []
    while not started and time.monotonic() < deadline and stage.poll() is None:
        started = [r for r in client.search_runs([experiment.experiment_id], max_results=5000,
                                                 filter_string="attributes.status = 'RUNNING'")
                   if r.info.run_id not in before]
        time.sleep(0.2)
    assert started, "the stage ended before its run started"
    tracking_server.stop()
    out, _ = stage.communicate(timeout=600)
    OUTPUTS["dvc repro --force --single-item train@cnn (server stopped)"] = out
    try:
        assert stage.returncode != 0, out
        assert "Traceback" not in out, out
        errors = [line for line in out.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and tracking_server.uri in errors[0], out
        assert len(errors[0]) <= 300, errors[0]
    finally:
        tracking_server.start()

    rerun = subprocess.run(["dvc", "repro"], cwd=workdir, env=env, capture_output=True,
                           text=True, timeout=900)
    OUTPUTS["dvc repro (after the restart)"] = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    status = subprocess.run(["dvc", "status", "--json"], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=120)
    OUTPUTS["dvc status --json"] = status.stdout + status.stderr
    assert json.loads(status.stdout) == {}, status.stdout
    # The stage's run, which it could not end, is ended FAILED once the server answers again
    # (by the process it handed the run to: DVC may restore the stage from its run cache, and
    # then no stage starts that would recover it).
    deadline = time.monotonic() + 60
    while True:
        runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id],
                                                            max_results=5000)}
        running = [r.info.run_name for r in runs.values() if r.info.status == "RUNNING"]
        if not running or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not running, (running, rerun.stdout[-3000:])
    dead = runs[started[0].info.run_id]
    assert dead.info.status == "FAILED", dead.data.tags
    assert before <= set(runs)  # every earlier run is still there
    # The model in the workspace is a finished run's, every epoch of it on the server.
    model_run = json.loads((workdir / "models/cnn/run.json").read_text())["run_id"]
    trained = runs[model_run]
    assert trained.info.status == "FINISHED" and "test_accuracy" in trained.data.metrics
    history = client.get_metric_history(model_run, "val_accuracy")
    train_json = json.loads((workdir / "reports/train/cnn/train.json").read_text())
    assert len(history) == train_json["epochs"]


@pytest.mark.slow
def test_four_processes_logging_to_the_tracking_server_at_once_lose_nothing(tracking_server):
    """They start together on an experiment none of them finds: all four try to create it."""
    from server_load import run_tracking

    result = run_tracking(tracking_server, processes=4, steps=50)
    assert result["exit_codes"] == [0, 0, 0, 0], result
    assert result["runs"] == result["finished"] == 4
    assert result["points_found"] == result["points_expected"] == 4 * 50 * 4


# --- the tracking server's password is nowhere ---------------------------------------------------

def _password_forms(username: str, password: str) -> dict[str, bytes]:
    """Every form the password could be written in: as is, its unique part alone (what is left
    of it in any text encoding that keeps letters and digits: JSON, YAML, an escaped or
    truncated copy), URL-encoded (by each of Python's conventions, and with lower-case hex), and
    base64, alone and as ``user:password`` in the ``Authorization: Basic`` header."""
    import base64
    import re
    from urllib.parse import quote, quote_plus

    encoded = quote(password, safe="")
    forms = {
        "raw": password,
        "unique part": re.match(r"sntl[0-9a-f]{24}", password).group(),
        "URL-encoded": encoded,
        "URL-encoded, lower-case hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(),
                                              encoded),
        "URL-encoded, / kept": quote(password),
        "URL-encoded, form (+ for space)": quote_plus(password),
        "base64 of user:password (Authorization: Basic)": base64.b64encode(
            f"{username}:{password}".encode()).decode(),
        "base64 of the password": base64.b64encode(password.encode()).decode(),
    }
    return {name: form.encode() for name, form in forms.items()}


class _Search:
    """Searches items (files, database dumps, captured outputs) for every form of the password
    and keeps, per place, how many items it searched and which contained a form (and which)."""

    def __init__(self, forms: dict[str, bytes]) -> None:
        self.forms = forms
        self.places: dict[str, tuple[int, int]] = {}  # place -> (items, items with a form)
        self.hits: list[tuple[str, str, list[str]]] = []  # (place, item, the forms in it)

    def _found(self, data: bytes) -> list[str]:
        return [name for name, form in self.forms.items() if form in data]

    def items(self, place: str, items: Iterable[tuple[str, bytes]]) -> int:
        searched = found = 0
        for name, data in items:
            searched += 1
            forms = self._found(data)
            if forms:
                found += 1
                self.hits.append((place, name, forms))
        self.places[place] = (searched, found)
        return found

    def files(self, place: str, root: Path, *, skip: tuple[Path, ...] = (),
              only: str = "*") -> int:
        """Every regular file under ``root`` (or ``root`` itself), read as bytes."""

        def read() -> Iterator[tuple[str, bytes]]:
            for path in [root] if root.is_file() else sorted(root.rglob(only)):
                if (path.is_symlink() or not path.is_file()
                        or any(path == s or s in path.parents for s in skip)):
                    continue
                try:
                    data = path.read_bytes()
                except FileNotFoundError:  # a live server's temporary file, gone meanwhile
                    continue
                yield str(path), data

        return self.items(place, read())

    def table(self) -> str:
        width = max(len(place) for place in self.places)
        lines = [f"forms searched: {'; '.join(self.forms)}",
                 f"{'place searched':<{width}}  items  with the password",
                 *(f"{place:<{width}}  {n:>5}  {found:>5}"
                   for place, (n, found) in self.places.items())]
        return "\n".join(lines + [f"found in {place}: {item} ({', '.join(forms)})"
                                   for place, item, forms in self.hits])


def _pg_dump(postgres, database: str) -> bytes:
    """Everything in ``database`` of the session's PostgreSQL server (plain SQL)."""
    import shutil

    found = [postgres.bin / "pg_dump",
             *sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), reverse=True)]
    pg_dump = next((str(p) for p in found if p.is_file()), None) or shutil.which("pg_dump")
    return subprocess.run([pg_dump, "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "imdb",
                           database], capture_output=True, check=True, timeout=120).stdout


@pytest.mark.slow
def test_the_tracking_password_sentinel_is_nowhere_the_served_dag_wrote(
        served_dag, tracking_server, postgres, tmp_path):
    """Last (it also searches what the tests above made the DAG write): the pipeline's password
    for the tracking server (a sentinel, conftest.TRACKING_PASSWORD) in no file of the DAG's
    project (work tree, .git, DVC's cache and run cache), of the tracking server (its log, its
    auth config and user store, its proxied artifacts), in none of its stores (MLflow's runs and
    Optuna's study on PostgreSQL: dumped, and every byte of the PostgreSQL server's folder), and
    in nothing a command printed; raw, URL-encoded or base64 as in the Authorization header."""
    from conftest import TRACKING_PASSWORD

    password = tracking_server.password
    # The DAG's stages authenticated with the sentinel (the environment they inherited), and the
    # server refuses anything else (test_the_tracking_server_answers_only_authenticated...).
    assert password == TRACKING_PASSWORD == os.environ["MLFLOW_TRACKING_PASSWORD"]
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == tracking_server.username
    assert _request(tracking_server, "GET", "/api/2.0/mlflow/experiments/search?max_results=1",
                    credentials=(tracking_server.username, "x" + password)) == 401
    forms = _password_forms(tracking_server.username, password)
    assert len(set(forms.values())) == len(forms)  # each form its own (URL-encoding changes it)

    # The search finds every form where one is planted: in a file, a nested file, among bytes.
    planted = tmp_path / "planted"
    (planted / "nested").mkdir(parents=True)
    (planted / "clean.txt").write_bytes(b"nothing here " + password[:4].encode())
    for i, form in enumerate(forms.values()):
        (planted / "nested" / f"{i}.bin").write_bytes(b"\x00before" + form + b"after\n")
    proof = _Search(forms)
    assert proof.files("planted", planted) == len(forms), proof.table()
    assert proof.items("planted output", [("ok", b"clean"), ("leak", b"x" + forms["raw"])]) == 1
    assert proof.places == {"planted": (len(forms) + 1, len(forms)),
                            "planted output": (2, 1)}, proof.table()
    found = {Path(item).name: names for place, item, names in proof.hits if place == "planted"}
    assert all(name in found[f"{i}.bin"] for i, name in enumerate(forms)), proof.table()

    search = _Search(forms)
    cache = served_dag / ".dvc" / "cache"
    search.files("DAG work tree (every file, .git included; DVC cache apart)", served_dag,
                 skip=(cache,))
    search.files("DVC cache (.dvc/cache, the run cache included)", cache)
    assert (cache / "runs").is_dir()
    search.files("beside the work tree (checks.log, the data slice)", served_dag.parent,
                 skip=(served_dag,))
    server_root = tracking_server.log.parent
    search.files("tracking server log", tracking_server.log)
    search.files("tracking server auth user store (SQLite) and config", server_root,
                 only="basic_auth*")
    search.files("tracking server artifact root (proxied artifacts)", tracking_server.artifacts)
    search.files("tracking server folder, anything else", server_root,
                 skip=(tracking_server.artifacts, tracking_server.log,
                       *server_root.glob("basic_auth*")))
    mlflow_dump = _pg_dump(postgres, "mlflow")
    search.items("MLflow backend store (pg_dump of database mlflow)", [("mlflow", mlflow_dump)])
    search.items("Optuna study (pg_dump of database dag_studies)",
                 [("dag_studies", _pg_dump(postgres, "dag_studies"))])
    search.files("PostgreSQL server folder (data files, WAL, its log: raw bytes)",
                 postgres.root)
    search.items("captured stdout+stderr of every command",
                 [(label, text.encode()) for label, text in OUTPUTS.items()])
    table = search.table()
    print(table)
    # What was searched holds what the DAG wrote there.
    assert search.places["DVC cache (.dvc/cache, the run cache included)"][0] > 0, table
    assert b"imdb-baselines" in mlflow_dump and b"test_accuracy" in mlflow_dump, table
    assert search.places["tracking server artifact root (proxied artifacts)"][0] > 0, table
    assert "dvc repro (served_dag)" in OUTPUTS, table
    assert not search.hits, "the password was written:\n" + table
