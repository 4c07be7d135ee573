"""The training path: length-bucketed batches through tf.data, compile, fit with early stopping.

Reviews are cut to ``maxlen`` once, then grouped into batches of similar length and padded only
to the longest review of each batch (``fixed_length`` models such as Embedding-Flatten get
``maxlen`` always). Recurrent layers therefore stop spending most of their steps on padding.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.params import TRAINING_ONLY_FIELDS, ModelSection
from imdb_rnn.vectorize import PAD_ID, Sequences

# Batches are drawn from pools of this many batches sorted by length: big enough that batches
# are nearly uniform in length, small enough that the order stays random.
POOL_BATCHES = 50


def truncate(sequences: Sequences, maxlen: int, truncating: str) -> Sequences:
    """Cut every review to at most ``maxlen`` tokens, keeping the end ('pre') or start ('post')."""
    lengths = sequences.lengths
    kept = np.minimum(lengths, maxlen)
    starts = sequences.offsets[1:] - kept if truncating == "pre" else sequences.offsets[:-1]
    offsets = np.concatenate([[0], np.cumsum(kept)])
    # Position of every kept token in the old flat array: its row's start plus its rank in row.
    gather = np.repeat(starts - offsets[:-1], kept) + np.arange(offsets[-1])
    return Sequences(sequences.ids[gather], offsets, sequences.labels, sequences.reviews)


def pad_batch(sequences: Sequences, rows: np.ndarray, *, padding: str,
              length: int | None = None) -> np.ndarray:
    """Pad the reviews ``rows`` to ``length`` (default: the longest of them) with PAD_ID."""
    lengths = sequences.lengths[rows]
    width = int(length if length is not None else max(int(lengths.max()), 1))
    out = np.full((len(rows), width), PAD_ID, dtype=np.int32)  # (batch, time)
    for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
        if padding == "post":
            out[i, :n] = sequences.row(row)
        elif n:
            out[i, width - n:] = sequences.row(row)
    return out


def plan_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None
                 ) -> list[np.ndarray]:
    """Split review indices into batches of similar length.

    With ``rng``: shuffle, sort within pools of ``POOL_BATCHES`` batches, shuffle batch order
    (training). Without: one global sort by length, no randomness (prediction).
    """
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass(frozen=True)
class InputShape:
    """How reviews become model input: cut to maxlen, padded per batch or to maxlen."""

    maxlen: int
    padding: str = "post"
    truncating: str = "pre"
    fixed_length: bool = False

    def prepare(self, sequences: Sequences) -> Sequences:
        return truncate(sequences, self.maxlen, self.truncating)

    def batch(self, sequences: Sequences, rows: np.ndarray) -> np.ndarray:
        return pad_batch(sequences, rows, padding=self.padding,
                         length=self.maxlen if self.fixed_length else None)


def make_dataset(sequences: Sequences, shape: InputShape, batch_size: int, *,
                 seed: int | None = None, with_labels: bool = True
                 ) -> tuple[tf.data.Dataset, np.ndarray]:
    """A tf.data pipeline of padded batches and the review order it yields.

    With ``seed`` the batches are reshuffled every epoch (a fresh pass of the generator) from one
    seeded generator, so the sequence of epochs is reproducible. The returned order is that of
    an unshuffled pass (``seed`` None): ``predictions[i]`` belongs to review ``order[i]``.
    """
    prepared = shape.prepare(sequences)
    lengths = prepared.lengths
    rng = np.random.default_rng(seed) if seed is not None else None
    fixed_plan = plan_batches(lengths, batch_size, None)
    n_batches = len(fixed_plan)
    labels = prepared.labels.astype(np.float32)

    def generate() -> Iterator:
        plan = plan_batches(lengths, batch_size, rng) if rng is not None else fixed_plan
        for rows in plan:
            x = shape.batch(prepared, rows)
            yield (x, labels[rows]) if with_labels else x

    x_spec = tf.TensorSpec((None, shape.maxlen if shape.fixed_length else None), tf.int32)
    signature = (x_spec, tf.TensorSpec((None,), tf.float32)) if with_labels else x_spec
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    order = np.concatenate(fixed_plan) if fixed_plan else np.zeros(0, np.int64)
    return dataset.prefetch(tf.data.AUTOTUNE), order


def input_shape_for(params: ModelSection) -> InputShape:
    """The input shaping a model section asks for."""
    fixed = getattr(params, "pooling", None) == "flatten"
    return InputShape(params.maxlen, params.padding, params.truncating, fixed_length=fixed)


def builder_kwargs(params: ModelSection) -> dict:
    """The keys of a model section that go to its builder (everything but training-only keys)."""
    return {k: v for k, v in params.model_dump().items() if k not in TRAINING_ONLY_FIELDS}


def compile_model(model: keras.Model, *, optimizer: str, learning_rate: float) -> None:
    """Binary cross-entropy with accuracy; no XLA, which would recompile for every batch length."""
    opt = keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
    model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"],
                  jit_compile=False)


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


@dataclass
class TrainResult:
    """A trained model with its per-epoch history and timing."""

    model: keras.Model
    history: list[dict[str, float]]  # one dict per epoch: epoch, loss, accuracy, val_*, seconds
    best_epoch: int  # 1-based epoch whose weights the model holds
    seconds: float
    train_samples: int


def train_model(params: ModelSection, train: Sequences, val: Sequences, *, vocab_size: int,
                seed: int, monitor: str, patience: int,
                callbacks: Sequence[keras.callbacks.Callback] = (),
                verbose: int | None = None,
                embedding_matrix: np.ndarray | None = None) -> TrainResult:
    """Build, compile and fit one model section; the weights of the best epoch are kept.

    ``embedding_matrix`` (vocab_size, embedding_dim) initialises the embedding (pretrained
    vectors); the section's ``embedding_trainable`` says whether training may change it.
    """
    from imdb_rnn.models import build_model

    keras.utils.set_random_seed(seed)
    keras.backend.clear_session()
    model = build_model(params.family, vocab_size=vocab_size, **builder_kwargs(params))
    if embedding_matrix is not None:
        model.get_layer("embedding").set_weights([embedding_matrix])
    compile_model(model, optimizer=params.optimizer, learning_rate=params.learning_rate)
    shape = input_shape_for(params)
    train_ds, _ = make_dataset(train, shape, params.batch_size, seed=seed)
    val_ds, _ = make_dataset(val, shape, params.batch_size)
    timer = _EpochTimer()
    if verbose is None:  # a progress bar in a terminal, one line per epoch in logs
        verbose = 1 if sys.stdout.isatty() else 2
    stopper = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                            restore_best_weights=True, verbose=int(verbose > 0))
    start = time.perf_counter()
    # shuffle=False: the dataset reshuffles itself every epoch from the training seed.
    fit = model.fit(train_ds, validation_data=val_ds, epochs=params.epochs, verbose=verbose,
                    shuffle=False,
                    callbacks=[timer, stopper, *callbacks])
    seconds = time.perf_counter() - start
    history = [{"epoch": i + 1, **{k: float(v[i]) for k, v in fit.history.items()},
                "seconds": timer.seconds[i]} for i in range(len(timer.seconds))]
    return TrainResult(model, history, best_epoch=stopper.best_epoch + 1, seconds=seconds,
                       train_samples=len(train))


def predict_probabilities(model: keras.Model, sequences: Sequences, shape: InputShape,
                          batch_size: int) -> np.ndarray:
    """Positive-class probability for every review, in the order of ``sequences``."""
    dataset, order = make_dataset(sequences, shape, batch_size, with_labels=False)
    out = np.empty(len(sequences), dtype=np.float32)
    if len(sequences):
        out[order] = model.predict(dataset, verbose=0).reshape(-1)
    return out
