"""The `seeds` stage: a baseline retrained with other training seeds, to measure seed variance.

Everything but ``train.seed`` stays as in the baseline (data split, vocabulary, word vectors,
hyperparameters), so the spread of the test accuracies is the noise a single run carries. Each
replicate is one MLflow run (experiment ``report.seed_experiment``); the models are not kept.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from imdb_rnn import tracking
from imdb_rnn.artifacts import model_section, run_params
from imdb_rnn.embed import initial_embedding
from imdb_rnn.evaluation import classification_metrics, tracked_metrics
from imdb_rnn.io import read_json, write_json
from imdb_rnn.params import Params
from imdb_rnn.vectorize import VOCAB_FILE, load_sequences, load_vocabulary


def replicate(params: Params, name: str, data_dir: Path, baseline_reports: Path,
              out_json: Path) -> dict:
    """Train model ``name`` once per seed of ``report.seeds``; summarise with the baseline's run."""
    from imdb_rnn.training import input_shape_for, predict_probabilities, train_model

    section = model_section(params, name)
    experiment_id = tracking.connect(params.mlflow, params.report.seed_experiment)
    baseline_train = read_json(baseline_reports / "train" / name / "train.json",
                               f"{name} training summary")
    baseline_test = read_json(baseline_reports / "evaluate" / name / "metrics.json",
                              f"{name} test metrics")
    train = load_sequences(data_dir / "train.npz")
    val = load_sequences(data_dir / "val.npz")
    test = load_sequences(data_dir / "test.npz")
    vocabulary = load_vocabulary(data_dir / VOCAB_FILE)
    runs = [{"seed": params.train.seed, "val_accuracy": baseline_train["best_val_accuracy"],
             "test_accuracy": baseline_test["accuracy"], "epochs": baseline_train["epochs"],
             "source": "baseline"}]
    for seed in params.report.seeds:
        if seed == params.train.seed:
            continue  # the baseline run is that seed already
        tags = tracking.run_tags(name, section.family, f"seeds@{name}", data_dir)
        with tracking.run(experiment_id, f"{name}-seed{seed}",
                          tags=tags | {"run_kind": "seed_replicate"}):
            tracking.log_params(run_params(params, name) | {"seed": seed})
            matrix, _ = initial_embedding(section, vocabulary, seed)
            result = train_model(section, train, val, vocab_size=len(vocabulary), seed=seed,
                                 monitor=params.train.monitor, patience=params.train.patience,
                                 embedding_matrix=matrix)
            tracking.log_history(result.history)
            probabilities = predict_probabilities(result.model, test, input_shape_for(section),
                                                  params.evaluate.batch_size)
            metrics = classification_metrics(test.labels, probabilities,
                                             params.evaluate.threshold)
            tracking.log_metrics(tracked_metrics(metrics))
            best = result.history[result.best_epoch - 1]
            runs.append({"seed": seed, "val_accuracy": best["val_accuracy"],
                         "test_accuracy": metrics["accuracy"], "epochs": len(result.history),
                         "source": "replicate"})
    tests = [r["test_accuracy"] for r in runs]
    summary = {"model": name, "family": section.family, "seeds": [r["seed"] for r in runs],
               "runs": runs, "test_accuracy_mean": statistics.fmean(tests),
               "test_accuracy_std": statistics.stdev(tests) if len(tests) > 1 else None,
               "test_accuracy_min": min(tests), "test_accuracy_max": max(tests)}
    write_json(out_json, summary)
    return summary
