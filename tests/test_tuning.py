"""Optuna search pieces: space, study identity, the trial loop, dead-worker recovery, workers."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import ROOT

from imdb_rnn.config.params import FeedforwardParams, load_params, parse_params
from imdb_rnn.data.vectorize import OOV_TOKEN, PAD_TOKEN, Sequences, save_sequences
from imdb_rnn.errors import PipelineError
from imdb_rnn.modeling.registry import builder_arguments
from imdb_rnn.search import study as tuning

optuna.logging.set_verbosity(optuna.logging.WARNING)

ROOT = Path(__file__).resolve().parents[1]
FF = {"family": "feedforward", "pooling": "average", "units": 4, "ngram_max": 1, "ngram_buckets": 0,
      "nb_scale": 0.0,
      "maxlen": 30, "padding": "post",
      "truncating": "pre", "embedding_dim": 8, "embedding_file": None,
      "embedding_trainable": True, "dropout": 0.1, "batch_size": 32,
      "optimizer": "adam", "learning_rate": 0.01, "clipnorm": None, "epochs": 2}
FF_SPACE = {"maxlen": {"low": 10, "high": 30, "step": 10},
            "units": {"low": 0, "high": 8, "step": 4},
            "dropout": {"low": 0.0, "high": 0.5},
            "embedding_dim": {"choices": [4, 8]},
            "learning_rate": {"low": 0.001, "high": 0.03, "log": True}}


def tiny_params(tmp_path: Path, n_trials: int = 4, **tune: object) -> dict:
    """params.yaml of the project with one tiny feedforward model and two studies of it."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["models"] = {"ff": copy.deepcopy(FF)}
    params["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path}/mlflow.db"
    params["tune"].update(storage=f"journal:{tmp_path}/studies/optuna.journal", n_trials=n_trials,
                          epochs=2, subsample=None, n_startup_trials=2,
                          space={"ff": copy.deepcopy(FF_SPACE)},
                          studies={"ff_random": {"model": "ff", "sampler": "random"},
                                   "ff_tpe": {"model": "ff", "sampler": "tpe"}})
    params["tune"].update(tune)
    params["samplers"].update(model="ff", repeats=2, n_trials=2, subsample=None, epochs=1)
    # One process per stage (parallel workers are tested on their own; a spawned helper's
    # start-up would dominate these tiny studies).
    params["compute"] = {"workers": 1, "threads": 1}
    return params


# --- space and study identity ------------------------------------------------------------------

def test_trial_values_are_typed_like_the_section_and_rebuild_it(tmp_path):
    params = parse_params(tiny_params(tmp_path))
    base = params.train.models["ff"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = tuning.suggest(trial, params.tune.space["ff"], base)
    assert isinstance(values["maxlen"], int) and values["maxlen"] in (10, 20, 30)
    assert isinstance(values["units"], int) and values["units"] in (0, 4, 8)
    assert isinstance(values["dropout"], float) and 0.0 <= values["dropout"] <= 0.5
    assert values["embedding_dim"] in (4, 8)
    assert trial.params == values  # the trial's names are the section's keys
    section = tuning.with_values(base, trial.params, epochs=1)
    assert section.maxlen == values["maxlen"] and section.epochs == 1
    # Each searched key is an architecture keyword of the builder or has another role.
    builder_keys = set(values) & set(FeedforwardParams.architecture_keys())
    assert builder_keys == {"units", "dropout", "embedding_dim"}
    assert builder_keys <= builder_arguments("feedforward")
    assert section.architecture()["units"] == values["units"]
    assert set(values) - builder_keys == {"maxlen", "learning_rate"}
    assert {"maxlen", "learning_rate"} <= {*FeedforwardParams.INPUT_KEYS,
                                           *FeedforwardParams.OPTIMIZER_KEYS}


def test_study_name_follows_the_space_and_training_seed_but_not_the_budget(tmp_path):
    params = parse_params(tiny_params(tmp_path))
    name = tuning.study_name("ff_tpe", params)
    more = parse_params(tiny_params(tmp_path, n_trials=40, timeout=60.0))
    assert tuning.study_name("ff_tpe", more) == name
    narrower = tiny_params(tmp_path)
    narrower["tune"]["space"]["ff"]["dropout"] = {"low": 0.0, "high": 0.2}
    assert tuning.study_name("ff_tpe", parse_params(narrower)) != name
    # Trials train with train.seed: another seed is another study, not the old one resumed.
    reseeded = tiny_params(tmp_path)
    reseeded["train"]["seed"] = 7
    assert tuning.study_name("ff_tpe", parse_params(reseeded)) != name
    assert name.startswith("ff_tpe-")


def test_other_data_is_another_study(tmp_path):
    """Trials scored on other data (a new vocabulary, other word vectors) are never mixed
    with new ones, nor their kept weights reused: the data is part of the study's name."""
    project = make_project(tmp_path)
    params = load_params(project / "params.yaml")
    data = project / "data" / "vectorized"
    name = tuning.study_name("ff_tpe", params, data)
    assert name == tuning.study_name("ff_tpe", params, data)
    assert name != tuning.study_name("ff_tpe", params)
    with open(data / "vocab.txt", "a") as handle:
        handle.write("w50\n")
    assert tuning.study_name("ff_tpe", params, data) != name


def test_a_kept_trial_with_a_diverged_epoch_loads_with_nan(tmp_path):
    """JSON stores NaN as null: a kept trial whose last epoch diverged still loads, NaN again."""
    import keras

    from imdb_rnn.modeling import TrainResult
    from imdb_rnn.pipeline.tune import keep_checkpoint, load_checkpoint

    section = parse_params(tiny_params(tmp_path)).train.models["ff"]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    history = [{"epoch": 1, "val_accuracy": 0.7, "val_loss": 0.5},
               {"epoch": 2, "val_accuracy": 0.5, "val_loss": float("nan")}]
    keep_checkpoint(tmp_path, 3, TrainResult(model, history, 1, 2.0, 10), None, section)
    result, coverage = load_checkpoint(tmp_path, 3, section)
    assert result.best_epoch == 1 and result.history[0] == history[0] and coverage is None
    assert np.isnan(result.history[1]["val_loss"])
    other = section.model_copy(update={"dropout": 0.2})
    assert load_checkpoint(tmp_path, 3, other) is None  # trained with another section
    assert load_checkpoint(tmp_path, 4, section) is None  # never kept


def test_every_study_starts_from_its_baseline_never_queued_twice(tmp_path):
    params = parse_params(tiny_params(tmp_path))
    base, space = params.train.models["ff"], params.tune.space["ff"]
    storage = tuning.open_storage(f"journal:{tmp_path}/j.log")

    def study():
        return tuning.open_study("s", storage, "tpe", params.tune, seed=1, max_epochs=2)

    assert tuning.enqueue_baseline(study(), space, base)
    assert not tuning.enqueue_baseline(study(), space, base)  # a rerun: already there
    tuning.run_trials(study(), lambda t: sum(tuning.suggest(t, space, base).values()) % 1,
                      n_trials=3, timeout=None)
    first, *rest = sorted(study().trials, key=lambda t: t.number)
    assert tuning.is_baseline(first) and not any(tuning.is_baseline(t) for t in rest)
    assert first.params == {"maxlen": 30, "units": 4, "dropout": 0.1, "embedding_dim": 8,
                            "learning_rate": 0.01}
    assert tuning.with_values(base, first.params) == base  # the baseline, exactly
    assert tuning.baseline_trial(study()).number == first.number
    assert len(study().trials) == 3


def test_a_study_without_a_live_baseline_gets_it_queued_again(tmp_path):
    """A study whose baseline failed (or that a worker began, or that predates baselines)."""
    params = parse_params(tiny_params(tmp_path))
    base, space = params.train.models["ff"], params.tune.space["ff"]
    study = tuning.open_study("s", tuning.open_storage(f"journal:{tmp_path}/j.log"), "random",
                              params.tune, seed=1, max_epochs=2)
    study.optimize(lambda t: sum(tuning.suggest(t, space, base).values()) % 1, n_trials=2)
    assert tuning.enqueue_baseline(study, space, base)  # trials, but no baseline among them
    failed = study.ask()
    assert tuning.is_baseline(failed)
    study.tell(failed, state=TrialState.FAIL)
    assert tuning.enqueue_baseline(study, space, base)  # a failed baseline is queued again
    assert not tuning.enqueue_baseline(study, space, base)
    retry = study.ask()
    assert tuning.suggest(retry, space, base) == tuning.baseline_values(space, base)
    study.tell(retry, 0.5)
    assert tuning.baseline_trial(study).number == retry.number


def test_pretrained_vectors_fix_the_embedding_dim_learned_ones_search_it(tmp_path):
    raw = tiny_params(tmp_path)
    raw["train"]["models"]["ff"].update(embedding_file="vectors.txt")
    raw["tune"]["space"]["ff"]["embedding_file"] = {"choices": ["vectors.txt", None]}
    params = parse_params(raw)
    base, space = params.train.models["ff"], params.tune.space["ff"]
    assert "embedding_dim" not in tuning.baseline_values(space, base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        values = tuning.suggest(study.ask(), space, base)
        seen.add(values["embedding_file"])
        # A learned embedding draws its dimension; pretrained vectors keep the base's.
        assert ("embedding_dim" in values) == (values["embedding_file"] is None)
    assert seen == {"vectors.txt", None}
    # Without a learned choice, embedding_dim cannot be searched.
    del raw["tune"]["space"]["ff"]["embedding_file"]
    with pytest.raises(PipelineError, match="tune.space.ff.embedding_dim: train.models.ff uses "
                                            "pretrained vectors"):
        parse_params(raw)


def test_two_studies_of_one_model_draw_their_own_configurations():
    """Sampler seeds come from (tune.seed, study name): a random and a TPE study of one model
    share no startup trial (they used to share every one of them)."""
    space = {"x": {"low": 0.0, "high": 1.0}}

    def draws(name: str, kind: str) -> list[float]:
        study = optuna.create_study(sampler=tuning.make_sampler(
            kind, tuning.study_seed(1234, name), 4))
        study.optimize(lambda t: t.suggest_float("x", **space["x"]), n_trials=4)
        return [t.params["x"] for t in study.trials]

    assert not set(draws("lstm_random", "random")) & set(draws("lstm_tpe", "tpe"))
    assert draws("lstm_tpe", "tpe") == draws("lstm_tpe", "tpe")  # repeatable
    assert tuning.study_seed(1234, "a") != tuning.study_seed(1234, "b")


@pytest.mark.parametrize("edit, message", [
    (lambda t: t["space"]["ff"].update(unitz={"low": 1, "high": 2}),
     "tune.space.ff.unitz: not a parameter of feedforward models (did you mean 'units'?)"),
    (lambda t: t["studies"].update(x={"model": "nope", "sampler": "tpe"}),
     "tune.studies.x.model: 'nope' is not a key of train.models (ff)"),
    (lambda t: t["space"]["ff"].update(dropout={"low": 0.5, "high": 0.1}),
     "tune.space.ff.dropout: high (0.1) is below low (0.5)"),
    (lambda t: t.update(sampler="grid"), "tune.sampler: unknown key"),
    (lambda t: t["studies"]["ff_tpe"].update(sampler="grid"),
     "tune.studies.ff_tpe.sampler: Input should be 'random', 'tpe' or 'gp'"),
    (lambda t: t["space"]["ff"].update(units={"low": 8, "high": 16}),
     "tune.space.ff.units: the baseline's value 4 (train.models.ff.units) is not in the space"),
    (lambda t: t["space"]["ff"].update(maxlen={"low": 5, "high": 45, "step": 20}),
     "tune.space.ff.maxlen: the baseline's value 30 (train.models.ff.maxlen) is not in the space"),
    (lambda t: t["space"]["ff"].update(embedding_dim={"choices": [4, 16]}),
     "tune.space.ff.embedding_dim: the baseline's value 8"),
    # ff learns 8-d embeddings; the tiny project's word vectors (embed.dim) are not 8-d.
    (lambda t: t["space"]["ff"].update(embedding_file={"choices": [None, "v.txt"]}),
     "tune.space.ff.embedding_file: a trial that takes word vectors keeps the baseline's "
     "embedding_dim (8), which must then be the vectors' embed.dim (64)"),
])
def test_bad_search_params_stop_with_one_line_naming_the_key(tmp_path, edit, message):
    params = tiny_params(tmp_path)
    edit(params["tune"])
    with pytest.raises(PipelineError) as error:
        parse_params(params)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_an_unreachable_storage_is_one_line(tmp_path):
    with pytest.raises(PipelineError, match=r"^Optuna storage postgresql://nobody@127\.0\.0\.1:9/x "
                                            r"cannot be opened: ") as error:
        tuning.open_storage("postgresql://nobody@127.0.0.1:9/x")
    # The bare scheme reaches the server through the installed driver (psycopg2).
    assert "OperationalError" in str(error.value) and "refused" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("content", "problem"), [
    (b'{"op_code": 0}\n{broken\n{"op_code": 1}\n', "line 2 is not valid JSON"),
    (b'{"op_code": 0}\n{"op_co', "line 2 is cut short"),
    (b'\xff\xfe\n', "line 1 is not valid JSON"),
])
def test_a_corrupt_journal_is_one_line_and_left_as_it_is(tmp_path, content, problem):
    journal = tmp_path / "optuna.journal"
    journal.write_bytes(content)
    with pytest.raises(PipelineError, match=f"Optuna journal {journal}: {problem}") as error:
        study = tuning.open_storage(f"journal:{journal}")
        optuna.create_study(study_name="s", storage=study)
    assert "\n" not in str(error.value) and len(str(error.value)) <= 200 + 2 * len(str(journal))
    assert journal.read_bytes() == content  # nothing appended


# --- the trial loop ----------------------------------------------------------------------------

def _journal(tmp_path: Path) -> optuna.storages.BaseStorage:
    return tuning.open_storage(f"journal:{tmp_path}/journal.log")


def _journal_study(tmp_path: Path, name: str = "s") -> optuna.Study:
    storage = _journal(tmp_path)
    return optuna.create_study(study_name=name, storage=storage, direction="maximize",
                               load_if_exists=True,
                               sampler=optuna.samplers.RandomSampler(seed=1))


def test_n_trials_counts_finished_trials_over_every_run(tmp_path, capsys):
    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number % 3 == 2:
            raise optuna.TrialPruned()
        return x

    study = _journal_study(tmp_path)
    first = tuning.run_trials(study, objective, n_trials=4, timeout=None)
    assert (first.ran, first.stopped_by) == (4, "n_trials")
    again = tuning.run_trials(_journal_study(tmp_path), objective, n_trials=4, timeout=None)
    assert again.ran == 0  # already done: a rerun adds nothing
    more = tuning.run_trials(_journal_study(tmp_path), objective, n_trials=7, timeout=None)
    assert more.ran == 3
    counts = tuning.counts(_journal_study(tmp_path))
    assert counts["complete"] + counts["pruned"] == 7 and counts["pruned"] == 2
    # One short line per trial: its place among n_trials, what is left, no Optuna INFO lines.
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 7 and all(len(line) <= 120 for line in lines), lines
    assert re.search(r": trial 1 val_accuracy 0\.\d{4} in \d+ s \(2/4 finished, 2 left: about "
                     r"\d+ s at this worker's pace\); x=0\.\d+$", lines[1]), lines[1]
    assert "(7/7 finished);" in lines[-1] and "pruned" in lines[5], lines
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING  # Optuna's INFO: off


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_resumed_runs_and_parallel_workers_never_draw_a_configuration_twice(tmp_path, sampler):
    """Each process seeds its sampler with tune.seed; the draws of trial N come from (seed, N),
    so a resume, a raised n_trials or a second worker go on where the study is."""
    def objective(trial):
        return trial.suggest_float("x", 0, 1) + trial.suggest_int("u", 1, 1000) / 1000

    def study():
        return optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db",
                                   load_if_exists=True, direction="maximize",
                                   sampler=tuning.make_sampler(sampler, 1234, 2))

    tuning.run_trials(study(), objective, n_trials=3, timeout=None)
    tuning.run_trials(study(), objective, n_trials=6, timeout=None)  # n_trials raised
    one, two = study(), study()  # two workers, side by side, asking in turn
    trials = [one.ask(), two.ask(), one.ask(), two.ask()]
    for trial in trials:
        objective(trial)
    draws = [tuple(t.params.values()) for t in study().trials]
    assert len(draws) == 10 and len(set(draws)) == 10
    # The same seed gives the same study again (the draws depend on seed and trial number).
    again = optuna.create_study(direction="maximize", sampler=tuning.make_sampler(sampler, 1234, 2))
    again.optimize(objective, n_trials=3)
    assert [tuple(t.params.values()) for t in again.trials] == draws[:3]


def test_a_failing_objective_marks_the_trial_failed_and_stops(tmp_path):
    def objective(trial):
        raise RuntimeError("out of memory")

    study = _journal_study(tmp_path)
    with pytest.raises(RuntimeError):
        tuning.run_trials(study, objective, n_trials=3, timeout=None)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "RuntimeError: out of memory"


def test_timeout_stops_starting_trials(tmp_path):
    def objective(trial):
        time.sleep(0.3)
        return trial.suggest_float("x", 0, 1)

    result = tuning.run_trials(_journal_study(tmp_path), objective, n_trials=100, timeout=0.5)
    assert result.stopped_by == "timeout" and 1 <= result.ran <= 3


def test_a_dead_workers_trial_is_failed_and_retried_a_live_ones_kept(tmp_path):
    study = _journal_study(tmp_path)
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    # A pid that cannot exist (above pid_max), as a worker killed with SIGKILL leaves it.
    import socket
    dead.set_user_attr("worker", f"{socket.gethostname()}:99999999:1")
    live = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    live.set_user_attr("worker", tuning.worker_id())
    elsewhere = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    elsewhere.set_user_attr("worker", "another-host:1:1")

    assert tuning.recover_dead_trials(study, _journal(tmp_path)) == [dead.number]
    by_number = {t.number: t for t in study.get_trials()}
    assert by_number[dead.number].state == TrialState.FAIL
    assert "died" in by_number[dead.number].user_attrs["fail_reason"]
    assert by_number[live.number].state == TrialState.RUNNING
    assert by_number[elsewhere.number].state == TrialState.RUNNING
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    # queued with the dead trial's values: the next ask() runs exactly those
    assert waiting.system_attrs["fixed_params"] == by_number[dead.number].params
    assert waiting.user_attrs["retry_of"] == dead.number
    assert tuning.recover_dead_trials(study, _journal(tmp_path)) == []  # nothing twice


def test_a_dead_baseline_trial_is_retried_as_the_baseline(tmp_path):
    import socket

    study = _journal_study(tmp_path)
    study.enqueue_trial({"x": 0.25}, user_attrs={tuning.BASELINE_ATTR: True})
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert tuning.is_baseline(dead) and dead.params == {"x": 0.25}
    dead.set_user_attr("worker", f"{socket.gethostname()}:99999999:1")
    assert tuning.recover_dead_trials(study, _journal(tmp_path)) == [dead.number]
    retry = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert tuning.is_baseline(retry) and retry.params == {"x": 0.25}
    study.tell(retry, 0.5)
    assert tuning.baseline_trial(study).number == retry.number


def test_a_studys_parent_run_is_tied_to_its_storage_not_its_name_alone(tmp_path, monkeypatch):
    """Two storages holding a study of one name (a scratch copy's journal, another database)
    get a parent run each in a shared tracking store; a study whose recorded parent id is
    another storage's gets its own, and the other parent is never touched."""
    from imdb_rnn.config.params import MlflowParams
    from imdb_rnn.tracking import runs as tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    experiment = tracking.connect(MlflowParams(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                                               experiment="t"))
    (tmp_path / "project").mkdir()
    (tmp_path / "scratch").mkdir()
    keys = {}
    for place in ("project", "scratch"):  # the same relative journal path, two folders
        monkeypatch.chdir(tmp_path / place)
        keys[place] = tuning.storage_key("journal:studies/optuna.journal", "s-1234")
    assert keys["project"] != keys["scratch"]
    parent, status = tracking.study_parent_run(experiment, "s-1234", keys["project"], "s", {})
    assert status is None
    again, status = tracking.study_parent_run(experiment, "s-1234", keys["project"], "s", {})
    assert (again.id, status) == (parent.id, "RUNNING")
    # The scratch copy's study recorded the project's parent id (a copied journal): refused.
    other, status = tracking.study_parent_run(experiment, "s-1234", keys["scratch"], "s", {},
                                              known=parent.id)
    assert status is None and other.id != parent.id
    found = experiment.runs("tags.optuna_study = 's-1234'")
    assert {r.data.tags["optuna_storage"] for r in found} == set(keys.values())
    # An RDB storage is the same one whatever password reaches it, another with another host.
    rdb = "postgresql+psycopg2://u:{}@{}:5432/optuna"
    assert tuning.storage_key(rdb.format("a", "h1"), "s") == tuning.storage_key(
        rdb.format("b", "h1"), "s") != tuning.storage_key(rdb.format("a", "h2"), "s")
    assert tuning.storage_key(rdb.format("a", "h1"), "s") != tuning.storage_key(
        rdb.format("a", "h1"), "t")


def test_a_dead_trials_run_is_failed_even_if_its_id_never_reached_the_trial(tmp_path,
                                                                           monkeypatch):
    """A worker killed between creating the trial's MLflow run and recording its id."""
    import socket

    from imdb_rnn.config.params import MlflowParams
    from imdb_rnn.pipeline.tune import _close_dead_runs
    from imdb_rnn.tracking import runs as tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = MlflowParams(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="t")
    experiment = tracking.connect(store)
    parent, _ = tracking.study_parent_run(experiment, "s", "storage-key", "s (study)", {})
    study = _journal_study(tmp_path)
    recorded, unrecorded, other = (study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
                                   for _ in range(3))
    runs = {t.number: tracking.start_child_run(experiment, parent, f"trial-{t.number}",
                                               {"optuna_trial": str(t.number)}, {}).id
            for t in (recorded, unrecorded, other)}
    recorded.set_user_attr("mlflow_run_id", runs[recorded.number])
    for t in (recorded, unrecorded):
        t.set_user_attr("worker", f"{socket.gethostname()}:99999999:1")
    other.set_user_attr("worker", tuning.worker_id())

    _close_dead_runs(study, tuning.recover_dead_trials(study, _journal(tmp_path)), experiment, parent)
    client = experiment.client
    status = {n: client.get_run(r).info.status for n, r in runs.items()}
    assert status == {recorded.number: "FAILED", unrecorded.number: "FAILED",
                      other.number: "RUNNING"}
    assert client.get_run(runs[unrecorded.number]).data.tags["trial_state"] == "FAIL"
    assert {client.get_run(r).data.tags["mlflow.parentRunId"] for r in runs.values()} == {
        parent.id}


def test_gp_sampler_without_torch_says_what_to_install():
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(PipelineError, match="needs PyTorch: pip install torch"):
            tuning.make_sampler("gp", 0, 2)
    else:
        assert isinstance(tuning.make_sampler("gp", 0, 2).current, optuna.samplers.GPSampler)


# --- real stage processes on a tiny synthetic project ------------------------------------------

def synthetic_split(n: int, rng: np.random.Generator) -> Sequences:
    """Reviews of token ids 2..49; positive ones carry token 2 ("good") more often than 3."""
    labels = rng.integers(0, 2, n).astype(np.int8)
    rows = []
    for label in labels:
        length = int(rng.integers(5, 40))
        tokens = rng.integers(4, 50, length)
        marks = rng.random(length) < 0.3
        tokens[marks] = np.where(rng.random(marks.sum()) < 0.8, 2 + (1 - label), 2 + label)
        rows.append(tokens.astype(np.int32))
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    reviews = np.array([f"train/x/{i}_1.txt" for i in range(n)])
    return Sequences(np.concatenate(rows), offsets, labels, reviews)


def make_project(tmp_path: Path, **tune: object) -> Path:
    data = tmp_path / "data" / "vectorized"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 600), ("val", 200), ("test", 200)):
        save_sequences(data / f"{split}.npz", synthetic_split(n, rng))
    vocab = [PAD_TOKEN, OOV_TOKEN] + [f"w{i}" for i in range(2, 50)]
    (data / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tmp_path, **tune)))
    return tmp_path


def outputs(study: str) -> list[str]:
    """The tune stage's output flags, as dvc.yaml gives them."""
    return ["--best", f"reports/tune/{study}/best.json",
            "--trials", f"reports/tune/{study}/trials.csv",
            "--model-dir", f"models/tuned_{study}",
            "--history", f"reports/train/tuned_{study}/history.csv",
            "--train-metrics", f"reports/train/tuned_{study}/train.json",
            "--metrics", f"reports/evaluate/tuned_{study}/metrics.json",
            "--roc", f"reports/evaluate/tuned_{study}/roc.csv",
            "--predictions", f"evaluation/tuned_{study}/predictions.csv"]


def test_the_tune_output_flags_here_are_those_of_dvc_yaml():
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["tune"]["do"]["cmd"]
    expected = " ".join(outputs("${key}"))
    assert expected in " ".join(cmd.split())


def stage(project: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", tuning.STORAGE_ENV)}
    return subprocess.Popen([sys.executable, str(ROOT / "stages" / "tune.py"), *args],
                            cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return out


def study_of(project: Path, name: str) -> optuna.Study:
    params = load_params(project / "params.yaml")
    full = tuning.study_name(name, params, project / "data" / "vectorized")
    return optuna.load_study(study_name=full,
                             storage=tuning.open_storage(tuning.storage_url(params.tune)))


def mlflow_runs(project: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("imdb-tuning")
    return client.search_runs([experiment.experiment_id], max_results=1000)


@pytest.mark.slow
def test_the_stage_runs_its_trials_in_parallel_worker_processes(tmp_path):
    project = make_project(tmp_path, n_trials=6)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["compute"] = {"workers": 2, "threads": 1}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    out = finish(stage(project, "--study", "ff_random", *outputs("ff_random")))
    assert "6 trial(s) left, 2 worker processes x 1 thread" in out
    trials = study_of(project, "ff_random").get_trials()
    finished = [t for t in trials if t.state in tuning.FINISHED]
    assert len(finished) == 6 and len({t.user_attrs["worker"] for t in finished}) == 2, out
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 6
    parent = [r for r in mlflow_runs(project) if r.data.tags.get("mlflow.runName") ==
              "ff_random (study)"]
    assert [r.info.status for r in parent] == ["FINISHED"]
    assert not [r for r in mlflow_runs(project) if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_two_workers_share_one_study_without_duplicates_or_losses(tmp_path):
    project = make_project(tmp_path, n_trials=8)
    workers = [stage(project, "--study", "ff_random", "--worker") for _ in range(2)]
    outputs = [finish(w) for w in workers]
    trials = study_of(project, "ff_random").get_trials()
    finished = [t for t in trials if t.state in tuning.FINISHED]
    assert len(finished) == 8
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len({t.user_attrs["worker"] for t in finished}) == 2, outputs  # both did work
    assert len({t.number for t in finished}) == 8
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 8  # no config twice
    children = [r for r in mlflow_runs(project) if r.data.tags.get("run_kind") == "trial"]
    by_trial = {int(r.data.tags["optuna_trial"]): r for r in children}
    assert len(children) == len(by_trial) == 8  # one MLflow run per trial, none twice
    for t in finished:
        assert by_trial[t.number].info.status == {"COMPLETE": "FINISHED",
                                                  "PRUNED": "KILLED"}[t.state.name]


@pytest.mark.slow
def test_sigkill_mid_study_then_rerun_resumes_and_finishes(tmp_path):
    project = make_project(tmp_path, n_trials=5)
    first = stage(project, "--study", "ff_tpe", *outputs("ff_tpe"))
    deadline = time.monotonic() + 300
    killed_trial = None
    while time.monotonic() < deadline and first.poll() is None:
        try:
            trials = study_of(project, "ff_tpe").get_trials(deepcopy=False)
        except (KeyError, PipelineError):  # study not created yet
            trials = []
        done = [t for t in trials if t.state in tuning.FINISHED]
        # A trial killed before its first suggestion has no params to retry: wait for them.
        running = [t for t in trials if t.state == TrialState.RUNNING and t.params]
        if len(done) >= 2 and running:
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_trial = running[0].number
            break
        time.sleep(0.05)
    assert killed_trial is not None, "the study finished before it could be killed"
    first.stdout.close()

    out = finish(stage(project, "--study", "ff_tpe", *outputs("ff_tpe")))
    trials = {t.number: t for t in study_of(project, "ff_tpe").get_trials()}
    assert trials[killed_trial].state == TrialState.FAIL
    assert "died" in trials[killed_trial].user_attrs["fail_reason"]
    retries = [t for t in trials.values() if t.user_attrs.get("retry_of") == killed_trial]
    # The retry reuses every value the killed trial had drawn (it may have died between two
    # suggestions: the sampler draws the rest).
    assert len(retries) == 1 and trials[killed_trial].params.items() <= retries[0].params.items()
    assert retries[0].state in tuning.FINISHED
    assert sum(t.state in tuning.FINISHED for t in trials.values()) == 5
    assert not [t for t in trials.values() if t.state == TrialState.RUNNING]

    best = json.loads((project / "reports/tune/ff_tpe/best.json").read_text())
    assert best["trials_complete"] + best["trials_pruned"] == 5 and best["trials_failed"] == 1
    assert 0.0 <= best["test_accuracy"] <= 1.0, out
    assert (project / "models/tuned_ff_tpe/model.keras").is_file()
    assert (project / "evaluation/tuned_ff_tpe/predictions.csv").is_file()

    runs = mlflow_runs(project)
    (parent,) = [r for r in runs if r.data.tags.get("run_kind") == "study"]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_accuracy"] == best["best_val_accuracy"]
    children = {int(r.data.tags["optuna_trial"]): r for r in runs
                if r.data.tags.get("run_kind") == "trial"}
    # No run is left RUNNING: the killed trial's run, if the kill came after it was created
    # (even before its id reached the trial), is FAILED.
    assert all(r.info.status != "RUNNING" for r in runs)
    if "mlflow_run_id" in trials[killed_trial].user_attrs:
        assert children[killed_trial].info.status == "FAILED"
    if killed_trial in children:
        assert children[killed_trial].info.status == "FAILED"
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children.values())
    assert parent.data.tags["best_run_id"] == children[best["best_trial"]].info.run_id
    (tuned,) = [r for r in runs if r.data.tags.get("run_kind") in ("best_trial", "retrained_best")]
    assert tuned.data.metrics["test_accuracy"] == best["test_accuracy"]


@pytest.mark.slow
def test_at_full_fidelity_the_best_trials_weights_are_the_tuned_model(tmp_path):
    """Trials on the whole split for the section's epochs train exactly what a retrain would:
    the best one's kept weights become tuned_STUDY (its validation accuracy is the trial's
    value to the last digit), and only its folder is left; at a lower fidelity the best
    configuration is retrained."""
    project = make_project(tmp_path, n_trials=3)
    out = finish(stage(project, "--study", "ff_random", *outputs("ff_random")))
    best = json.loads((project / "reports/tune/ff_random/best.json").read_text())
    trained = json.loads((project / "reports/train/tuned_ff_random/train.json").read_text())
    assert best["tuned_model"] == f"trial {best['best_trial']}'s weights", out
    assert trained["best_val_accuracy"] == best["best_val_accuracy"] == best["tuned_val_accuracy"]
    kept = project / "studies" / "checkpoints" / best["study"]
    assert [p.name for p in kept.iterdir()] == [f"trial_{best['best_trial']:04d}"]
    (run,) = [r for r in mlflow_runs(project) if r.data.tags.get("run_kind") == "best_trial"]
    assert run.data.tags["source_trial"] == str(best["best_trial"])

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tune"]["epochs"] = 1  # below the section's 2 epochs: trials are not the model
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    finish(stage(project, "--study", "ff_tpe", *outputs("ff_tpe")))
    best = json.loads((project / "reports/tune/ff_tpe/best.json").read_text())
    assert best["tuned_model"] == "retrained on the whole training split"
    assert not (project / "studies" / "checkpoints" / best["study"]).exists()
    trained = json.loads((project / "reports/train/tuned_ff_tpe/train.json").read_text())
    assert trained["epochs"] >= 1 and [r for r in mlflow_runs(project)
                                       if r.data.tags.get("run_kind") == "retrained_best"]


def baseline_flags(model: str) -> list[str]:
    return ["--baseline-model", f"models/{model}",
            "--baseline-history", f"reports/train/{model}/history.csv",
            "--baseline-metrics", f"reports/train/{model}/train.json"]


def train_baseline(project: Path, model: str = "ff") -> dict:
    subprocess.run([sys.executable, str(ROOT / "stages" / "train.py"), "--name", model,
                    "--data", "data/vectorized", "--model-dir", f"models/{model}",
                    "--history", f"reports/train/{model}/history.csv",
                    "--metrics", f"reports/train/{model}/train.json"],
                   cwd=project, check=True, capture_output=True, text=True,
                   env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    return json.loads((project / f"reports/train/{model}/train.json").read_text())


def test_the_tune_baseline_flags_here_are_those_of_dvc_yaml():
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["tune"]["do"]["cmd"]
    assert " ".join(baseline_flags("${item.model}")) in " ".join(cmd.split())


@pytest.mark.slow
def test_trial_0_replays_the_train_stages_baseline_instead_of_training_it_again(tmp_path):
    """At full fidelity trial 0 is the train stage's own training of the base section: its
    epochs are reported from the history, its value is train.json's, and with no better trial
    the tuned model is the baseline's weights. A baseline folder trained with other params is
    not replayed: trial 0 then trains."""
    project = make_project(tmp_path, n_trials=1)
    trained = train_baseline(project)
    out = finish(stage(project, "--study", "ff_random", *outputs("ff_random"),
                       *baseline_flags("ff")))
    (trial,) = study_of(project, "ff_random").get_trials()
    assert tuning.is_baseline(trial) and trial.user_attrs["replayed_from"] == "train@ff", out
    assert trial.value == trained["best_val_accuracy"]
    assert trial.user_attrs["seconds"] == trained["train_seconds"]
    history = [row["val_accuracy"] for row in csv_rows(project / "reports/train/ff/history.csv")]
    assert [trial.intermediate_values[e + 1] for e in range(len(history))] == pytest.approx(
        history, abs=1e-5)
    best = json.loads((project / "reports/tune/ff_random/best.json").read_text())
    assert best["baseline_replayed"] and best["tuned_model"] == "the baseline's weights (train@ff)"
    tuned = json.loads((project / "reports/train/tuned_ff_random/train.json").read_text())
    assert tuned["best_val_accuracy"] == trained["best_val_accuracy"]
    assert tuned["params_count"] == trained["params_count"]

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["models"]["ff"]["dropout"] = 0.2  # the folder no longer matches the section
    params["tune"]["space"]["ff"]["dropout"] = {"low": 0.0, "high": 0.5}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    finish(stage(project, "--study", "ff_random", *outputs("ff_random"), *baseline_flags("ff")))
    (trial,) = study_of(project, "ff_random").get_trials()
    assert tuning.is_baseline(trial) and "replayed_from" not in trial.user_attrs
    assert trial.state == TrialState.COMPLETE


def csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_raising_n_trials_continues_the_study_and_its_parent_run(tmp_path):
    """The rerun after n_trials is raised runs only the new trials, on the same study and
    parent run, whose best params may change (they are tags: MLflow refuses to change a
    logged param), and never repeats a configuration."""
    project = make_project(tmp_path, n_trials=2)
    finish(stage(project, "--study", "ff_random", *outputs("ff_random")))
    first = json.loads((project / "reports/tune/ff_random/best.json").read_text())
    # A trial better than any so far (as another worker might have finished), so that the
    # rerun's best params differ from those the first run logged.
    study = study_of(project, "ff_random")
    template = study.trials[-1]
    better = dict(template.params, dropout=0.4321)
    study.add_trial(optuna.trial.create_trial(params=better, distributions=template.distributions,
                                              value=1.0))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tune"]["n_trials"] = 5
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    finish(stage(project, "--study", "ff_random", *outputs("ff_random")))
    best = json.loads((project / "reports/tune/ff_random/best.json").read_text())
    assert best["study"] == first["study"] and best["best_params"] == better
    assert first["best_params"] != better
    trials = [t for t in study_of(project, "ff_random").get_trials()
              if t.state in tuning.FINISHED]
    assert len(trials) == 5 and len({tuple(sorted(t.params.items())) for t in trials}) == 5
    assert sum(tuning.is_baseline(t) for t in trials) == 1 and tuning.is_baseline(trials[0])
    assert best["baseline_trial"] == 0 and best["best_val_accuracy"] >= best[
        "baseline_val_accuracy"]
    runs = mlflow_runs(project)
    (parent,) = [r for r in runs if r.data.tags.get("run_kind") == "study"]
    assert parent.info.status == "FINISHED"
    assert {k: parent.data.tags[f"best_{k}"] for k in best["best_params"]} == {
        k: str(v) for k, v in best["best_params"].items()}
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_the_parent_run_says_resumed_only_after_an_earlier_stage_run_ended(tmp_path,
                                                                          monkeypatch):
    from imdb_rnn.pipeline.tune import work

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tuning.STORAGE_ENV, raising=False)
    project = make_project(tmp_path, n_trials=1)
    params = load_params(project / "params.yaml")
    data = project / "data" / "vectorized"
    _, experiment, created, _ = work(params, "ff_random", data, worker=True)
    client = experiment.client
    assert "owner.pid" not in client.get_run(created.id).data.tags  # a worker owns no parent
    # The stage starts a moment after the worker created the parent: not a resume.
    _, _, parent, _ = work(params, "ff_random", data)
    tags = client.get_run(parent.id).data.tags
    assert parent.id == created.id and "status_note" not in tags
    assert tags["owner.pid"] == str(os.getpid())
    parent.end("FAILED")  # the stage failed; its next run resumes the study
    work(params, "ff_random", data)
    assert client.get_run(parent.id).data.tags["status_note"] == "resumed after FAILED"
    assert client.get_run(parent.id).info.status == "RUNNING"


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(143)])
def test_a_stopped_trial_is_failed_without_a_line_of_its_own(tmp_path, capsys, stop):
    """Ctrl-C or SIGTERM in a trial: the trial ends FAIL, and the stage's one `error:` line is
    all that is said (no "trial 0 failed: " with nothing after it)."""
    def objective(trial):
        raise stop

    study = _journal_study(tmp_path)
    with pytest.raises(type(stop)):
        tuning.run_trials(study, objective, n_trials=3, timeout=None)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert "failed" not in capsys.readouterr().out


def test_optuna_is_used_through_its_public_api_only():
    """No import of a private Optuna module and no private attribute of a study, trial or
    storage: an Optuna release may change those without notice."""
    import re

    private = re.compile(r"optuna(\.\w+)*\._\w|\._storage\b|\._trial_id\b|\._study_id\b")
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if private.search(line)]
    assert not found, found


def test_a_studys_objective_is_named(tmp_path):
    params = load_params(ROOT / "params.yaml")
    study = tuning.open_study("s", _journal(tmp_path), "tpe", params.tune, seed=1, max_epochs=2)
    assert study.metric_names == ["val_accuracy"]
    again = tuning.open_study("s", _journal(tmp_path), "tpe", params.tune, seed=1, max_epochs=2)
    assert again.metric_names == ["val_accuracy"]


def test_stale_studies_of_a_stage_are_marked_superseded_by_the_current_one(tmp_path):
    storage = _journal(tmp_path)
    for name in ("cnn-aaaa1111", "cnn-bbbb2222", "cnn_tpe-cccc3333", "cnn-dddd4444"):
        optuna.create_study(study_name=name, storage=storage)
    assert sorted(tuning.mark_superseded(storage, "cnn", "cnn-dddd4444")) == [
        "cnn-aaaa1111", "cnn-bbbb2222"]
    attrs = {s.study_name: s.user_attrs for s in optuna.get_all_study_summaries(storage)}
    assert attrs["cnn-aaaa1111"]["superseded_by"] == "cnn-dddd4444"
    assert "superseded_by" not in attrs["cnn-dddd4444"] and "superseded_by" not in attrs[
        "cnn_tpe-cccc3333"]  # another stage's study
    assert tuning.mark_superseded(storage, "cnn", "cnn-dddd4444") == []  # once
