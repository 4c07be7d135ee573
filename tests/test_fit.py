"""The training path: truncation, length-bucketed batches, order bookkeeping, seeded fits."""

from __future__ import annotations

import numpy as np
import pytest

from imdb_rnn.config.params import RecurrentParams
from imdb_rnn.modeling.fit import (InputShape, make_dataset, pad_batch, plan_batches,
                               predict_probabilities, train_model, truncate)
from imdb_rnn.data.vectorize import Sequences


def seqs(rows: list[list[int]], labels: list[int] | None = None) -> Sequences:
    lengths = [len(r) for r in rows]
    return Sequences(np.array([t for r in rows for t in r], np.int32),
                     np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                     np.array(labels or [0] * len(rows), np.int8),
                     np.array([f"r{i}" for i in range(len(rows))]))


@pytest.mark.parametrize(("truncating", "expected"), [("pre", [[3, 4, 5], [7], []]),
                                                      ("post", [[1, 2, 3], [7], []])])
def test_truncate(truncating, expected):
    cut = truncate(seqs([[1, 2, 3, 4, 5], [7], []]), 3, truncating)
    assert [cut.row(i).tolist() for i in range(3)] == expected


def test_pad_batch_to_longest_or_fixed():
    s = seqs([[1, 2, 3], [4]])
    assert pad_batch(s, np.array([0, 1]), padding="post").tolist() == [[1, 2, 3], [4, 0, 0]]
    assert pad_batch(s, np.array([1]), padding="pre", length=3).tolist() == [[0, 0, 4]]


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_fixed_length_batches_match_keras_pad_sequences(padding, truncating):
    from keras.utils import pad_sequences

    rows = [[5, 6, 7, 8, 9], [3], [4, 4, 4]]
    shape = InputShape(maxlen=3, padding=padding, truncating=truncating, fixed_length=True)
    batch = shape.batch(shape.prepare(seqs(rows)), np.arange(3))
    expected = pad_sequences(rows, maxlen=3, padding=padding, truncating=truncating, value=0)
    np.testing.assert_array_equal(batch, expected)


def test_plan_batches_covers_every_review_once():
    lengths = np.random.default_rng(0).integers(1, 500, size=1000)
    for rng in (None, np.random.default_rng(1)):
        batches = plan_batches(lengths, 32, rng)
        assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
        assert all(len(b) <= 32 for b in batches)


def test_bucketing_reduces_padding():
    lengths = np.random.default_rng(0).integers(1, 500, size=3200)
    batches = plan_batches(lengths, 32, np.random.default_rng(0))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.2 * lengths.sum()  # a random batching pads to about 1.9x


def test_plan_is_seeded():
    lengths = np.arange(500)
    a = plan_batches(lengths, 16, np.random.default_rng(3))
    b = plan_batches(lengths, 16, np.random.default_rng(3))
    c = plan_batches(lengths, 16, np.random.default_rng(4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_dataset_order_maps_batches_back_to_reviews():
    rows = [[i + 2] * (i % 7 + 1) for i in range(40)]
    s = seqs(rows)
    dataset, order = make_dataset(s, InputShape(maxlen=5), 8, with_labels=False)
    first_tokens = np.concatenate([batch[:, 0] for batch in dataset.as_numpy_iterator()])
    assert first_tokens.tolist() == [rows[i][0] for i in order]


def _toy_data(n: int, seed: int) -> Sequences:
    """Token 2 means positive, 3 negative, among noise tokens 4-9."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n).tolist()
    rows = [rng.integers(4, 10, size=rng.integers(3, 12)).tolist() + [2 if y else 3]
            for y in labels]
    return seqs(rows, labels)


def _lstm(**overrides) -> RecurrentParams:
    base = dict(family="lstm", maxlen=12, padding="post", truncating="pre", batch_size=16,
                optimizer="adam", learning_rate=0.02, epochs=3, embedding_dim=4, dropout=0.0,
                units=4, num_layers=1, recurrent_dropout=0.0, pooling="last",
                embedding_file=None, embedding_trainable=True)
    return RecurrentParams(**{**base, **overrides})


def test_train_model_learns_a_toy_task_and_is_seeded():
    train, val = _toy_data(256, 0), _toy_data(64, 1)
    runs = [train_model(_lstm(), train, val, vocab_size=10, seed=s, monitor="val_loss",
                        patience=5, verbose=0) for s in (7, 7, 8)]
    assert runs[0].history[-1]["val_accuracy"] > 0.9
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    assert runs[0].history[0]["loss"] != runs[2].history[0]["loss"]
    probabilities = predict_probabilities(runs[0].model, val, InputShape(maxlen=12), 32)
    assert probabilities.shape == (64,)
    assert ((probabilities >= 0.5) == val.labels.astype(bool)).mean() > 0.9


def test_early_stopping_keeps_the_best_epoch():
    train, val = _toy_data(128, 0), _toy_data(32, 1)
    result = train_model(_lstm(epochs=4), train, val, vocab_size=10, seed=1,
                         monitor="val_loss", patience=0, verbose=0)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    # The model holds the best epoch's weights, not the last epoch's.
    val_ds, _ = make_dataset(val, InputShape(maxlen=12), 16)
    restored = result.model.evaluate(val_ds, verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(min(losses), rel=1e-4)


@pytest.mark.parametrize("trainable", [True, False])
def test_pretrained_vectors_start_the_embedding_and_frozen_ones_stay(trainable):
    train, val = _toy_data(64, 0), _toy_data(16, 1)
    matrix = np.random.default_rng(0).normal(0, 0.05, (10, 4)).astype(np.float32)
    matrix[0] = 0
    result = train_model(_lstm(epochs=1, learning_rate=0.001, embedding_trainable=trainable),
                         train, val,
                         vocab_size=10, seed=1, monitor="val_loss", patience=0, verbose=0,
                         embedding_matrix=matrix)
    weights = result.model.get_layer("embedding").get_weights()[0]
    assert np.array_equal(weights, matrix) != trainable
    assert np.abs(weights - matrix).max() < 0.02  # started from the vectors, not at random
