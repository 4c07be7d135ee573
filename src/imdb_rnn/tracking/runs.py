"""The one module that talks to MLflow: the store, experiments, and runs that always close.

One API, MLflow's client, with explicit run ids and no module state: :func:`connect` returns an
:class:`Experiment`; :meth:`Experiment.run` opens a :class:`Run` that ends FINISHED, or FAILED
when its block raises; :meth:`Experiment.attach` hands back an existing run (evaluate adding test
metrics to its training run) without reopening it. Library functions return plain values; the
stages record them here.

Default store: ``sqlite:///mlflow.db`` in the project (no server to start). ``MLFLOW_TRACKING_URI``
in the environment points every stage at a shared tracking server instead.

Every run records its owner (tags ``owner.host``, ``owner.pid``, ``owner.start``,
``owner.boot``). A process killed with SIGKILL leaves its runs RUNNING; the next process that
connects to the experiment ends FAILED every RUNNING run whose owner on this host is gone
(:func:`recover_dead_runs`). Runs of owners on other hosts are left alone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import requests
import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

try:
    import fcntl
except ImportError:  # Windows: no lock needed for a single local process
    fcntl = None

from imdb_rnn.config import MlflowParams, ModelSection, Params, model_section
from imdb_rnn.errors import PipelineError
from imdb_rnn.process import Owner
from imdb_rnn.redaction import redact_text, redact_url

# Without this tag MLflow 3 opens an experiment in its GenAI view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# A shared view of the runs table (what the UI's "Share" button stores as an experiment tag):
# the accuracy columns shown, best test accuracy first. Opened by runs_table_link().
RUNS_VIEW_KEY = "accuracy"
RUNS_VIEW = {
    "orderByKey": "metrics.`test_accuracy`", "orderByAsc": False,
    # Without the wide Models and Dataset columns: the accuracies and the family fit a 1600-pixel
    # window beside the UI's assistant pane (seen in headless Chromium, MLflow 3.17.2).
    "selectedColumns": ["metrics.`test_accuracy`", "metrics.`best_val_accuracy`",
                        "metrics.`test_roc_auc`", "params.`family`"],
}


def tracking_uri(params: MlflowParams) -> str:
    """The store to use: MLFLOW_TRACKING_URI if set, else the params default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking_uri


def _one_line(error: BaseException, limit: int = 200) -> str:
    """The error on one line, passwords redacted; for a network failure (urllib3's pages of
    retries and pool reprs), just its cause: ``[Errno 111] Connection refused``, ``Read timed
    out``; for a database (SQLAlchemy's SQL, parameters and help link), its driver's first
    line."""
    text = redact_text(" ".join(str(error).split()))
    # SQLAlchemy: "(psycopg2.OperationalError) connection to server ... failed: ... [SQL: ...]"
    text = re.split(r" \[SQL: | \(Background on this error at: ", text)[0]
    cause = re.search(r"\[Errno -?\d+\] [^'\")(]+|Read timed out|Connection aborted", text)
    if cause and ("HTTPConnectionPool" in text or "HTTPSConnectionPool" in text):
        return cause.group(0).strip()[:limit]
    return text[:limit]


# MLflow's SQL store logs every database error with its traceback (a page of chained
# SQLAlchemy frames) before it raises it as an MlflowException, which the stage reports in one
# line; its retry warnings for a first connection go to the same logger.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
# "INFO mlflow.pyfunc: Validating input example against model signature" on every logged model:
# a note, not news (a failed validation is a WARNING, which still shows).
logging.getLogger("mlflow.pyfunc").setLevel(logging.WARNING)

# What the client raises when the store fails mid-stage (a tracking server stopped, a network
# gone): MLflow wraps most of it, artifact uploads may raise requests' own errors.
STORE_ERRORS = (mlflow.exceptions.MlflowException, requests.exceptions.RequestException)


def store_failure(uri: str, error: BaseException) -> PipelineError:
    """The one-line error of a store that failed after the stage had connected to it."""
    return PipelineError(f"MLflow tracking store {redact_url(uri)} failed: "
                         f"{type(error).__name__}: {_one_line(error, 160)}")


def _store_calls(cls: type) -> type:
    """Every public method of ``cls`` turns a failing store into a one-line PipelineError."""
    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except STORE_ERRORS as error:
                raise store_failure(self.client._tracking_client.tracking_uri,  # noqa: SLF001
                                    error) from None
        return call

    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, wrap(value))
    return cls


@_store_calls
@dataclass(frozen=True)
class Run:
    """One MLflow run, written by id through the client (never MLflow's active-run stack)."""

    client: MlflowClient
    id: str

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Flat params, stringified as MLflow stores them."""
        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's batch limit for params
            self.client.log_batch(self.id, params=items[start:start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, *,
                    model_id: str | None = None, dataset: Any = None) -> None:
        """Metrics at ``step``; with ``model_id`` they are the logged model's too, with
        ``dataset`` (an MLflow dataset) they say which data they were measured on."""
        now = int(time.time() * 1000)
        name, digest = (None, None) if dataset is None else (dataset.name, dataset.digest)
        self.client.log_batch(self.id, metrics=[
            Metric(k, float(v), now, step, model_id=model_id, dataset_name=name,
                   dataset_digest=digest) for k, v in metrics.items()])

    def log_history(self, history: list[dict[str, float]]) -> None:
        """Per-epoch metrics, step = epoch number, same names for every family."""
        for row in history:
            self.log_metrics({k: v for k, v in row.items() if k != "epoch"},
                             step=int(row["epoch"]))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(self.id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.id, str(path), artifact_path=artifact_path)

    def log_figure(self, figure: Any, name: str) -> None:
        self.client.log_figure(self.id, figure, name)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.id, text, name)

    def log_dict(self, data: dict, name: str) -> None:
        self.client.log_dict(self.id, data, name)

    def end(self, status: str) -> None:
        """Close the run with FINISHED, KILLED or FAILED."""
        self.client.set_terminated(self.id, status=status)


@dataclass(frozen=True)
class Experiment:
    """An experiment of one tracking store; every run of a stage goes through it."""

    client: MlflowClient
    id: str
    uri: str

    @contextlib.contextmanager
    def run(self, run_name: str, *, tags: Mapping[str, str] | None = None) -> Iterator[Run]:
        """A new run, closed whatever happens: FINISHED, or FAILED when the block raises."""
        try:
            created = self.client.create_run(self.id, run_name=run_name,
                                             tags={**(tags or {}), **Owner.current().tags()})
        except mlflow.exceptions.MlflowException as error:
            raise PipelineError(f"MLflow run {run_name} cannot be started: {_one_line(error)} "
                                f"(tracking store {redact_url(self.uri)})") from None
        run = Run(self.client, created.info.run_id)
        try:
            yield run
        except BaseException:
            try:
                run.end("FAILED")
            except PipelineError:  # the store is gone
                hand_off(self.uri, run.id)
            raise
        try:
            run.end("FINISHED")
        except PipelineError:
            # The store went away after the work: the stage fails (a block that writes outputs
            # moves them into place after this), so its run is FAILED once the store answers.
            hand_off(self.uri, run.id)
            raise

    def attach(self, run_id: str) -> Run | None:
        """The existing run ``run_id`` (its status untouched), or None when the store lacks it."""
        return None if self.status(run_id) is None else Run(self.client, run_id)

    def status(self, run_id: str) -> str | None:
        """RUNNING, FINISHED, FAILED or KILLED; None when the store lacks the run."""
        try:
            return self.client.get_run(run_id).info.status
        except mlflow.exceptions.MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise store_failure(self.uri, error) from None

    def runs(self, filter_string: str, *, max_results: int = 1000,
             order_by: list[str] | None = None) -> list[Any]:
        try:
            return self.client.search_runs([self.id], filter_string=filter_string,
                                           order_by=order_by, max_results=max_results)
        except STORE_ERRORS as error:
            raise store_failure(self.uri, error) from None

    def link(self, run_id: str) -> str:
        """A link to a run that works inside the MLflow UI (relative to the UI's address)."""
        return f"#/experiments/{self.id}/runs/{run_id}"

    def finished_run_ids(self) -> list[str]:
        """Ids of FINISHED runs, newest first, one per run name (the latest)."""
        latest: dict[str, str] = {}
        for r in self.runs("attributes.status = 'FINISHED'",
                           order_by=["attributes.start_time DESC"]):
            latest.setdefault(r.info.run_name, r.info.run_id)
        return list(latest.values())


@contextlib.contextmanager
def updating(run: Run) -> Iterator[Run]:
    """Write more to a finished run without reopening it (it keeps its status and end time);
    an error in the block is tagged on it as ``update_failed``."""
    try:
        yield run
    except BaseException as error:
        run.set_tags({"update_failed": redact_text(f"{type(error).__name__}: {error}")[:500]})
        raise


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables set for the block, then restored as they were (or removed)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def connect(params: MlflowParams, experiment: str | None = None) -> Experiment:
    """The experiment ``experiment`` (default ``params.experiment``) of the store, created and
    tagged as model training if needed; the store must answer now, not after an hour of training.
    """
    uri = tracking_uri(params)
    # Fail fast: one try with a short timeout instead of MLflow's minutes of retries.
    try:
        # Inside the lock: the client opens the store, which creates or migrates a new SQLite
        # database; two workers starting together would otherwise both alter its tables.
        with environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10"), \
                _store_lock(uri):
            probe_database(uri)
            client = MlflowClient(tracking_uri=uri)
            experiment_id = _ensure_experiment(client, experiment or params.experiment)
    except Exception as error:  # connection refused, bad URI, locked or corrupt database
        reason = _one_line(error, 300)
        # A server that answers 401/403 is reachable: say what is wrong with the credentials.
        problem = ("refused the credentials (set MLFLOW_TRACKING_USERNAME and "
                   "MLFLOW_TRACKING_PASSWORD)" if re.search(r"\b40[13]\b", reason)
                   else "is unreachable")
        raise PipelineError(f"MLflow tracking store {redact_url(uri)} {problem}: "
                            f"{type(error).__name__}: {reason}") from None
    experiment = Experiment(client, experiment_id, uri)
    recover_dead_runs(experiment)
    return experiment


# Database stores (MLflow's SQLAlchemy store): how long one connection attempt may take.
DATABASE_CONNECT_SECONDS = 10
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")


def probe_database(uri: str, seconds: int = DATABASE_CONNECT_SECONDS) -> None:
    """For a database tracking URI (``postgresql+psycopg2://...``), one connection with a
    ``seconds`` connect timeout; raises what the driver raised. MLflow's store retries a first
    connection that fails ten times with backoff (about 100 s, a multi-line warning each) and
    has no setting for it, so a database that does not answer is found here first."""
    if uri.split(":", 1)[0].split("+", 1)[0] not in DATABASE_SCHEMES:
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    url = sqlalchemy.engine.make_url(uri)
    connect_args = ({} if "connect_timeout" in url.query
                    or url.get_backend_name() not in ("postgresql", "mysql")
                    else {"connect_timeout": seconds})
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=NullPool)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


# How long the process of :func:`hand_off` waits for a stopped tracking store to answer again.
HAND_OFF_SECONDS = 600


def hand_off(uri: str, run_id: str) -> None:
    """Leave the run ``run_id`` of this process, which the store ``uri`` did not let it end, to
    a detached process that ends it FAILED once this process has exited and the store answers
    (for :data:`HAND_OFF_SECONDS`). A stage whose outputs DVC then restores from its run cache
    starts no process that would otherwise recover the run; past that time, the next stage
    that connects does (:func:`recover_dead_runs`)."""
    owner = json.dumps(Owner.current().tags())
    try:
        # The URI (which may hold a password) in the environment, not on the command line,
        # which every user of the machine can read.
        subprocess.Popen([sys.executable, "-m", "imdb_rnn.tracking.closer", run_id, owner,
                          str(HAND_OFF_SECONDS)],
                         env={**os.environ, "MLFLOW_TRACKING_URI": uri},
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as error:
        print(f"warning: MLflow run {run_id} left RUNNING ({error})", file=sys.stderr)


def recover_dead_runs(experiment: Experiment) -> list[str]:
    """End FAILED the RUNNING runs of the store (every experiment: the stage that left them may
    never run again, when DVC restores it from its run cache) whose owner process on this
    machine is gone (killed with SIGKILL, or the machine rebooted); returns their ids.

    Best effort: a run that cannot be read or closed (another user's, on a server with
    permissions) is reported on stderr and left as it is; the stage goes on.
    """
    me = Owner.current()
    client = experiment.client
    try:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
        running = client.search_runs(
            experiment_ids, max_results=1000,
            filter_string=f"attributes.status = 'RUNNING' and tags.`owner.host` = '{me.host}'")
    except mlflow.exceptions.MlflowException as error:
        print(f"warning: no recovery of dead runs: {_one_line(error)}", file=sys.stderr)
        return []
    closed = []
    for found in running:
        owner = Owner.from_tags(found.data.tags)
        if owner is None or not owner.is_dead():
            continue
        try:
            if not fail_if_owned(client, found.info.run_id, owner,
                                 f"its process {owner} died; ended by process {me.pid}"):
                continue
        except mlflow.exceptions.MlflowException as error:
            print(f"warning: run {found.info.run_id} of dead process {owner} left RUNNING: "
                  f"{_one_line(error)}", file=sys.stderr)
            continue
        print(f"recovered: MLflow run {found.info.run_name} ({found.info.run_id}) of dead "
              f"process {owner} ended FAILED", file=sys.stderr)
        closed.append(found.info.run_id)
    return closed


def fail_if_owned(client: MlflowClient, run_id: str, owner: Owner, reason: str) -> bool:
    """End FAILED (tag ``fail_reason``) the run ``run_id`` if it is still RUNNING and still
    ``owner``'s (read again: another process may have taken it over); True when ended."""
    now = client.get_run(run_id)
    if now.info.status != "RUNNING" or Owner.from_tags(now.data.tags) != owner:
        return False
    run = Run(client, run_id)
    run.set_tags({"fail_reason": reason})
    run.end("FAILED")
    return True


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """For a SQLite store, one process at a time creates or migrates its tables (two tune
    workers starting together would otherwise both try)."""
    if not uri.startswith("sqlite:///") or fcntl is None:
        yield
        return
    lock_path = Path(uri.removeprefix("sqlite:///") + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def experiment_tags() -> dict[str, str]:
    """Tags of every experiment: the model-training view, the runs table's accuracy view."""
    return {**EXPERIMENT_KIND,
            f"mlflow.sharedViewState.{RUNS_VIEW_KEY}": json.dumps(RUNS_VIEW, sort_keys=True)}


# The query that opens a page of MLflow 3's UI on its model-training side (not GenAI).
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def runs_table_link(experiment_id: str) -> str:
    """The experiment's runs table with the accuracy columns, sorted (relative to the UI)."""
    return (f"#/experiments/{experiment_id}/runs?viewStateShareKey={RUNS_VIEW_KEY}"
            f"&{MODEL_TRAINING_VIEW}")


def _ensure_experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        try:
            experiment_id = client.create_experiment(name)
        except mlflow.exceptions.MlflowException as error:
            # Another process (a worker on another machine, on a shared server) created it
            # first: the local file lock cannot order processes of other machines.
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment_id = client.get_experiment_by_name(name).experiment_id
    for key, value in experiment_tags().items():
        if found is None or found.tags.get(key) != value:
            _set_experiment_tag(client, experiment_id, key, value)
    return experiment_id


def _set_experiment_tag(client: MlflowClient, experiment_id: str, key: str, value: str) -> None:
    """Set a tag that other processes may be setting at the same moment: the SQL store's
    upsert is a read then an insert, so the slower of two gets a unique-key violation; the
    tag is then written (by the other), or written again once it exists."""
    for attempt in range(3):
        try:
            client.set_experiment_tag(experiment_id, key, value)
            return
        except mlflow.exceptions.MlflowException:
            if client.get_experiment(experiment_id).tags.get(key) == value:
                return
            if attempt == 2:
                raise


# Uncommitted changes here make a run's code differ from its commit; changes to dvc.lock,
# params.yaml or reports/ (which the pipeline itself rewrites) do not.
CODE_PATHS = ("src", "stages", "dvc.yaml", "pyproject.toml", "requirements.lock")


def git_commit() -> str:
    """The current commit, with ``-dirty`` when the code has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                *CODE_PATHS], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def dvc_hash(path: str, lock_file: str = "dvc.lock") -> str:
    """The md5 that dvc.lock records for output ``path`` (the data version), or 'unknown'."""
    try:
        lock = yaml.safe_load(Path(lock_file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return "unknown"
    for stage in (lock or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            if out.get("path") == path:
                return str(out.get("md5", "unknown"))
    return "unknown"


# Set by `dvc exp run` for its stages: the experiment's name and the commit it derives from.
DVC_EXPERIMENT_VARIABLES = {"dvc_experiment": "DVC_EXP_NAME",
                            "dvc_baseline_rev": "DVC_EXP_BASELINE_REV"}


def run_tags(name: str, family: str, stage: str, data_path: str | Path, params: Params
             ) -> dict[str, str]:
    """Tags of every run: what it is, which code and which data it used (the DVC hash, the
    params profile and the stratified slice, null = every review), and the DVC experiment
    that ran it (none for a plain `dvc repro`), so two runs named `cnn` are told apart."""
    tags = {"model": name, "family": family, "stage": stage, "git_commit": git_commit(),
            "data_md5": dvc_hash(Path(data_path).as_posix()), "profile": params.profile,
            "per_label": str(params.preprocess.per_label)}
    for tag, variable in DVC_EXPERIMENT_VARIABLES.items():
        if os.environ.get(variable):
            tags[tag] = os.environ[variable]
    return tags


def run_params(params: Params, name: str, section: ModelSection | None = None) -> dict:
    """Every resolved param of one training run, flat, with the same names for every family.

    Upstream data params are recorded too, so a run says which data it saw.
    """
    return {
        "model": name,
        **(section or model_section(params, name)).model_dump(),
        "seed": params.train.seed,
        "monitor": params.train.monitor,
        "patience": params.train.patience,
        "schedule": params.train.schedule,
        "max_features": params.vectorize.max_features,
        "lowercase": params.preprocess.lowercase,
        "punctuation": params.preprocess.punctuation,
        "validation": params.preprocess.validation,
        "split_seed": params.preprocess.split_seed,
        "val_fraction": params.preprocess.val_fraction,
    }


# --- Optuna studies: one parent run per study, one nested child run per trial -----------------
# Runs by explicit id (no active-run stack), so a worker's trial runs never mix with another
# run, and runs of a dead worker can be closed by the next one.

STUDY_TAG = "optuna_study"
# Which storage the study lives in (search.study.storage_key: a digest of the storage, password
# left out, and the study's name): two storages may hold studies of one name (a scratch copy's
# journal, another database), and each has its own parent run.
STORAGE_TAG = "optuna_storage"
# Final MLflow status of a trial by its Optuna state: pruned trials are KILLED, never FINISHED.
TRIAL_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


@contextlib.contextmanager
def _store(uri: str) -> Iterator[None]:
    """Client calls made directly in the block: a failing store is a one-line PipelineError."""
    try:
        yield
    except STORE_ERRORS as error:
        raise store_failure(uri, error) from None


def study_parent_run(experiment: Experiment, study: str, storage_key: str, run_name: str,
                     tags: Mapping[str, str], known: str | None = None
                     ) -> tuple[Run, str | None]:
    """The parent run of study ``study`` of the storage ``storage_key`` and its status when
    found (None when created here): the run ``known`` (the id the study recorded) if it is this
    study's of this storage, else the one found by both tags (a resumed study whose recorded
    id is of another store, or another worker), else a new one. A run of a study of the same
    name in another storage is never taken.

    The stage's own process owns the parent; a worker that creates it leaves it without owner,
    RUNNING, for the stage to finish.
    """
    with _store(experiment.uri):
        if known is not None:
            try:
                run = experiment.client.get_run(known)
            except mlflow.exceptions.MlflowException as error:
                if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise
                run = None
            if (run is not None and run.info.experiment_id == experiment.id
                    and run.data.tags.get(STUDY_TAG) == study
                    and run.data.tags.get(STORAGE_TAG) == storage_key
                    and run.data.tags.get("run_kind") == "study"):
                return Run(experiment.client, known), run.info.status
        found = experiment.runs(f"tags.{STUDY_TAG} = '{study}' and tags.{STORAGE_TAG} = "
                                f"'{storage_key}' and tags.run_kind = 'study'",
                                order_by=["attributes.start_time ASC"], max_results=1)
        if found:
            return Run(experiment.client, found[0].info.run_id), found[0].info.status
        created = experiment.client.create_run(
            experiment.id, run_name=run_name,
            tags={**tags, STUDY_TAG: study, STORAGE_TAG: storage_key, "run_kind": "study"})
    return Run(experiment.client, created.info.run_id), None


def own(run: Run, uri: str) -> None:
    """This process takes ``run`` over: RUNNING, with this process as its owner."""
    run.set_tags(Owner.current().tags())
    with _store(uri):
        run.client.update_run(run.id, status="RUNNING")


def end_or_hand_off(run: Run, uri: str, status: str) -> None:
    """End ``run`` with ``status``; when the store fails, leave it to :func:`hand_off` (it ends
    FAILED once the store answers) and raise the one-line error."""
    try:
        run.end(status)
    except PipelineError:
        hand_off(uri, run.id)
        raise


def start_child_run(experiment: Experiment, parent: Run, run_name: str,
                    tags: Mapping[str, str], params: Mapping[str, Any]) -> Run:
    """A trial's run, nested under the study's parent run."""
    with _store(experiment.uri):
        created = experiment.client.create_run(
            experiment.id, run_name=run_name,
            tags={**tags, "mlflow.parentRunId": parent.id, "run_kind": "trial",
                  **Owner.current().tags()})
    run = Run(experiment.client, created.info.run_id)
    run.log_params(params)
    return run


def running_trial_runs(experiment: Experiment, parent: Run, trial_number: int) -> list[Run]:
    """A trial's runs still RUNNING, found by tags (a worker killed between creating the run
    and recording its id in the trial leaves a run only its tags lead to)."""
    found = experiment.runs(
        f"tags.`mlflow.parentRunId` = '{parent.id}' and tags.optuna_trial = '{trial_number}' "
        "and tags.run_kind = 'trial' and attributes.status = 'RUNNING'", max_results=100)
    return [Run(experiment.client, r.info.run_id) for r in found]
