"""How reviews become model input: cut to ``maxlen``, then batches padded per batch or to maxlen.

Reviews are cut once, then grouped into batches of similar length and padded only to the
longest review of each batch (``fixed_length`` models such as Embedding-Flatten get ``maxlen``
always), so recurrent layers stop spending most of their steps on padding. The classic recipe's
input, one (reviews, maxlen) array, is :meth:`InputShape.array` of the same shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from imdb_rnn.config import ModelSection
from imdb_rnn.data.vectorize import OOV_ID, PAD_ID, Sequences

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
    """How reviews become model input: cut to maxlen, padded per batch or to maxlen.

    ``num_words`` (classic recipes) maps every id from it upwards to the out-of-vocabulary id,
    as Keras' ``imdb.load_data(num_words=...)`` does.
    """

    maxlen: int
    padding: str = "post"
    truncating: str = "pre"
    fixed_length: bool = False
    num_words: int | None = None

    @property
    def length(self) -> int | None:
        """The model's input length: ``maxlen`` when fixed, else None (any length)."""
        return self.maxlen if self.fixed_length else None

    def prepare(self, sequences: Sequences) -> Sequences:
        cut = truncate(sequences, self.maxlen, self.truncating)
        if self.num_words is not None:
            cut = Sequences(np.where(cut.ids >= self.num_words, OOV_ID, cut.ids).astype(cut.ids.dtype),
                            cut.offsets, cut.labels, cut.reviews)
        return cut

    def batch(self, sequences: Sequences, rows: np.ndarray) -> np.ndarray:
        return pad_batch(sequences, rows, padding=self.padding, length=self.length)

    def array(self, sequences: Sequences) -> np.ndarray:
        """Every review as one (reviews, maxlen) array, as ``pad_sequences`` makes it."""
        prepared = self.prepare(sequences)
        return pad_batch(prepared, np.arange(len(prepared)), padding=self.padding,
                         length=self.maxlen)

    def to_json(self) -> dict:
        return {"maxlen": self.maxlen, "padding": self.padding, "truncating": self.truncating,
                "fixed_length": self.fixed_length, "num_words": self.num_words}

    @classmethod
    def from_json(cls, data: dict) -> InputShape:
        return cls(data["maxlen"], data["padding"], data["truncating"], data["fixed_length"],
                   data.get("num_words"))


def input_shape_for(section: ModelSection) -> InputShape:
    """The input shaping a model section asks for (its ``INPUT_KEYS`` and ``fixed_length``)."""
    return InputShape(section.maxlen, section.padding, section.truncating,
                      fixed_length=section.fixed_length)


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

    x_spec = tf.TensorSpec((None, shape.length), tf.int32)
    signature = (x_spec, tf.TensorSpec((None,), tf.float32)) if with_labels else x_spec
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    order = np.concatenate(fixed_plan) if fixed_plan else np.zeros(0, np.int64)
    return dataset.prefetch(tf.data.AUTOTUNE), order
