"""The one module that talks to MLflow: store checks, experiments, runs that always close.

Default store: ``sqlite:///mlflow.db`` in the project (no server to start). ``MLFLOW_TRACKING_URI``
in the environment points every stage at a shared tracking server instead.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import yaml

try:
    import fcntl
except ImportError:  # Windows: no lock needed for a single local process
    fcntl = None
from mlflow.tracking import MlflowClient

from imdb_rnn.errors import PipelineError
from imdb_rnn.params import MlflowParams

# Without this tag MLflow 3 opens an experiment in its GenAI view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def tracking_uri(params: MlflowParams) -> str:
    """The store to use: MLFLOW_TRACKING_URI if set, else the params default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking_uri


def connect(params: MlflowParams, experiment: str | None = None) -> str:
    """Point MLflow at the store and make sure it answers now, not after an hour of training.

    Creates the experiment (``experiment``, default ``params.experiment``; tagged as model
    training) if needed; returns its id.
    """
    uri = tracking_uri(params)
    mlflow.set_tracking_uri(uri)
    # Fail fast: one try with a short timeout instead of MLflow's minutes of retries.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                            "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10")
    try:
        with _store_lock(uri):
            experiment_id = _ensure_experiment(experiment or params.experiment)
    except Exception as error:  # connection refused, bad URI, locked or corrupt database
        reason = " ".join(str(error).split())[:300]
        raise PipelineError(f"MLflow tracking store {uri} is unreachable: "
                            f"{type(error).__name__}: {reason}") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return experiment_id


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


def _ensure_experiment(name: str) -> str:
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(name)
    for key, value in EXPERIMENT_KIND.items():
        if found is None or found.tags.get(key) != value:
            client.set_experiment_tag(experiment_id, key, value)
    return experiment_id


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


def run_tags(name: str, family: str, stage: str, data_path: str | Path) -> dict[str, str]:
    """Tags of every run: what it is, which code and which data (DVC hash) it used."""
    return {"model": name, "family": family, "stage": stage, "git_commit": git_commit(),
            "data_md5": dvc_hash(Path(data_path).as_posix())}


def check_run(run_id: str) -> None:
    """Fail with one line now if run ``run_id`` is not in the store (before any output exists)."""
    try:
        MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        raise PipelineError(f"MLflow run {run_id} not found in {mlflow.get_tracking_uri()} "
                            f"({' '.join(str(error).split())[:150]}); was the tracking store "
                            "changed since training? Re-run the train stage.") from None


# While a finished run is being updated (evaluate adding test metrics to a training run), the
# log_* helpers write to it by id, so its status and end time stay those of its training.
_updating: str | None = None


@contextlib.contextmanager
def run(experiment_id: str, run_name: str, *, tags: Mapping[str, str] | None = None,
        run_id: str | None = None) -> Iterator[str]:
    """Start a run (or, with ``run_id``, update a finished one), closed whatever happens.

    A new run whose block raises ends FAILED. An updated run (evaluate adding test metrics to a
    finished training run) is never reopened: it keeps FINISHED and its training's end time
    (the UI's duration stays the training's), and gets the tag ``update_failed`` on an error.
    """
    global _updating
    if run_id is not None:
        try:
            MlflowClient().get_run(run_id)
        except mlflow.exceptions.MlflowException as error:
            raise PipelineError(f"MLflow run {run_id} of {run_name} cannot be reopened: "
                                f"{' '.join(str(error).split())[:200]} "
                                f"(tracking store {mlflow.get_tracking_uri()})") from None
        _updating = run_id
        try:
            yield run_id
        except BaseException as error:
            MlflowClient().set_tag(run_id, "update_failed", f"{type(error).__name__}: {error}"[:500])
            raise
        finally:
            _updating = None
        return
    try:
        active = mlflow.start_run(experiment_id=experiment_id, run_name=run_name,
                                  tags=dict(tags or {}))
    except mlflow.exceptions.MlflowException as error:
        raise PipelineError(f"MLflow run {run_name} cannot be started: "
                            f"{' '.join(str(error).split())[:200]} "
                            f"(tracking store {mlflow.get_tracking_uri()})") from None
    try:
        yield active.info.run_id
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run(status="FINISHED")


def log_params(params: Mapping[str, Any]) -> None:
    """Log flat params (values stringified by MLflow)."""
    if _updating:
        log_run_params(_updating, params)
    else:
        mlflow.log_params(dict(params))


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    if _updating:
        log_run_metrics(_updating, metrics, step or 0)
    else:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_history(history: list[dict[str, float]]) -> None:
    """Per-epoch metrics, step = epoch number, same names for every family."""
    for row in history:
        log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    if _updating:
        MlflowClient().log_artifact(_updating, str(path), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_figure(figure: Any, name: str) -> None:
    if _updating:
        MlflowClient().log_figure(_updating, figure, name)
    else:
        mlflow.log_figure(figure, name)


def log_text(text: str, name: str) -> None:
    if _updating:
        MlflowClient().log_text(_updating, text, name)
    else:
        mlflow.log_text(text, name)


def log_dict(data: dict, name: str) -> None:
    if _updating:
        MlflowClient().log_dict(_updating, data, name)
    else:
        mlflow.log_dict(data, name)


# --- Optuna studies: one parent run per study, one nested child run per trial -----------------
# These use the client API with explicit run ids (no active-run stack), so a worker's trial runs
# never mix with another run, and runs of a dead worker can be closed by the next one.

STUDY_TAG = "optuna_study"
# Final MLflow status of a trial by its Optuna state: pruned trials are KILLED, never FINISHED.
TRIAL_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def study_parent_run(experiment_id: str, study: str, run_name: str,
                     tags: Mapping[str, str]) -> str:
    """The study's parent run: found by its tag (a resumed study or another worker) or created.

    It is (re)marked RUNNING while trials run.
    """
    client = MlflowClient()
    found = client.search_runs([experiment_id],
                               filter_string=f"tags.{STUDY_TAG} = '{study}' "
                                             "and tags.run_kind = 'study'",
                               order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return run_id
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={**tags, STUDY_TAG: study, "run_kind": "study"})
    return run.info.run_id


def start_child_run(experiment_id: str, parent_run_id: str, run_name: str,
                    tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """A trial's run, nested under the study's parent run."""
    client = MlflowClient()
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={**tags, "mlflow.parentRunId": parent_run_id,
                                  "run_kind": "trial"})
    client.log_batch(run.info.run_id,
                     params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()])
    return run.info.run_id


def running_trial_runs(experiment_id: str, parent_run_id: str, trial_number: int) -> list[str]:
    """Ids of a trial's runs still RUNNING, found by tags (a worker killed between creating the
    run and recording its id in the trial leaves a run only its tags lead to)."""
    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' "
                      f"and tags.optuna_trial = '{trial_number}' "
                      "and tags.run_kind = 'trial' and attributes.status = 'RUNNING'",
        max_results=100)
    return [r.info.run_id for r in runs]


def log_run_metrics(run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    MlflowClient().log_batch(run_id, metrics=[mlflow.entities.Metric(k, float(v), now, step)
                                              for k, v in metrics.items()])


def set_run_tags(run_id: str, tags: Mapping[str, str]) -> None:
    MlflowClient().log_batch(run_id, tags=[mlflow.entities.RunTag(k, str(v))
                                           for k, v in tags.items()])


def log_run_params(run_id: str, params: Mapping[str, Any]) -> None:
    MlflowClient().log_batch(run_id, params=[mlflow.entities.Param(k, str(v))
                                             for k, v in params.items()])


def end_run_by_id(run_id: str, status: str) -> None:
    """Close a run with FINISHED, KILLED or FAILED."""
    MlflowClient().set_terminated(run_id, status=status)


def run_link(experiment_id: str, run_id: str) -> str:
    """A link to a run that works inside the MLflow UI (relative to the UI's address)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def finished_run_ids(experiment_id: str) -> list[str]:
    """Ids of an experiment's FINISHED runs, newest first, one per run name (the latest)."""
    runs = MlflowClient().search_runs([experiment_id],
                                      filter_string="attributes.status = 'FINISHED'",
                                      order_by=["attributes.start_time DESC"], max_results=1000)
    latest: dict[str, str] = {}
    for r in runs:
        latest.setdefault(r.info.run_name, r.info.run_id)
    return list(latest.values())
