"""How reviews become model input: truncation, padding, length-bucketed batches, their order."""

from __future__ import annotations

import numpy as np
import pytest

from imdb_rnn.modeling.inputs import InputShape, make_dataset, pad_batch, plan_batches, truncate
from test_fit import seqs


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
