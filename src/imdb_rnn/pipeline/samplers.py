"""The `samplers` stage: random against TPE search, each repeated with several sampler seeds.

One repetition is a whole Optuna study (in memory: a killed stage starts over) of
``samplers.n_trials`` trials of ``train.models.MODEL`` over ``tune.space.MODEL``, trained with the
one training path at the cheap fidelity of ``samplers`` (a stratified training subsample, a few
epochs, no pruning), scored on the whole validation split, and logged as one MLflow run
(experiment ``samplers.experiment``: the trial values and best-so-far as metric steps). The
repetitions run side by side in worker processes (``compute``). The verdict is
:mod:`imdb_rnn.search.samplers`'.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from imdb_rnn import compute
from imdb_rnn.config import Params, model_section

# The two samplers the verdict sentence compares (any others are in the table and figure).
VERDICT = ("tpe", "random")


def repetition_seed(seed: int, sampler: str, repeat: int) -> int:
    """Sampler seed of repetition ``repeat`` of ``sampler``: independent across both."""
    from imdb_rnn.search.study import study_seed

    return study_seed(seed + repeat, sampler)


def _repetition(params: Params, sampler: str, repeat: int, data_dir: Path) -> list[dict]:
    """One study of one sampler (a worker process runs it): its trials, one MLflow run."""
    import optuna

    from imdb_rnn.modeling import fit, recipe_for
    from imdb_rnn.search import study as tuning
    from imdb_rnn.search.trial_data import TrialData
    from imdb_rnn.tracking import runs as tracking

    spec = params.samplers
    base = model_section(params, spec.model)
    space = params.tune.space[spec.model]
    data = TrialData(data_dir, spec.subsample, spec.seed, params.train.seed)
    seed = repetition_seed(spec.seed, sampler, repeat)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=tuning.make_sampler(
        sampler, seed, params.tune.n_startup_trials))
    experiment = tracking.connect(params.mlflow, spec.experiment)
    tags = tracking.run_tags(spec.model, base.family, "samplers", data_dir, params)
    rows: list[dict] = []
    with experiment.run(f"{sampler}-{repeat}", tags=tags | {"sampler": sampler,
                                                            "run_kind": "sampler_repetition"}) as run:
        run.log_params({"model": spec.model, "sampler": sampler, "repeat": repeat,
                        "sampler_seed": seed, "n_trials": spec.n_trials, "epochs": spec.epochs,
                        "subsample": spec.subsample, "train_seed": params.train.seed})
        best = float("-inf")
        for _ in range(spec.n_trials):
            trial = study.ask()
            values = tuning.suggest(trial, space, base)
            section = tuning.with_values(base, values, epochs=spec.epochs)
            start = time.perf_counter()
            result = fit(recipe_for(section, params.train), data.train, data.val,
                         vocab_size=len(data.vocabulary), seed=params.train.seed, verbose=0,
                         embedding=data.embedding(section))
            value = max(row["val_accuracy"] for row in result.history)
            study.tell(trial, value)
            best = max(best, value)
            run.log_metrics({"val_accuracy": value, "best_so_far": best}, step=trial.number + 1)
            rows.append({"sampler": sampler, "repeat": repeat, "trial": trial.number,
                         "value": value, "seconds": round(time.perf_counter() - start, 2),
                         **{f"param_{k}": v for k, v in values.items()}})
        run.log_metrics({"best_val_accuracy": best})
    return rows


def compare(params: Params, data_dir: Path) -> tuple[pd.DataFrame, dict]:
    """Every repetition of every sampler; (the trials table, the settings)."""
    from imdb_rnn.data import load_sequences

    spec = params.samplers
    jobs = [(params, sampler, repeat, data_dir)
            for repeat in range(spec.repeats) for sampler in spec.samplers]
    the_plan = compute.plan(params.compute, len(jobs))
    print(f"samplers: {len(jobs)} studies of {spec.n_trials} trials "
          f"({', '.join(spec.samplers)} x {spec.repeats}), {the_plan.describe()}", flush=True)
    rows = [row for study in compute.run_parallel(_repetition, jobs, the_plan, "samplers")
            for row in study]
    n_train = len(load_sequences(data_dir / "train.npz"))
    settings = {"model": spec.model, "samplers": list(spec.samplers), "repeats": spec.repeats,
                "n_trials": spec.n_trials, "epochs": spec.epochs, "seed": spec.seed,
                "train_reviews": min(spec.subsample or n_train, n_train)}
    return pd.DataFrame(rows), settings


def verdict_pair(params: Params) -> tuple[str, str]:
    """The pair of samplers the verdict sentence is about (TPE against random when both ran)."""
    samplers = list(params.samplers.samplers)
    if all(s in samplers for s in VERDICT):
        return VERDICT
    return samplers[0], samplers[1]
