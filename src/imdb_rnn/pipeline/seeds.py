"""The `seeds` stages: a configuration retrained with other training seeds, to measure seed
variance and to decide on seed means.

``seeds@NAME`` retrains baseline NAME, ``seeds_tuned@STUDY`` the best configuration of study
STUDY (model ``tuned_STUDY``; :mod:`imdb_rnn.pipeline.seeds_tuned`), each with every seed of
``report.seeds``. Everything but the
training seed stays as in the ``train.seed`` run (data split, vocabulary, word vectors,
hyperparameters), so the spread of the accuracies is the noise a single run carries. Each
replicate trains and predicts through the same functions as the train and evaluate stages and
is one MLflow run (experiment ``report.seed_experiment``).

What is kept: the summary (validation and test accuracy per seed, mean, sd) and, when a
replicate has a better validation accuracy than the ``train.seed`` run, that replicate's model
folder, logged as an MLflow Model like a baseline (``models/seeds/NAME``): the champion is the
configuration with the best mean validation accuracy, served with the weights of its
best-validation seed (the register stage). The other replicates' weights are dropped.

Keras and MLflow are imported where a replicate is trained, not with this module: with no
replicate seed (the smoke profile) the stage only writes the ``train.seed`` run's summary, in
about a second instead of the ten it takes to import them.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from imdb_rnn import compute
from imdb_rnn.config import ModelSection, Params, model_section
from imdb_rnn.errors import PipelineError
from imdb_rnn.io import atomic_path, read_json, write_json
from imdb_rnn.layout import SEED_FILE, SEED_WEIGHTS, TRAIN_WEIGHTS

if TYPE_CHECKING:
    from imdb_rnn.data import Sequences
    from imdb_rnn.modeling import TrainResult

def fit_and_test(params: Params, section: ModelSection, data_dir: Path, test: Sequences, *,
                 seed: int, verbose: int | None = None) -> tuple[TrainResult, dict]:
    """Train ``section`` as the train stage does, with training seed ``seed``, and score it on
    ``test`` as the evaluate stage does; the fit and its test metrics."""
    from imdb_rnn.evaluation import classification_metrics
    from imdb_rnn.modeling import predict_probabilities, recipe_for
    from imdb_rnn.pipeline.train import fit_section

    result, _ = fit_section(params, section, data_dir, seed=seed, verbose=verbose)
    probabilities = predict_probabilities(result.model, test, recipe_for(section).shape,
                                          params.evaluate.batch_size)
    return result, classification_metrics(test.labels, probabilities, params.evaluate.threshold)


def _replicate_one(params: Params, name: str, section: ModelSection, data_dir: Path, seed: int,
                   folder: Path, stage: str) -> dict:
    """One replicate (a worker process runs it): train with ``seed``, test, one MLflow run; its
    model folder is written to ``folder`` (kept only if it becomes the best on validation)."""
    from imdb_rnn.data import load_sequences
    from imdb_rnn.evaluation import tracked_metrics
    from imdb_rnn.pipeline.train import save_model_folder
    from imdb_rnn.tracking import models
    from imdb_rnn.tracking import runs as tracking

    experiment = tracking.connect(params.mlflow, params.report.seed_experiment)
    test = load_sequences(data_dir / "test.npz")
    tags = tracking.run_tags(name, section.family, stage, data_dir, params)
    resolved = tracking.run_params(params, name, section) | {"seed": seed}
    with experiment.run(f"{name}-seed{seed}", tags=tags | {"run_kind": "seed_replicate"}) as run:
        run.log_params(resolved)
        splits = models.log_splits(run, data_dir, ["train", "val", "test"])
        result, metrics = fit_and_test(params, section, data_dir, test, seed=seed)
        run.log_history(result.history)
        run.log_metrics({"best_val_accuracy": result.best["val_accuracy"]})
        run.log_metrics(tracked_metrics(metrics), dataset=splits["test"])
        folder.mkdir(parents=True)
        save_model_folder(params, section, result, data_dir, folder, resolved)
    return {"seed": seed, "val_accuracy": result.best["val_accuracy"],
            "test_accuracy": metrics["accuracy"], "epochs": len(result.history),
            "source": "replicate", "run_id": run.id}


def summarise(name: str, family: str, runs: list[dict], best: dict, weights: str,
              weights_of: str) -> dict:
    """The summary a seeds stage writes (a DVC metric): every run, mean and sd of test and
    validation accuracy, and where the best-validation seed's weights are."""
    tests = [r["test_accuracy"] for r in runs]
    vals = [r["val_accuracy"] for r in runs]
    return {"model": name, "family": family, "seeds": [r["seed"] for r in runs], "runs": runs,
            "test_accuracy_mean": statistics.fmean(tests),
            "test_accuracy_std": statistics.stdev(tests) if len(tests) > 1 else None,
            "test_accuracy_min": min(tests), "test_accuracy_max": max(tests),
            "val_accuracy_mean": statistics.fmean(vals),
            "val_accuracy_std": statistics.stdev(vals) if len(vals) > 1 else None,
            "best_val_seed": best["seed"], "best_val_weights": weights,
            "weights_of": weights_of}


def replicate(params: Params, name: str, data_dir: Path, baseline_train_json: Path,
              baseline_test_json: Path, out_json: Path, model_out: Path, *,
              section: ModelSection | None = None, stage: str | None = None) -> dict:
    """Train model ``name`` (``section``: by default ``train.models.NAME``) once per seed of
    ``report.seeds`` (side by side, one worker process per core: ``compute``); summarise with
    its ``train.seed`` run (``baseline_*_json``: that run's training summary and test metrics).

    Writes the summary to ``out_json`` and, to the folder ``model_out``, ``seed.json`` and the
    model folder of the best replicate on validation when it beats the ``train.seed`` run (ties
    go to that run), logged as an MLflow Model on the replicate's run.
    """
    section = section or model_section(params, name)
    stage = stage or f"seeds@{name}"
    baseline_train = read_json(baseline_train_json, f"{name} training summary")
    baseline_test = read_json(baseline_test_json, f"{name} test metrics")
    runs = [{"seed": params.train.seed, "val_accuracy": baseline_train["best_val_accuracy"],
             "test_accuracy": baseline_test["accuracy"], "epochs": baseline_train["epochs"],
             "source": "baseline"}]
    # The train.seed run is there already.
    seeds = [seed for seed in dict.fromkeys(params.report.seeds) if seed != params.train.seed]
    the_plan = compute.plan(params.compute, len(seeds))
    if seeds:
        print(f"{stage}: {len(seeds)} replicate(s), {the_plan.describe()}", flush=True)
    with atomic_path(model_out, directory=True) as model_tmp, atomic_path(out_json) as json_tmp:
        jobs = [(params, name, section, data_dir, seed, model_tmp / f"seed{seed}", stage)
                for seed in seeds]
        if jobs:  # none: no TensorFlow to start
            runs += compute.run_parallel(_replicate_one, jobs, the_plan, stage)
        best = max(runs, key=lambda r: r["val_accuracy"])  # max keeps the first of ties
        kept = best["source"] == "replicate"
        if kept:
            _keep(params, name, section, best, model_tmp / f"seed{best['seed']}", model_tmp)
        for seed in seeds:  # what register cannot need: the other replicates' weights
            shutil.rmtree(model_tmp / f"seed{seed}", ignore_errors=True)
        weights = SEED_WEIGHTS if kept else TRAIN_WEIGHTS
        write_json(model_tmp / SEED_FILE, {
            "model": name, "best_val_seed": best["seed"], "val_accuracy": best["val_accuracy"],
            "weights": weights, "weights_of": name, "model_folder_here": kept})
        summary = summarise(name, section.family, runs, best, weights, name)
        write_json(json_tmp, summary)
    return summary


def _keep(params: Params, name: str, section: ModelSection, best: dict, folder: Path,
          into: Path) -> None:
    """Log the best replicate's model folder as an MLflow Model on its (finished) run, as the
    train stage logs a baseline, and move its files to ``into``."""
    from imdb_rnn.pipeline.train import log_model_folder
    from imdb_rnn.tracking import runs as tracking

    experiment = tracking.connect(params.mlflow, params.report.seed_experiment)
    run = experiment.attach(best["run_id"])
    if run is None:  # the store lost the run between the replicate and now
        raise PipelineError(f"seed replicate {name}-seed{best['seed']}: MLflow run "
                            f"{best['run_id']} not found in {experiment.uri}")
    with tracking.updating(run):
        log_model_folder(experiment, run, folder, f"{name}-seed{best['seed']}", tags={
            "model": name, "family": section.family, "seed": str(best["seed"])})
        run.set_tags({"kept_model": "best validation accuracy of the seed runs"})
    for file in folder.iterdir():
        file.rename(into / file.name)
