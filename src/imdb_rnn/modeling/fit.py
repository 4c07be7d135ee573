"""The one training path: build from the registry, compile, fit; every training goes through it.

Baselines, seed replicates, search trials and their retrain, both sides of the benchmark and the
classic reproduction presets all call :func:`fit` with a :class:`Recipe`, so a speed-up or a fix
made here reaches all of them. A recipe says what to build (registry family and architecture
keywords), how to feed it (:class:`~imdb_rnn.modeling.inputs.InputShape` and ``feed``) and how to
compile it. Two feeds:

- ``bucketed`` (the pipeline's): a ``tf.data`` pipeline of length-bucketed batches padded only to
  their longest review, reshuffled every epoch from the training seed;
- ``classic`` (the textbook recipe): every review cut and padded as one NumPy array, then
  ``model.fit`` with its defaults (its own shuffling).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import keras
import numpy as np

from imdb_rnn.config import ModelSection
from imdb_rnn.config.params import TrainParams
from imdb_rnn.data.vectorize import Sequences
from imdb_rnn.modeling.inputs import InputShape, input_shape_for, make_dataset
from imdb_rnn.modeling.registry import adapt, build_model


# The smallest batch the bucketed feed predicts the validation split with.
VALIDATION_BATCH = 256


@dataclass(frozen=True)
class Recipe:
    """Everything :func:`fit` needs besides the data and the seed."""

    family: str  # a key of the model registry
    architecture: Mapping[str, Any]  # the builder's keyword arguments
    shape: InputShape
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs: int
    clipnorm: float | None = None
    # The learning rate over training: constant, or cosine (decays from learning_rate to 0 over
    # the whole budget of `epochs`, step by step: the last epochs fine-tune at a small rate).
    schedule: Literal["constant", "cosine"] = "constant"
    loss: str = "binary_crossentropy"
    feed: Literal["bucketed", "classic"] = "bucketed"

    def with_(self, **changes: Any) -> Recipe:
        return replace(self, **changes)


def recipe_for(section: ModelSection, train: TrainParams | None = None, **changes: Any
               ) -> Recipe:
    """The recipe of a ``train.models`` section: each key goes where its role says; with
    ``train`` (the params' ``train`` section), the training recipe every family shares
    (``train.schedule``)."""
    recipe = Recipe(family=section.family, architecture=section.architecture(),
                    shape=input_shape_for(section), optimizer=section.optimizer,
                    learning_rate=section.learning_rate, clipnorm=section.clipnorm,
                    batch_size=section.batch_size, epochs=section.epochs,
                    **({} if train is None else {"schedule": train.schedule}))
    return recipe.with_(**changes)


@dataclass(frozen=True)
class Arrays:
    """Model input that is not token sequences (Elman's XOR): inputs and targets as arrays."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Stopping:
    """Keep the weights of the best epoch by ``monitor``; stop after ``patience`` epochs without
    improvement of it (``None``: never stop early, train every epoch of the budget)."""

    monitor: str
    patience: int | None


@dataclass
class TrainResult:
    """A trained model with its per-epoch history and timing."""

    model: keras.Model
    history: list[dict[str, float]]  # one dict per epoch: epoch, loss, accuracy, val_*, seconds
    best_epoch: int  # 1-based epoch whose weights the model holds
    seconds: float
    train_samples: int
    extra: dict = field(default_factory=dict)

    @property
    def best(self) -> dict[str, float]:
        return self.history[self.best_epoch - 1]

    @property
    def samples_per_second(self) -> float:
        return self.train_samples * len(self.history) / self.seconds


def build(recipe: Recipe, vocab_size: int) -> keras.Model:
    """The recipe's uncompiled model; its input length is fixed only when the shape says so."""
    return build_model(recipe.family, vocab_size=vocab_size, sequence_length=recipe.shape.length,
                       **recipe.architecture)


def learning_rate(recipe: Recipe, steps_per_epoch: int | None
                  ) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The recipe's learning rate: a number, or a schedule over its ``epochs`` of
    ``steps_per_epoch`` optimizer steps each (required for a schedule)."""
    if recipe.schedule == "constant":
        return recipe.learning_rate
    if steps_per_epoch is None:
        raise ValueError(f"the {recipe.schedule} schedule needs the steps per epoch")
    return keras.optimizers.schedules.CosineDecay(
        recipe.learning_rate, decay_steps=max(1, recipe.epochs * steps_per_epoch))


def compile_model(model: keras.Model, recipe: Recipe, steps_per_epoch: int | None = None
                  ) -> None:
    """The recipe's optimizer (its learning rate scheduled over ``steps_per_epoch`` steps an
    epoch) and loss, with accuracy.

    No XLA for bucketed batches, which would recompile for every batch length; the classic
    fixed-shape input keeps Keras' default ("auto": XLA where a GPU is, none on a CPU).
    """
    rate = learning_rate(recipe, steps_per_epoch)
    config: dict[str, Any] = {
        "learning_rate": rate if isinstance(rate, float) else
        keras.optimizers.schedules.serialize(rate)}
    if recipe.clipnorm is not None:
        config["clipnorm"] = recipe.clipnorm
    optimizer = keras.optimizers.get({"class_name": recipe.optimizer, "config": config})
    model.compile(optimizer=optimizer, loss=recipe.loss, metrics=["accuracy"],
                  jit_compile=False if recipe.feed == "bucketed" else "auto")


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _as_arrays(data: Sequences | Arrays, shape: InputShape) -> Arrays:
    if isinstance(data, Arrays):
        return data
    return Arrays(shape.array(data), data.labels.astype(np.float32))


def _labelled_batches(data: Sequences | Arrays, shape: InputShape) -> Iterator:
    """The training split once, unshuffled, as (input, labels) batches."""
    if isinstance(data, Sequences):
        yield from make_dataset(data, shape, VALIDATION_BATCH)[0].as_numpy_iterator()
        return
    arrays = _as_arrays(data, shape)
    for start in range(0, len(arrays), VALIDATION_BATCH):
        yield arrays.x[start:start + VALIDATION_BATCH], arrays.y[start:start + VALIDATION_BATCH]


def fit(recipe: Recipe, train: Sequences | Arrays, val: Sequences | Arrays | None, *,
        vocab_size: int, seed: int, stopping: Stopping | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int | None = None,
        embedding: np.ndarray | None = None) -> TrainResult:
    """Build, compile and fit ``recipe`` with training seed ``seed``.

    ``embedding`` (vocab_size, embedding_dim) initialises the layer named ``embedding``
    (pretrained vectors); the architecture's ``embedding_trainable`` says whether training may
    change it. Layers that learn from the training split (naive-Bayes ratios) learn from
    ``train`` only, before the first epoch (inside the training's seconds). With ``stopping``
    the weights of the best epoch are kept, else those of the last.
    """
    keras.utils.set_random_seed(seed)
    keras.backend.clear_session()
    model = build(recipe, vocab_size)
    if embedding is not None:
        model.get_layer("embedding").set_weights([embedding])
    if verbose is None:  # a progress bar in a terminal, one line per epoch in logs
        verbose = 1 if sys.stdout.isatty() else 2
    timer = _EpochTimer()
    stopper = (None if stopping is None else keras.callbacks.EarlyStopping(
        monitor=stopping.monitor, restore_best_weights=True, verbose=int(verbose > 0),
        patience=recipe.epochs if stopping.patience is None else stopping.patience))
    every = [timer, *([stopper] if stopper else []), *callbacks]
    start = time.perf_counter()
    adapt(model, lambda: _labelled_batches(train, recipe.shape))  # e.g. naive-Bayes ratios
    if recipe.feed == "classic":
        x = _as_arrays(train, recipe.shape)
        v = None if val is None else _as_arrays(val, recipe.shape)
        compile_model(model, recipe, steps_per_epoch=-(-len(x) // recipe.batch_size))
        history = model.fit(x.x, x.y, batch_size=recipe.batch_size, epochs=recipe.epochs,
                            validation_data=None if v is None else (v.x, v.y),
                            verbose=verbose, callbacks=every)
    else:
        if not isinstance(train, Sequences):
            raise TypeError("the bucketed feed takes token sequences")
        train_ds, _ = make_dataset(train, recipe.shape, recipe.batch_size, seed=seed)
        compile_model(model, recipe, steps_per_epoch=int(train_ds.cardinality()))
        # Validation only predicts: batches of at least VALIDATION_BATCH (same accuracy, since
        # padding is masked; fewer, larger steps).
        val_ds = None if val is None else make_dataset(
            val, recipe.shape, max(recipe.batch_size, VALIDATION_BATCH))[0]
        # shuffle=False: the dataset reshuffles itself every epoch from the training seed.
        history = model.fit(train_ds, validation_data=val_ds, epochs=recipe.epochs,
                            verbose=verbose, shuffle=False, callbacks=every)
    seconds = time.perf_counter() - start
    rows = [{"epoch": i + 1, **{k: float(v[i]) for k, v in history.history.items()},
             "seconds": timer.seconds[i]} for i in range(len(timer.seconds))]
    best_epoch = stopper.best_epoch + 1 if stopper is not None else len(rows)
    return TrainResult(model, rows, best_epoch=best_epoch, seconds=seconds,
                       train_samples=len(train))
