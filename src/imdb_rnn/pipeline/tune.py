"""The `tune` stage: an Optuna study over one model section, logged to MLflow, best config retrained.

A study (``tune.studies.NAME``) trains trials of ``train.models.MODEL`` with values from
``tune.space.MODEL``, scores them by validation accuracy, prunes weak ones per epoch, and stores
everything in the study storage, so a killed run resumes and extra workers (``stages/tune.py
--study NAME --worker``) can share the work. Its first trial is the baseline itself (the base
section's values, queued), and every trial trains with the baseline's training seed, by default
on the whole training split for the baseline's epochs: the baseline's fidelity, so what wins a
trial is what wins as a model, and the search can only match or beat the baseline on validation.
The best configuration becomes model ``tuned_NAME``, evaluated once on the test split exactly as
the baselines are. When trials train at the baselines' fidelity (whole split, the section's
epochs, ``train.patience``), a trial *is* that model's training: the weights of the best trial
so far are kept (``--checkpoints``) and become ``tuned_NAME`` without a second fit; at any other
fidelity (or when the kept weights are gone, e.g. trained on another machine) the best
configuration is retrained on the whole training split. At that fidelity the baseline trial is
the train stage's own training of the base section, too: its history is replayed into the
study (reported epoch by epoch, so the pruner ranks its peers against it) instead of trained a
second time, and if nothing beats it, the tuned model is the baseline's.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import optuna
import pandas as pd
from optuna.trial import TrialState
import psutil

from imdb_rnn import compute
from imdb_rnn.config import ModelSection, Params, model_section
from imdb_rnn.errors import PipelineError
from imdb_rnn.evaluation import EvaluationPaths
from imdb_rnn.io import (atomic_path, atomic_paths, move_into_place, temporary_directory,
                         write_json)
from imdb_rnn.modeling import (MODEL_FILE, PREPROCESSING_FILE, RUN_FILE, Stopping, TrainResult,
                               fit, load_model, recipe_for)
from imdb_rnn.pipeline.evaluate import evaluate
from imdb_rnn.layout import tuned_name
from imdb_rnn.pipeline.train import TrainPaths, train
from imdb_rnn.search import study as tuning
from imdb_rnn.search.figures import MIN_IMPORTANCE_TRIALS, save_figures, search_figures
from imdb_rnn.search.trial_data import TrialData
from imdb_rnn.data import load_sequences
from imdb_rnn.tracking import runs as tracking
from imdb_rnn.redaction import redact_url

# How often the main run looks again while other workers still run trials of the study.
WAIT_SECONDS = 5.0


# A kept trial's folder: its model and what train() needs to write it as a trained model.
CHECKPOINT_META = "trial.json"


def full_fidelity(params: Params, base: ModelSection) -> bool:
    """Whether every trial trains as the train stage would: the whole training split, the
    section's epochs, the same early stopping, seed and data (only the thread count may
    differ). Then the best trial's weights are the tuned model, a retrain would repeat the
    trial, and trial 0 may replay the train stage's baseline."""
    tune = params.tune
    return (tune.subsample is None and tune.trial_epochs(base) == base.epochs
            and tune.patience == params.train.patience)


def _checkpoint(folder: Path, number: int) -> Path:
    return folder / f"trial_{number:04d}"


def keep_checkpoint(folder: Path, number: int, result: TrainResult, coverage: float | None,
                    section: ModelSection) -> None:
    """Keep a trial's trained model and history (moved into place complete, or not at all)."""
    with atomic_path(_checkpoint(folder, number), directory=True) as tmp:
        result.model.save(tmp / MODEL_FILE)
        write_json(tmp / CHECKPOINT_META, {
            "trial": number, "history": result.history, "best_epoch": result.best_epoch,
            "seconds": result.seconds, "train_samples": result.train_samples,
            "coverage": coverage, "section": section.model_dump(mode="json")})


def load_checkpoint(folder: Path, number: int, section: ModelSection
                    ) -> tuple[TrainResult, float | None] | None:
    """A kept trial's model as a training result, or None when it was not kept here or was
    trained with another section (a stale folder of an earlier study of the same name)."""
    path = _checkpoint(folder, number)
    try:
        meta = json.loads((path / CHECKPOINT_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("section") != section.model_dump(mode="json") or not (path / MODEL_FILE).is_file():
        return None
    # JSON holds a diverged epoch's NaN as null.
    history = [{k: math.nan if v is None else v for k, v in row.items()}
               for row in meta["history"]]
    result = TrainResult(load_model(path / MODEL_FILE), history, meta["best_epoch"],
                         meta["seconds"], meta["train_samples"])
    return result, meta["coverage"]


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Remove every kept trial of the study but ``keep``. Temporaries are left to
    ``io.sweep_stale_temporaries`` (a worker started by hand may still be writing one)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if not path.name.startswith(".") and path.name != _checkpoint(folder, keep).name:
            shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class BaselinePaths:
    """What the train stage wrote for a study's base model."""

    model_dir: Path
    history_csv: Path
    metrics_json: Path


@dataclass(frozen=True)
class TrainedBaseline:
    """The train stage's training of the base section, which trial 0 replays."""

    paths: BaselinePaths
    history: list[dict[str, float]]
    summary: dict
    run_id: str | None

    def result(self, train_samples: int) -> tuple[TrainResult, float | None]:
        """As a training result (the model loaded) and its pretrained coverage."""
        s = self.summary
        return (TrainResult(load_model(self.paths.model_dir / MODEL_FILE), self.history,
                            s["best_epoch"], s["train_seconds"], train_samples),
                s.get("pretrained_coverage"))


def trained_baseline(params: Params, model: str, base: ModelSection,
                     paths: BaselinePaths | None) -> TrainedBaseline | None:
    """The base section's training by the train stage, when trial 0 would repeat it exactly
    (full fidelity, and the folder was trained with these very params); else None."""
    if paths is None or not full_fidelity(params, base):
        return None
    try:
        saved = json.loads((paths.model_dir / PREPROCESSING_FILE).read_text(encoding="utf-8"))
        summary = json.loads(paths.metrics_json.read_text(encoding="utf-8"))
        rows = pd.read_csv(paths.history_csv).to_dict("records")
        run = json.loads((paths.model_dir / RUN_FILE).read_text(encoding="utf-8"))
        expected = json.loads(json.dumps(tracking.run_params(params, model, base)))
        if saved.get("params") != expected or len(rows) != summary.get("epochs"):
            return None
        history = [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
                   for row in rows]
        # The CSV rounds; the summary holds the best epoch's figures unrounded.
        history[summary["best_epoch"] - 1] |= {"val_accuracy": summary["best_val_accuracy"],
                                               "val_loss": summary["best_val_loss"]}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None  # missing or not written by this project's train stage: trial 0 trains
    return TrainedBaseline(paths, history, summary, run.get("run_id"))


@dataclass(frozen=True)
class TunePaths:
    data_dir: Path
    best_json: Path  # best params and value, counts (a DVC metric)
    trials_csv: Path  # every trial, with best-so-far (DVC plots data)
    model_dir: Path  # the retrained best model
    history_csv: Path  # per-epoch history of the retrained model
    train_json: Path  # its training summary
    evaluation: EvaluationPaths  # its test metrics, ROC points, predictions
    checkpoints: Path | None = None  # where trials' weights are kept (None: always retrain)
    baseline: BaselinePaths | None = None  # the base model's train stage outputs (trial 0)
    figures: Path | None = None  # Optuna's plots of the study (PNG), also logged to its run


class _TrialCallback(keras.callbacks.Callback):
    """Report each epoch's validation accuracy to Optuna, log it to the trial's MLflow run, and
    stop training when the pruner says so (the objective then raises TrialPruned)."""

    def __init__(self, trial: optuna.Trial, run: tracking.Run) -> None:
        super().__init__()
        self.trial, self.run, self.pruned = trial, run, False
        # The baseline trial always runs to the end: the floor the search must beat.
        self.prunable = not tuning.is_baseline(trial)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.run.log_metrics(dict(logs), step=epoch + 1)
        self.trial.report(float(logs["val_accuracy"]), step=epoch + 1)
        # Asked for every trial: Hyperband records a trial's value at a rung only when asked,
        # and the baseline must be among the values its peers are ranked against.
        if self.trial.should_prune() and self.prunable:
            self.pruned = True
            self.model.stop_training = True


class Objective:
    """One study's trial function: data loaded once, a fresh Keras session per trial."""

    def __init__(self, params: Params, name: str, data_dir: Path,
                 experiment: tracking.Experiment, parent: tracking.Run,
                 checkpoints: Path | None = None, baseline: BaselinePaths | None = None) -> None:
        self.params, self.name = params, name
        self.study = params.tune.studies[name]
        self.base = model_section(params, self.study.model)
        tune = params.tune
        self.data = TrialData(data_dir, tune.subsample, tune.seed, params.train.seed)
        self.epochs = tune.trial_epochs(self.base)
        self.experiment, self.parent = experiment, parent
        self.checkpoints = checkpoints if full_fidelity(params, self.base) else None
        self.baseline = trained_baseline(params, self.study.model, self.base, baseline)
        self.tags = tracking.run_tags(self.study.model, self.base.family, f"tune@{name}", data_dir,
                                      params)
        self.tags |= {"sampler": self.study.sampler}

    def __call__(self, trial: optuna.Trial) -> float:
        tune = self.params.tune
        values = tuning.suggest(trial, tune.space[self.study.model], self.base)
        section = tuning.with_values(self.base, values, epochs=self.epochs)
        # One training seed for every trial, the baseline's: configurations are compared on
        # equal terms, and the first trial is the baseline itself.
        seed = self.params.train.seed
        run = tracking.start_child_run(
            self.experiment, self.parent, f"{self.name}-trial-{trial.number:03d}",
            self.tags | {"optuna_trial": str(trial.number), "worker": tuning.worker_id(),
                         "baseline_trial": str(tuning.is_baseline(trial)).lower()},
            tracking.run_params(self.params, self.study.model, section)
            | {"seed": seed, "patience": tune.patience, "trial": trial.number,
               "train_reviews": len(self.data.train)})
        trial.set_user_attr("mlflow_run_id", run.id)
        callback = _TrialCallback(trial, run)
        state = "FAIL"
        try:
            if tuning.is_baseline(trial) and self.baseline is not None:
                value = self._replay(trial, run, callback)
                state = "COMPLETE"
                return value
            result = fit(recipe_for(section, self.params.train), self.data.train, self.data.val,
                         vocab_size=len(self.data.vocabulary), seed=seed,
                         stopping=Stopping(self.params.train.monitor, tune.patience),
                         callbacks=[callback], verbose=0, embedding=self.data.embedding(section))
            # The validation accuracy of the weights training keeps (the best epoch on
            # train.monitor), as a train stage reports it: the tuned model's, when kept.
            value = result.best["val_accuracy"]
            trial.set_user_attr("epochs_run", len(result.history))
            trial.set_user_attr("best_epoch", result.best_epoch)
            trial.set_user_attr("seconds", round(result.seconds, 2))
            if self.checkpoints is not None and not callback.pruned and _leads(trial, value):
                try:
                    keep_checkpoint(self.checkpoints, trial.number, result,
                                    self.data.coverage(section), section)
                except OSError as error:  # only costs a retrain if this trial stays the best
                    print(f"warning: tune@{self.name}: trial {trial.number}'s weights not kept "
                          f"({error}); the best configuration is retrained if it is this one",
                          file=sys.stderr, flush=True)
            del result
            keras.backend.clear_session()
            gc.collect()
            trial.set_user_attr("rss_mb", round(psutil.Process().memory_info().rss / 2**20, 1))
            run.log_metrics({"best_val_accuracy": value})
            if callback.pruned:
                state = "PRUNED"
                raise optuna.TrialPruned()
            state = "COMPLETE"
            return value
        finally:
            ending = sys.exc_info()[1] is not None
            try:
                try:
                    run.set_tags({"trial_state": state})
                finally:  # ended, or handed off when the store is gone
                    tracking.end_or_hand_off(run, self.experiment.uri,
                                             tracking.TRIAL_STATUS[state])
            except PipelineError:
                if not ending:  # else the trial's own error is the one to report
                    raise


    def _replay(self, trial: optuna.Trial, run: tracking.Run, callback: _TrialCallback) -> float:
        """Trial 0 as the train stage trained it: its epochs reported as they were."""
        assert self.baseline is not None
        for row in self.baseline.history:
            callback.on_epoch_end(int(row["epoch"]) - 1,
                                  {k: v for k, v in row.items() if k not in ("epoch", "seconds")})
        summary = self.baseline.summary
        trial.set_user_attr("replayed_from", f"train@{self.study.model}")
        trial.set_user_attr("epochs_run", len(self.baseline.history))
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        trial.set_user_attr("seconds", summary["train_seconds"])
        run.set_tags({"replayed_from": f"train@{self.study.model}"}
                     | ({"baseline_run_id": self.baseline.run_id} if self.baseline.run_id else {}))
        value = float(summary["best_val_accuracy"])
        run.log_metrics({"best_val_accuracy": value})
        return value


def _leads(trial: optuna.Trial, value: float) -> bool:
    """Whether a finishing trial is at least as good as every complete trial of its study."""
    complete = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return all(value >= t.value for t in complete if t.number != trial.number)


def _close_dead_runs(study: optuna.Study, numbers: list[int], experiment: tracking.Experiment,
                     parent: tracking.Run) -> None:
    """The MLflow runs of trials whose worker died: FAILED instead of RUNNING forever.

    A run is found by the id recorded in its trial or, when the worker died before recording
    it, by the trial's tags.
    """
    for trial in study.get_trials(deepcopy=False):
        if trial.number not in numbers:
            continue
        run_ids = {r.id for r in tracking.running_trial_runs(experiment, parent, trial.number)}
        if trial.user_attrs.get("mlflow_run_id"):
            run_ids.add(trial.user_attrs["mlflow_run_id"])
        for run_id in sorted(run_ids):
            run = tracking.Run(experiment.client, run_id)
            run.set_tags({"trial_state": "FAIL", "fail_reason": "worker died during the trial"})
            run.end("FAILED")


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """Every trial of the study in number order, with the best-so-far validation accuracy."""
    rows = []
    best = -math.inf
    elapsed = 0.0
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.user_attrs.get("fail_reason", "").startswith("surplus"):
            continue  # a claim lost in a race between workers, never trained
        if t.state == optuna.trial.TrialState.COMPLETE:
            best = max(best, t.value)
        elapsed += t.user_attrs.get("seconds", 0.0)
        rows.append({"trial": t.number, "state": t.state.name, "value": t.value,
                     "baseline": tuning.is_baseline(t),
                     "best_so_far": best if best > -math.inf else None,
                     "epochs_run": t.user_attrs.get("epochs_run"),
                     "seconds": t.user_attrs.get("seconds"), "elapsed_seconds": round(elapsed, 2),
                     **{f"param_{k}": v for k, v in t.params.items()},
                     "retry_of": t.user_attrs.get("retry_of"),
                     "rss_mb": t.user_attrs.get("rss_mb"), "worker": t.user_attrs.get("worker"),
                     "mlflow_run_id": t.user_attrs.get("mlflow_run_id")})
    return pd.DataFrame(rows)


def param_importances(study: optuna.Study) -> dict[str, float] | None:
    """Optuna's fANOVA importance of each searched param for validation accuracy (complete
    trials; None with fewer than MIN_IMPORTANCE_TRIALS, or when every trial scored the same)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_IMPORTANCE_TRIALS or len({t.value for t in complete}) < 2:
        return None
    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError):  # e.g. a param that never varied
        return None
    return {k: round(float(v), 4) for k, v in importances.items()}


def work(params: Params, name: str, data_dir: Path, *, worker: bool = False,
         threads: int | None = None, checkpoints: Path | None = None,
         baseline: BaselinePaths | None = None) -> tuple:
    """Run trials of study ``name`` until it has ``n_trials`` finished ones (or time is up).

    Returns (study, MLflow experiment, parent run, loop result). A ``worker`` leaves the parent
    run RUNNING for the main run to finish. ``checkpoints`` is the folder of kept trial weights
    (one subfolder per study); ``baseline`` the base model's train stage outputs, which trial 0
    replays at full fidelity.
    """
    tune = params.tune
    if name not in tune.studies:
        raise PipelineError(f"params.yaml: tune.studies has no study {name!r}; valid: "
                            f"{', '.join(tune.studies) or '(none)'}")
    spec = tune.studies[name]
    base = model_section(params, spec.model)
    # The study's storage first: a bad one stops the stage before MLflow is touched.
    url = tuning.storage_url(tune)
    storage = tuning.open_storage(url)
    experiment = tracking.connect(params.mlflow, tune.experiment)
    full_name = tuning.study_name(name, params, data_dir)
    kept = None if checkpoints is None else checkpoints / full_name
    with tuning.storage_errors(url):
        study = tuning.open_study(full_name, storage, spec.sampler, tune,
                                  seed=tuning.study_seed(tune.seed, name),
                                  max_epochs=tune.trial_epochs(base))
        tuning.enqueue_baseline(study, tune.space[spec.model], base)
        if not worker:
            study.set_user_attr("dvc_stage", f"tune@{name}")
            tuning.mark_superseded(storage, name, full_name)
        known = study.user_attrs.get("mlflow_parent_run_id")
    # Tied to this study of this storage: a study of the same name elsewhere (a scratch copy's
    # journal, another database) has a parent of its own.
    parent, status = tracking.study_parent_run(
        experiment, full_name, tuning.storage_key(url, full_name), f"{name} (study)",
        tracking.run_tags(spec.model, base.family, f"tune@{name}", data_dir, params)
        | {"sampler": spec.sampler}, known=known)
    with tuning.storage_errors(url):
        if known != parent.id:
            study.set_user_attr("mlflow_parent_run_id", parent.id)
    if status is None:  # created here
        parent.log_params({"study": full_name, "sampler": spec.sampler,
                           "model": spec.model, "family": base.family,
                           "n_trials": tune.n_trials, "epochs": tune.trial_epochs(base),
                           "subsample": tune.subsample, "pruner": tune.pruner,
                           "storage": redact_url(url)})
    if not worker:
        # Resumed: an earlier run of the stage ended (or died: connect() ended its run FAILED);
        # a parent RUNNING without owner was created a moment ago by a worker.
        if status not in (None, "RUNNING"):
            parent.set_tags({"status_note": f"resumed after {status}"})
        tracking.own(parent, experiment.uri)
    helpers: list = []
    start = time.perf_counter()
    try:
        with tuning.storage_errors(url):
            loop = _run_study(params, name, data_dir, study, experiment, parent, url,
                              storage=storage, worker=worker, threads=threads,
                              checkpoints=checkpoints,
                              kept=kept, baseline=baseline, helpers=helpers, start=start)
    except BaseException as error:
        compute.stop_processes(helpers)  # each ends its trial's run FAILED on SIGTERM
        if isinstance(error, tuning.StorageFailure):
            # Trials of this process or its workers the storage did not let them fail (this
            # process may have been between trials, waiting for theirs).
            tuning.hand_off_trials(url, full_name)
        if not worker:  # the study can be resumed; its parent run says this run failed
            with contextlib.suppress(PipelineError):  # handed off; the first error is the stage's
                tracking.end_or_hand_off(parent, experiment.uri, "FAILED")
        raise
    loop.seconds = time.perf_counter() - start
    return study, experiment, parent, loop


def _run_study(params: Params, name: str, data_dir: Path, study: optuna.Study,
               experiment: tracking.Experiment, parent: tracking.Run, url: str, *,
               storage: optuna.storages.BaseStorage, worker: bool, threads: int | None,
               checkpoints: Path | None, kept: Path | None,
               baseline: BaselinePaths | None, helpers: list, start: float
               ) -> tuning.LoopResult:
    """The trial loops of :func:`work`: this process's, and the extra workers it starts (added
    to ``helpers``, which the caller stops if this raises)."""
    tune = params.tune
    # The stage runs trials itself and starts workers - 1 more processes on the same study
    # (compute), as many as there are trials left; a worker started by hand (--worker) runs
    # only its own loop, with every core's threads; a helper keeps the threads it was given.
    left = max(1, tuning.trials_left(study, tune.n_trials))
    the_plan = compute.plan(params.compute, 1 if worker else left)
    if threads is None:
        compute.set_threads(the_plan.threads)
    if not worker and the_plan.workers > 1:
        print(f"tune@{name}: {left} trial(s) left, {the_plan.describe()}", flush=True)
        helpers.extend(compute.start_process(_worker, (params, name, data_dir, the_plan.threads,
                                                       checkpoints, baseline), the_plan.threads)
                       for _ in range(the_plan.workers - 1))
    objective = Objective(params, name, data_dir, experiment, parent, kept, baseline)

    def recover() -> None:
        _close_dead_runs(study, tuning.recover_dead_trials(study, storage), experiment, parent)

    while True:
        remaining = (None if tune.timeout is None
                     else max(tune.timeout - (time.perf_counter() - start), 0.0))
        loop = tuning.run_trials(study, objective, n_trials=tune.n_trials, timeout=remaining,
                                 before_trial=recover, storage_url=url, storage=storage)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if worker or loop.stopped_by == "timeout" or not running:
            break
        helpers[:] = _check_helpers(name, helpers)
        print(f"tune@{name}: waiting for {len(running)} trial(s) of other workers: "
              f"{', '.join(str(t.user_attrs.get('worker')) for t in running)}", flush=True)
        time.sleep(WAIT_SECONDS)
    for helper in helpers:
        helper.join()
    _check_helpers(name, helpers)
    return loop


def _worker(params: Params, name: str, data_dir: Path, threads: int,
            checkpoints: Path | None, baseline: BaselinePaths | None) -> None:
    """An extra worker process of the stage: trials of the study until none is left."""
    work(params, name, data_dir, worker=True, threads=threads, checkpoints=checkpoints,
         baseline=baseline)


def _check_helpers(name: str, helpers: list) -> list:
    """The worker processes of the stage still running. One that failed (exit code 1: its
    trial is FAIL in the study, its error on stderr above) stops the stage with a one-line
    error; one that was killed (out of memory, say) is reported, and its trial is failed and
    queued again by the next recovery pass, so the stage goes on without it."""
    failed = [h for h in helpers if h.exitcode is not None and h.exitcode > 0]
    if failed:
        codes = ", ".join(f"pid {h.pid} exit code {h.exitcode}" for h in failed)
        raise PipelineError(f"tune@{name}: a worker process failed ({codes})")
    for helper in helpers:
        if helper.exitcode is not None and helper.exitcode < 0:
            print(f"warning: tune@{name}: worker process {helper.pid} was killed (signal "
                  f"{-helper.exitcode}); its trial is run again", file=sys.stderr, flush=True)
    return [h for h in helpers if h.exitcode is None or h.exitcode == 0]


def tune(params: Params, name: str, paths: TunePaths) -> dict:
    """The stage: run the study, retrain and evaluate its best configuration, write results."""
    study, experiment, parent, loop = work(params, name, paths.data_dir,
                                           checkpoints=paths.checkpoints, baseline=paths.baseline)
    url = tuning.storage_url(params.tune)
    try:
        with tuning.storage_errors(url):
            return _finish(params, name, paths, study, experiment, parent, loop)
    except BaseException:
        # The parent of a stage that failed after its trials (the storage, the retrain) is
        # FAILED, not RUNNING: the study can be resumed, the run says this one failed. (A
        # store that fails here too gets it handed off; the first error is the stage's.)
        try:
            if experiment.status(parent.id) == "RUNNING":
                tracking.end_or_hand_off(parent, experiment.uri, "FAILED")
        except PipelineError:
            tracking.hand_off(experiment.uri, parent.id)
        raise


def _finish(params: Params, name: str, paths: TunePaths, study: optuna.Study,
            experiment: tracking.Experiment, parent: tracking.Run,
            loop: tuning.LoopResult) -> dict:
    """The stage after its trials: the best configuration as a model, evaluated; the results."""
    tune = params.tune
    spec = tune.studies[name]
    base = model_section(params, spec.model)
    counts = tuning.counts(study)
    try:
        best = study.best_trial
    except ValueError:
        parent.end("FAILED")
        raise PipelineError(f"tune@{name}: no trial completed ({counts}); nothing to retrain") from None
    table = trials_table(study)
    finished = table[table["state"].isin(["COMPLETE", "PRUNED"])]
    pruned = finished[finished["state"] == "PRUNED"]
    epochs = tune.trial_epochs(base)
    baseline = tuning.baseline_trial(study)
    summary = {
        "study": study.study_name, "model": spec.model, "family": base.family,
        "sampler": spec.sampler, "pruner": tune.pruner,
        "storage": redact_url(tuning.storage_url(tune)),
        "best_trial": best.number, "best_val_accuracy": best.value, "best_params": best.params,
        "baseline_trial": baseline.number if baseline is not None else None,
        "baseline_val_accuracy": baseline.value if baseline is not None else None,
        "best_is_baseline": tuning.is_baseline(best),
        "trial_epochs": epochs, "trial_subsample": tune.subsample,
        "trials_complete": counts["complete"], "trials_pruned": counts["pruned"],
        "trials_failed": int((table["state"] == "FAIL").sum()),
        "stopped_by": loop.stopped_by,
        "trial_seconds": round(float(finished["seconds"].sum()), 1),
        "wall_seconds": round(loop.seconds, 1),
        "epochs_run": int(finished["epochs_run"].sum()),
        "epochs_budget": int(len(finished) * epochs),
        "epochs_saved_by_pruning": int((epochs - pruned["epochs_run"]).sum()),
        "rss_mb_first_last": [table["rss_mb"].dropna().iloc[0], table["rss_mb"].dropna().iloc[-1]]
        if table["rss_mb"].notna().any() else None,
    }
    summary["param_importances"] = param_importances(study)
    best_run = best.user_attrs.get("mlflow_run_id")
    parent.log_metrics({"best_val_accuracy": best.value, "trials_complete": counts["complete"],
                        "trials_pruned": counts["pruned"]})
    # Tags, not params: a rerun with a raised n_trials may find another best, and MLflow
    # refuses to change a logged param ("Changing param values is not allowed").
    parent.set_tags({f"best_{k}": str(v) for k, v in best.params.items()})
    parent.set_tags({
        "best_trial": str(best.number), "best_run_id": str(best_run),
        "mlflow.note.content": f"Best trial: [{best.number}]"
                               f"({experiment.link(str(best_run))}), "
                               f"validation accuracy {best.value:.4f}."})

    # The best configuration, trained as a baseline is: whole training split, base epochs. At
    # that fidelity the best trial did exactly this, and its kept weights are the model.
    model_name = tuned_name(name)
    section: ModelSection = tuning.with_values(base, best.params)
    kept = (None if paths.checkpoints is None
            else paths.checkpoints / study.study_name)
    fitted = None
    replayed = trained_baseline(params, spec.model, base, paths.baseline)
    if best.user_attrs.get("replayed_from") and replayed is not None:
        # Nothing beat the baseline: the tuned model is its own.
        fitted = replayed.result(len(load_sequences(paths.data_dir / "train.npz")))
    elif kept is not None and full_fidelity(params, base):
        fitted = load_checkpoint(kept, best.number, tuning.with_values(base, best.params,
                                                                       epochs=epochs))
    summary["baseline_replayed"] = bool(baseline and baseline.user_attrs.get("replayed_from"))
    summary["tuned_model"] = (
        "retrained on the whole training split" if fitted is None
        else f"the baseline's weights ({best.user_attrs['replayed_from']})"
        if best.user_attrs.get("replayed_from") else f"trial {best.number}'s weights")
    train_paths = TrainPaths(paths.data_dir, paths.model_dir, paths.history_csv, paths.train_json)
    trained = train(params, model_name, train_paths, section=section, experiment=tune.experiment,
                    stage=f"tune@{name}", fitted=fitted,
                    extra_tags={"mlflow.parentRunId": parent.id,
                                "run_kind": "best_trial" if fitted else "retrained_best",
                                "source_trial": str(best.number), "sampler": spec.sampler})
    del fitted
    evaluated = evaluate(params, model_name, paths.model_dir, paths.data_dir, paths.evaluation,
                         experiment=tune.experiment)
    summary |= {"tuned_val_accuracy": trained["best_val_accuracy"],
                "test_accuracy": evaluated["accuracy"]}
    figures = search_figures(study)
    summary["figures"] = list(figures)
    with atomic_paths(paths.trials_csv, paths.best_json) as (trials_tmp, best_tmp):
        table.to_csv(trials_tmp, index=False, float_format="%.5f")
        write_json(best_tmp, summary)
    # Each figure rendered once: the PNG saved is the one logged to the study's run.
    with temporary_directory(paths.figures or paths.best_json) as tmp:
        for path in save_figures(figures, tmp / "figures"):
            parent.log_artifact(path, "optuna")
        if paths.figures is not None:
            move_into_place(tmp / "figures", paths.figures)
    parent.log_metrics({"test_accuracy": evaluated["accuracy"]})
    parent.end("FINISHED")
    if kept is not None:  # only the best trial's weights can still become the tuned model
        prune_checkpoints(kept, best.number)
    return summary
