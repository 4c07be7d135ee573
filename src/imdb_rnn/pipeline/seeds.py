"""The `seeds` stage: a baseline retrained with other training seeds, to measure seed variance.

Everything but ``train.seed`` stays as in the baseline (data split, vocabulary, word vectors,
hyperparameters), so the spread of the test accuracies is the noise a single run carries. Each
replicate trains and predicts through the same functions as the train and evaluate stages and
is one MLflow run (experiment ``report.seed_experiment``); the models are not kept.

Keras and MLflow are imported where a replicate is trained, not with this module: with no
replicate seed (the smoke profile) the stage only writes the baseline's summary, in about a
second instead of the ten it takes to import them.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from imdb_rnn import compute
from imdb_rnn.config import ModelSection, Params, model_section
from imdb_rnn.io import read_json, write_json

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


def _replicate_one(params: Params, name: str, data_dir: Path, seed: int) -> dict:
    """One replicate (a worker process runs it): train with ``seed``, test, one MLflow run."""
    from imdb_rnn.data import load_sequences
    from imdb_rnn.evaluation import tracked_metrics
    from imdb_rnn.tracking import models
    from imdb_rnn.tracking import runs as tracking

    section = model_section(params, name)
    experiment = tracking.connect(params.mlflow, params.report.seed_experiment)
    test = load_sequences(data_dir / "test.npz")
    tags = tracking.run_tags(name, section.family, f"seeds@{name}", data_dir)
    with experiment.run(f"{name}-seed{seed}", tags=tags | {"run_kind": "seed_replicate"}) as run:
        run.log_params(tracking.run_params(params, name) | {"seed": seed})
        splits = models.log_splits(run, data_dir, ["train", "val", "test"])
        result, metrics = fit_and_test(params, section, data_dir, test, seed=seed)
        run.log_history(result.history)
        run.log_metrics(tracked_metrics(metrics), dataset=splits["test"])
    return {"seed": seed, "val_accuracy": result.best["val_accuracy"],
            "test_accuracy": metrics["accuracy"], "epochs": len(result.history),
            "source": "replicate"}


def replicate(params: Params, name: str, data_dir: Path, baseline_train_json: Path,
              baseline_test_json: Path, out_json: Path) -> dict:
    """Train model ``name`` once per seed of ``report.seeds`` (side by side, one worker process
    per core: ``compute``); summarise with the baseline's run."""
    section = model_section(params, name)
    baseline_train = read_json(baseline_train_json, f"{name} training summary")
    baseline_test = read_json(baseline_test_json, f"{name} test metrics")
    runs = [{"seed": params.train.seed, "val_accuracy": baseline_train["best_val_accuracy"],
             "test_accuracy": baseline_test["accuracy"], "epochs": baseline_train["epochs"],
             "source": "baseline"}]
    # The baseline run is train.seed already.
    seeds = [seed for seed in dict.fromkeys(params.report.seeds) if seed != params.train.seed]
    the_plan = compute.plan(params.compute, len(seeds))
    if seeds:
        print(f"seeds@{name}: {len(seeds)} replicate(s), {the_plan.describe()}", flush=True)
    runs += compute.run_parallel(_replicate_one, [(params, name, data_dir, seed) for seed in seeds],
                                 the_plan, f"seeds@{name}")
    tests = [r["test_accuracy"] for r in runs]
    summary = {"model": name, "family": section.family, "seeds": [r["seed"] for r in runs],
               "runs": runs, "test_accuracy_mean": statistics.fmean(tests),
               "test_accuracy_std": statistics.stdev(tests) if len(tests) > 1 else None,
               "test_accuracy_min": min(tests), "test_accuracy_max": max(tests)}
    write_json(out_json, summary)
    return summary
