"""Optuna pieces of the search: storage, sampler, pruner, search space, the trial loop.

Trial parameter names are the keys of a ``train.models`` section, so a trial's values
(``trial.params``) update the base section directly and the best trial rebuilds its model.

Resuming and several workers: every trial records the worker that runs it (host, pid, process
start time). A worker starting on a study first fails the RUNNING trials whose worker process on
this host is gone (killed with SIGKILL, say) and queues their params again, so they are retried
and never left RUNNING; RDB storages also get Optuna's heartbeat, which catches dead workers on
other machines. ``n_trials`` counts finished trials (complete and pruned) over every run and
worker: each worker claims a trial only while fewer than ``n_trials`` are finished or running.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

from imdb_rnn.errors import PipelineError
from imdb_rnn.process import Owner
from imdb_rnn.redaction import redact_text, redact_url
from imdb_rnn.config.params import (ChoiceDimension, ModelSection, Params, RangeDimension,
                                    TuneParams)

# Optuna's INFO lines ("A new study created in Journal ...", "Trial 3 finished with value ...",
# in colour) would repeat what the loop below prints, once per trial and worker: warnings only.
optuna.logging.set_verbosity(optuna.logging.WARNING)

STORAGE_ENV = "IMDB_TUNE_STORAGE"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
OBJECTIVE = "val_accuracy"  # the name of every study's objective
# Heartbeat of RDB storages: every worker records one for its running trial every
# heartbeat_seconds(); a trial silent for grace_seconds() (its worker killed, its machine gone)
# is failed and retried by the next worker that starts a trial. IMDB_TUNE_GRACE_SECONDS
# changes the grace period (an operational setting, like the storage: no output depends on it).
GRACE_ENV = "IMDB_TUNE_GRACE_SECONDS"
GRACE_SECONDS = 120


def grace_seconds() -> int:
    text = os.environ.get(GRACE_ENV, str(GRACE_SECONDS))
    try:
        grace = int(text)
    except ValueError:
        grace = 0
    if grace < 4:
        raise PipelineError(f"{GRACE_ENV}={text!r}: expected a whole number of seconds, at least 4")
    return grace


def heartbeat_seconds() -> int:
    """A quarter of the grace period, at most 30 s: a live worker misses three beats first."""
    return max(1, min(30, grace_seconds() // 4))


def storage_url(tune: TuneParams) -> str:
    """The study storage: IMDB_TUNE_STORAGE if set, else ``tune.storage``."""
    return os.environ.get(STORAGE_ENV) or tune.storage


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """``journal:PATH`` -> a journal file (file lock); anything else -> an RDB URL with heartbeat."""
    try:
        if url.startswith("journal:"):
            path = Path(url.removeprefix("journal:"))
            check_journal(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(
                str(path), lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path)))
            return optuna.storages.JournalStorage(backend)
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return _rdb_storage(rdb_url(url))
    except PipelineError:
        raise
    except Exception as error:  # bad URL, driver missing, server down, unreadable journal
        error = error.__cause__ or error if isinstance(
            error, optuna.exceptions.StorageInternalError) else error
        raise PipelineError(f"Optuna storage {redact_url(url)} cannot be opened: "
                            f"{type(error).__name__}: {_reason(error)}") from None


# What the storage raises when it fails after it was opened (a database stopped or gone): Optuna
# wraps SQLAlchemy's error in StorageInternalError ("invalid data in the commit", whatever the
# cause) for writes, reads raise SQLAlchemy's own.
STORAGE_ERRORS = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)


def _reason(error: BaseException, limit: int = 200) -> str:
    """The driver's own message on one line, passwords redacted (SQLAlchemy's SQL, parameters
    and help link left out)."""
    text = redact_text(" ".join(str(error).split()))
    for marker in (" [SQL: ", " (Background on this error at: "):
        text = text.split(marker)[0]
    return text[:limit]


class StorageFailure(PipelineError):
    """The study's storage failed mid-stage (its trials may be left RUNNING: handed off)."""


def storage_failure(url: str, error: BaseException) -> StorageFailure:
    """The one-line error of a storage that failed mid-stage, naming its real cause (the
    database's, not Optuna's "invalid data in the commit")."""
    cause = error.__cause__ if isinstance(error, optuna.exceptions.StorageInternalError) \
        and error.__cause__ is not None else error
    return StorageFailure(f"Optuna storage {redact_url(url)} failed: {type(cause).__name__}: "
                         f"{_reason(cause)}")


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """A storage failure in the block becomes its one-line :func:`storage_failure`."""
    try:
        yield
    except STORAGE_ERRORS as error:
        raise storage_failure(url, error) from None


def storage_key(url: str, study: str) -> str:
    """A digest of the storage (journal and SQLite paths made absolute, an RDB URL with its
    password masked) and the study's name: what ties the study's MLflow parent run to this
    very study (a scratch copy's journal or another database may hold one of the same name)."""
    if url.startswith("journal:"):
        where = "journal:" + str(Path(url.removeprefix("journal:")).resolve())
    elif url.startswith("sqlite:///"):
        where = "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    else:
        where = redact_url(rdb_url(url))
    return hashlib.sha256(f"{where}\n{study}".encode()).hexdigest()[:16]


# How long one connection to an RDB storage may take (a database whose host is gone would
# otherwise hang the stage for the operating system's TCP timeout).
RDB_CONNECT_SECONDS = 10


def _rdb_storage(url: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with heartbeats. Workers starting together on an empty database
    all create its tables; PostgreSQL lets one ``CREATE TABLE`` win and fails the others with
    a unique-key violation, after which the tables exist: so such an error is tried again."""
    import sqlalchemy.exc

    def storage() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():  # heartbeat and its retry callback are "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=_engine_kwargs(url), heartbeat_interval=heartbeat_seconds(),
                grace_period=grace_seconds(), heartbeat_stale_trial_callback=retry)

    for attempt in range(1, attempts):
        try:
            return storage()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 * attempt)
    return storage()


def _engine_kwargs(url: str) -> dict[str, Any]:
    """For PostgreSQL and MySQL: a connect timeout (unless the URL sets its own), and pooled
    connections checked before use, so a database back after an outage is used again."""
    import sqlalchemy.engine

    parsed = sqlalchemy.engine.make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "mysql"):
        return {}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if "connect_timeout" not in parsed.query:
        kwargs["connect_args"] = {"connect_timeout": RDB_CONNECT_SECONDS}
    return kwargs


def rdb_url(url: str) -> str:
    """``postgresql://...`` with the driver installed here (psycopg2): SQLAlchemy 2.1 reads the
    bare scheme as psycopg 3, which is not installed."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def check_journal(path: Path) -> None:
    """A one-line error when a journal file is not what Optuna wrote: a line that is not JSON,
    or a last line cut short. Checked before Optuna opens it, so nothing is appended to a
    corrupt journal."""
    if not path.exists():
        return
    # Under Optuna's own lock: a worker appending right now is never seen half-written.
    lock = optuna.storages.journal.JournalFileOpenLock(str(path))
    lock.acquire()
    try:
        _check_journal_lines(path)
    finally:
        lock.release()


def _check_journal_lines(path: Path) -> None:
    try:
        with open(path, "rb") as journal:
            offset = 0
            for number, line in enumerate(journal, start=1):
                if not line.endswith(b"\n"):
                    raise PipelineError(f"Optuna journal {path}: line {number} is cut short (a "
                                        "write was interrupted?); the file is left as it is: "
                                        f"`truncate -s {offset} {path}` drops that line")
                offset += len(line)
                try:
                    json.loads(line)
                except ValueError:  # JSONDecodeError and UnicodeDecodeError
                    raise PipelineError(f"Optuna journal {path}: line {number} is not valid "
                                        "JSON: the journal is corrupt; the file is left as it "
                                        "is") from None
    except OSError as error:
        raise PipelineError(f"Optuna journal {path}: cannot be read ({error.strerror})") from None


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number`` of a study seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def study_seed(seed: int, name: str) -> int:
    """The sampler seed of study ``name`` under ``tune.seed``: every study draws its own
    configurations (two studies of one model with one seed would otherwise draw the same
    random trials, TPE's startup trials included)."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


class SeedPerTrial(optuna.samplers.BaseSampler):
    """An Optuna sampler (its public interface for user-defined samplers) whose random draws for
    trial N come from ``trial_seed(seed, N)``: before each trial it builds a new sampler of
    ``kind`` with that seed (``before_trial``, where the trial's number is known and nothing has
    been drawn yet) and hands it every call. The same study gives the same trials on every run,
    and no two trials share their draws: seeding a sampler once per process would make every
    process, a resumed run or a second worker, draw the first configurations again."""

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self.build = build
        self.seed = seed
        self.current = build(seed)

    def __str__(self) -> str:
        return type(self.current).__name__

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.current = self.build(trial_seed(self.seed, trial.number))
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial
                                    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, optuna.distributions.BaseDistribution]
                        ) -> dict[str, Any]:
        return self.current.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                           param_name: str, param_distribution: optuna.distributions.BaseDistribution
                           ) -> Any:
        return self.current.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: TrialState, values: list[float] | None) -> None:
        self.current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to do: each trial's seed comes from its number (``optimize(n_jobs>1)``
        calls this for its threads)."""


def _build_sampler(kind: str, n_startup_trials: int, seed: int) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)


def make_sampler(kind: str, seed: int, n_startup_trials: int) -> SeedPerTrial:
    """The sampler of ``kind`` (``random``, ``tpe``, ``gp``), seeded per trial from ``seed``."""
    if kind == "gp":
        try:
            import torch  # noqa: F401  (GPSampler's dependency)
        except ImportError:
            raise PipelineError("sampler 'gp' (GPSampler) needs PyTorch: pip install torch"
                                ) from None
    return SeedPerTrial(functools.partial(_build_sampler, kind, n_startup_trials), seed)


def make_pruner(tune: TuneParams, max_epochs: int) -> optuna.pruners.BasePruner:
    """Pruning over epochs. ``hyperband``: successive halving in brackets from 1 epoch to
    ``max_epochs`` (reduction factor 3), so a trial that is behind its rung's peers stops early
    and the saved epochs go to other configurations."""
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.n_startup_trials,
                                           n_warmup_steps=tune.pruner_warmup_epochs)
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs,
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


# What a trial's value is: the validation accuracy of the weights early stopping keeps (the
# best train.monitor epoch). Part of a study's identity: trials scored another way (the best
# epoch's accuracy on validation, as before) belong to another study.
VALUE = "val_accuracy_at_best_monitor_epoch"
# What a study's trials read from the data folder (vectorize's outputs).
DATA_FILES = ("vocab.txt", "train.npz", "val.npz")


def data_fingerprint(data_dir: Path, embedding_files: list[str | None]) -> str:
    """A digest of the data every trial trains on: the vectorized splits and vocabulary, and
    each word-vector file a trial may start from (a file not there yet counts by its path)."""
    digest = hashlib.sha256()
    paths = [Path(data_dir) / f for f in DATA_FILES]
    paths += [Path(f) for f in sorted({f for f in embedding_files if f})]
    for path in paths:
        digest.update(path.name.encode())
        try:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError:
            digest.update(b"missing")
    return digest.hexdigest()[:16]


def study_name(name: str, params: Params, data_dir: Path | None = None) -> str:
    """``NAME-<hash>`` of study ``name``: a changed space, base section, trial budget, training
    seed, or (given ``data_dir``) other data or word vectors starts a new study, so trials
    scored on other data are never compared with new ones, nor their kept weights reused.

    n_trials and timeout are left out, so raising them continues the same study.
    """
    tune = params.tune
    study = tune.studies[name]
    base = params.train.models[study.model]
    space = tune.space[study.model]
    files = [base.embedding_file, *getattr(space.get("embedding_file"), "choices", [])]
    identity = {"study": study.model_dump(), "base": base.model_dump(), "value": VALUE,
                "data": None if data_dir is None else data_fingerprint(data_dir, files),
                "space": {k: v.model_dump() for k, v in tune.space[study.model].items()},
                "seed": tune.seed, "epochs": tune.trial_epochs(base), "patience": tune.patience,
                # every trial trains with train.seed and stops early on train.monitor
                "train_seed": params.train.seed, "monitor": params.train.monitor,
                "schedule": params.train.schedule,
                "subsample": tune.subsample, "pruner": tune.pruner,
                "n_startup_trials": tune.n_startup_trials,
                "pruner_warmup_epochs": tune.pruner_warmup_epochs}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def open_study(name: str, storage: optuna.storages.BaseStorage, sampler_kind: str,
               tune: TuneParams, *, seed: int, max_epochs: int) -> optuna.Study:
    """Create or load study ``name``; ``seed`` seeds its sampler (:func:`study_seed`). Its
    objective is named ``val_accuracy`` (optuna-dashboard and ``trials_dataframe`` show it)."""
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=make_sampler(sampler_kind, seed, tune.n_startup_trials),
        pruner=make_pruner(tune, max_epochs))
    if study.metric_names != [OBJECTIVE]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE])
    return study


BASELINE_ATTR = "baseline"


def mark_superseded(storage: optuna.storages.BaseStorage, name: str, current: str) -> list[str]:
    """Tag every other study of stage study ``name`` in ``storage`` (``NAME-<hash>`` of an
    earlier space, base or data) with the user attribute ``superseded_by: current``, so that
    optuna-dashboard and ``optuna studies`` tell the current study from stale ones (Optuna
    cannot delete a study's trials piecemeal, and a stale study may be wanted again when the
    params go back). Returns the names tagged now."""
    tagged = []
    for other in optuna.study.get_all_study_names(storage):
        if other == current or other.rpartition("-")[0] != name:
            continue
        stale = optuna.load_study(study_name=other, storage=storage)
        if stale.user_attrs.get("superseded_by") != current:
            stale.set_user_attr("superseded_by", current)
            tagged.append(other)
    return tagged


def baseline_values(space: Mapping[str, RangeDimension | ChoiceDimension],
                    base: ModelSection) -> dict[str, Any]:
    """The base section's values of the searched keys: the study's first trial."""
    values = {key: getattr(base, key) for key in space}
    if base.embedding_file is not None:
        values.pop("embedding_dim", None)  # fixed by the pretrained vectors, not suggested
    return values


def enqueue_baseline(study: optuna.Study, space: Mapping[str, RangeDimension | ChoiceDimension],
                     base: ModelSection) -> bool:
    """Queue the baseline unless the study has one queued, running or finished (True if
    queued), so the search starts from the hand-set configuration and, on validation, can only
    match or beat it. Every process that joins a study calls this before its first trial: a
    study created before baselines were queued, one whose baseline failed, or one a worker
    started before the stage, gets it too. (Two processes joining at the same instant may both
    queue it: the baseline then runs twice, which costs a trial and changes no result.)"""
    alive = (TrialState.WAITING, TrialState.RUNNING, *FINISHED)
    if any(is_baseline(t) for t in study.get_trials(deepcopy=False, states=alive)):
        return False
    study.enqueue_trial(baseline_values(space, base), user_attrs={BASELINE_ATTR: True})
    return True


def is_baseline(trial: optuna.Trial | optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` is the queued baseline (or a retry of it)."""
    return bool(trial.user_attrs.get(BASELINE_ATTR, False))


def baseline_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The finished baseline trial (its latest retry), if any."""
    trials = [t for t in study.get_trials(deepcopy=False, states=FINISHED) if is_baseline(t)]
    return trials[-1] if trials else None


def suggest(trial: optuna.Trial, space: Mapping[str, RangeDimension | ChoiceDimension],
            base: ModelSection) -> dict[str, Any]:
    """The trial's values: integer or float ranges as the base section's field is typed.

    ``embedding_dim`` is suggested only for a trial that learns its embedding from scratch
    (``embedding_file`` null); pretrained vectors fix it. ``embedding_file`` is drawn first.
    """
    values: dict[str, Any] = {}
    keys = sorted(space, key=lambda k: k != "embedding_file")
    for key in keys:
        dim = space[key]
        if key == "embedding_dim" and values.get("embedding_file", base.embedding_file):
            continue
        if isinstance(dim, ChoiceDimension):
            values[key] = trial.suggest_categorical(key, dim.choices)
        elif isinstance(getattr(base, key), int) and not isinstance(getattr(base, key), bool):
            step = int(dim.step) if dim.step is not None else 1
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high), step=step,
                                            log=dim.log)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, step=dim.step, log=dim.log)
    return values


def with_values(base: ModelSection, values: Mapping[str, Any], **overrides: Any) -> ModelSection:
    """The base section with trial values (validated like params.yaml)."""
    data = base.model_dump() | dict(values) | overrides
    return type(base).model_validate(data)


# --- workers -----------------------------------------------------------------------------------

def worker_id() -> str:
    """This process as a trial's worker: ``host:pid:start``."""
    return str(Owner.current())


def _worker_alive(worker: str) -> bool | None:
    """True/False for a worker on this host; None when it ran elsewhere (cannot tell)."""
    owner = Owner.parse(worker)
    return None if owner is None else owner.alive()


def heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """Seconds between a running trial's heartbeats on ``storage`` (an RDB storage opened with
    ``heartbeat_interval``), or None when it records none (a journal)."""
    get = getattr(storage, "get_heartbeat_interval", None)  # RDBStorage's public method
    return get() if callable(get) else None


def trial_id(storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> int:
    """The storage's id of trial ``number`` of ``study`` (what the storage's public methods
    take), looked up through the storage's public API."""
    return storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), number)


def recover_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Fail RUNNING trials whose worker on this host is gone; queue their params again.

    ``storage`` is the study's (Optuna gives a study's storage no public accessor; a trial of
    another worker is failed through the storage's public methods, as Optuna's own
    ``fail_stale_trials`` does). Returns the numbers of the trials failed. Heartbeat storages
    also fail stale trials of workers on other machines (Optuna's own mechanism: its retry
    callback queues them again).
    """
    failed = []
    if heartbeat_interval(storage) is not None:
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        # Failed here, not told FAIL by their worker meanwhile (that sets a fail_reason).
        failed = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                  if t.number in before and "fail_reason" not in t.user_attrs]
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker is None or _worker_alive(worker) is not False:
            continue
        key = trial_id(storage, study, trial.number)
        try:
            storage.set_trial_user_attr(key, "fail_reason",
                                        f"worker {worker} died while running it")
            if not storage.set_trial_state_values(key, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker recovered it first
        again = {"retry_of": trial.number}
        if trial.user_attrs.get(BASELINE_ATTR):
            again[BASELINE_ATTR] = True
        study.enqueue_trial(trial.params, user_attrs=again, skip_if_exists=False)
        failed.append(trial.number)
    return failed


def counts(study: optuna.Study) -> dict[str, int]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {state.name.lower(): states.count(state) for state in TrialState}


def trials_left(study: optuna.Study, n_trials: int) -> int:
    """Trials still to claim: ``n_trials`` less the finished and running ones."""
    busy = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return max(0, n_trials - len(busy))


def _claimable(study: optuna.Study, n_trials: int) -> bool:
    return trials_left(study, n_trials) > 0


def _surplus(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """True if other workers claimed the last trials first (a race between checks)."""
    busy = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    earlier = sum(1 for t in busy if t.number < trial.number)
    return earlier >= n_trials


class _Heartbeat:
    """The running trial's heartbeat on an RDB storage, every ``heartbeat_interval`` seconds
    in a thread, as Optuna's ``optimize()`` records it (ask/tell has no public form of it; the
    storage's ``record_heartbeat`` is public). Unlike Optuna's thread, one that the storage
    fails (a database restarting) tries again at the next beat instead of dying with a
    traceback on stderr: the trial's own next write says whether the storage is gone."""

    def __init__(self, storage: optuna.storages.BaseStorage | None, study: optuna.Study,
                 trial: optuna.Trial) -> None:
        self.interval = None if storage is None else heartbeat_interval(storage)
        self.storage = storage
        self.trial_id = (None if self.interval is None
                         else trial_id(storage, study, trial.number))  # type: ignore[arg-type]
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def beat(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001  (the storage away for now: next beat)
                pass
            if self.stop.wait(timeout=self.interval):
                return

    def __enter__(self) -> _Heartbeat:
        if self.interval is not None:
            self.thread = threading.Thread(target=self.beat, daemon=True,
                                           name=f"heartbeat-{self.trial_id}")
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


# How long the process of :func:`hand_off_trials` tries a failed storage again.
HAND_OFF_SECONDS = 600


_HANDED_OFF: set[tuple[str, str]] = set()  # (storage, study) handed off by this process


def hand_off_trials(url: str, study: str) -> None:
    """Leave this process's RUNNING trials of ``study``, which the storage ``url`` did not let
    it fail, to a detached process: once this process has exited and the storage answers
    (for :data:`HAND_OFF_SECONDS`), it fails them and queues their params again
    (:func:`recover_dead_trials`). DVC may restore the stage from its run cache after an
    outage; then no stage would open the study and the trial would stay RUNNING. Once per
    process and study: the process recovers every trial of a dead worker of this machine (the
    stage's extra workers' too)."""
    if (url, study) in _HANDED_OFF:
        return
    _HANDED_OFF.add((url, study))
    try:
        # The URL (which may hold a password) in the environment, not on the command line.
        subprocess.Popen([sys.executable, "-m", "imdb_rnn.search.closer", study,
                          json.dumps(Owner.current().tags()), str(HAND_OFF_SECONDS)],
                         env={**os.environ, STORAGE_ENV: url}, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError as error:
        print(f"warning: the running trial of {study} is left RUNNING ({error})",
              file=sys.stderr, flush=True)


def _record_failure(study: optuna.Study, trial: optuna.Trial, error: BaseException,
                    url: str | None) -> bool:
    """Tell the storage the trial failed (its reason redacted); False when the storage itself
    failed, and the trial is then handed off (:func:`hand_off_trials`) when ``url`` is known."""
    try:
        trial.set_user_attr("fail_reason", redact_text(f"{type(error).__name__}: {error}")[:500])
        study.tell(trial, state=TrialState.FAIL)
    except STORAGE_ERRORS:
        if url is not None:
            hand_off_trials(url, study.study_name)
        return False
    return True


@dataclass
class LoopResult:
    ran: int  # trials this worker finished (complete, pruned or failed)
    stopped_by: str  # "n_trials" or "timeout"
    seconds: float


def _tell(study: optuna.Study, trial: optuna.Trial, url: str | None, *args: Any,
          **kwargs: Any) -> None:
    """``study.tell``; when the storage fails, the trial is handed off and the error raised."""
    try:
        study.tell(trial, *args, **kwargs)
    except STORAGE_ERRORS:
        if url is not None:
            hand_off_trials(url, study.study_name)
        raise


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _compact(values: Mapping[str, Any]) -> str:
    """A trial's values on one short line: ``units=37 dropout=0.433 ...``."""
    return " ".join(f"{k}={float(f'{v:.3g}') if isinstance(v, float) else v}"
                    for k, v in values.items())


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], *,
               n_trials: int, timeout: float | None,
               before_trial: Callable[[], object] | None = None,
               storage_url: str | None = None,
               storage: optuna.storages.BaseStorage | None = None) -> LoopResult:
    """Ask/tell loop of one worker until ``n_trials`` finished trials exist or time runs out.

    The objective raises ``optuna.TrialPruned`` for a pruned trial; any other exception fails
    the trial (recorded with its message) and ends the loop with that error. ``before_trial``
    runs before each claim (the stage's recovery of dead workers' trials, as Optuna's own
    ``optimize`` fails stale trials before each trial); on heartbeat storages the running trial
    records a heartbeat all along (``storage``: the study's, when it is an RDB storage opened
    with a heartbeat interval). A trial the storage (``storage_url``) fails to close is
    handed off (:func:`hand_off_trials`), and the storage's error raised.
    """
    start = time.perf_counter()
    ran = 0
    me = worker_id()
    while True:
        if timeout is not None and time.perf_counter() - start >= timeout:
            return LoopResult(ran, "timeout", time.perf_counter() - start)
        if before_trial is not None:
            before_trial()
        if not _claimable(study, n_trials):
            return LoopResult(ran, "n_trials", time.perf_counter() - start)
        with warnings.catch_warnings():  # ask() warns that heartbeats are optimize()'s: the
            warnings.filterwarnings("ignore", "Heartbeat of storage")  # loop below beats
            trial = study.ask()
        trial.set_user_attr("worker", me)
        if _surplus(study, trial, n_trials):
            trial.set_user_attr("fail_reason", "surplus: the study's last trials were claimed "
                                               "by other workers first")
            study.tell(trial, state=TrialState.FAIL)
            continue
        started = time.perf_counter()
        try:
            # Without a heartbeat a dead worker's trial is never found stale.
            with _Heartbeat(storage, study, trial):
                value = objective(trial)
        except optuna.TrialPruned:
            _tell(study, trial, storage_url, state=TrialState.PRUNED)
            outcome = "pruned"
        except BaseException as error:
            # A store's failure is the stage's one error line; anything else is told here too.
            # A stop (Ctrl-C, SIGTERM) is the stage's own one line: nothing to add here.
            if _record_failure(study, trial, error, storage_url) and not isinstance(
                    error, (*STORAGE_ERRORS, PipelineError, KeyboardInterrupt, SystemExit)):
                reason = str(error) or type(error).__name__
                print(redact_text(f"{study.study_name}: trial {trial.number} failed: {reason}"),
                      flush=True)
            raise
        else:
            _tell(study, trial, storage_url, value)
            outcome = f"val_accuracy {value:.4f}"
        ran += 1
        now = time.perf_counter()
        finished = counts(study)
        done = finished["complete"] + finished["pruned"]
        left = max(0, n_trials - done)
        pace = (now - start) / ran
        estimate = (f", {left} left: about {_minutes(pace * left)} at this worker's pace"
                    if left else "")
        print(f"{study.study_name}: trial {trial.number} {outcome} in {now - started:.0f} s "
              f"({done}/{n_trials} finished{estimate}); {_compact(trial.params)}", flush=True)
