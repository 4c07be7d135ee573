"""vectorize: vocabulary from train only, exact ids, ragged storage, padding like Keras."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imdb_rnn.errors import PipelineError
from imdb_rnn.data.vectorize import (OOV_ID, Sequences, build_vocabulary, encode, load_sequences,
                                load_vocabulary, vectorize_table)


def test_vocabulary_ranks_by_count_then_alphabet():
    vocab = build_vocabulary(["b a c", "a b", "a d"], max_features=5)
    assert vocab == ["[PAD]", "[UNK]", "a", "b", "c"]


def test_encode_ragged_with_oov():
    ids, offsets = encode(["a b", "zzz", "b b c"], ["[PAD]", "[UNK]", "a", "b"])
    assert ids.tolist() == [2, 3, OOV_ID, 3, 3, OOV_ID]
    assert offsets.tolist() == [0, 2, 3, 6]


def test_padding_marker_in_text_is_not_the_padding_id():
    ids, _ = encode(["[PAD]"], ["[PAD]", "[UNK]"])
    assert ids.tolist() == [OOV_ID]


def test_vectorize_table_fits_on_train_only(tmp_path):
    table = pd.DataFrame({
        "review": ["r1", "r2", "r3", "r4"],
        "split": ["train", "train", "val", "test"],
        "label": [1, 0, 1, 0],
        "text": ["good good film", "bad film", "valword film", "testword bad"],
    })
    summary = vectorize_table(table, max_features=10, out_dir=tmp_path)
    vocab = load_vocabulary(tmp_path / "vocab.txt")
    assert vocab == ["[PAD]", "[UNK]", "film", "good", "bad"]
    assert summary["vocab_size"] == 5
    test = load_sequences(tmp_path / "test.npz")
    assert test.row(0).tolist() == [OOV_ID, 4]
    assert test.reviews.tolist() == ["r4"] and test.labels.tolist() == [0]
    assert load_sequences(tmp_path / "val.npz").row(0).tolist() == [OOV_ID, 2]


def test_subset_keeps_rows():
    seqs = Sequences(np.array([1, 2, 3, 4, 5, 6], np.int32), np.array([0, 1, 3, 6]),
                     np.array([0, 1, 0], np.int8), np.array(["a", "b", "c"]))
    sub = seqs.subset(np.array([2, 0]))
    assert [sub.row(i).tolist() for i in range(2)] == [[4, 5, 6], [1]]
    assert sub.reviews.tolist() == ["c", "a"]


def test_missing_split_is_named(tmp_path):
    table = pd.DataFrame({"review": ["r"], "split": ["train"], "label": [1], "text": ["a"]})
    with pytest.raises(PipelineError, match="no val, test rows"):
        vectorize_table(table, max_features=10, out_dir=tmp_path)
