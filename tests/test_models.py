"""The model registry: every family builds, has the right output, trains a step; names are checked."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imdb_rnn.errors import PipelineError
from imdb_rnn.modeling.registry import MODEL_BUILDERS, build_model, builder_arguments
from imdb_rnn.config.params import (TRAINING_ONLY_FIELDS, BidirectionalParams, CnnParams,
                             FeedforwardParams, RecurrentParams)

SMALL = {
    "feedforward": {"embedding_dim": 8, "dropout": 0.1, "pooling": "average", "units": 4},
    "cnn": {"embedding_dim": 8, "dropout": 0.1, "filters": 4, "kernel_size": 3,
            "num_layers": 2, "units": 4},
    "simple_rnn": {"embedding_dim": 8, "dropout": 0.1, "units": 4, "num_layers": 2},
    "bidirectional": {"embedding_dim": 8, "dropout": 0.1, "units": 4, "cell": "gru"},
    "lstm": {"embedding_dim": 8, "dropout": 0.1, "units": 4, "pooling": "max"},
    "gru": {"embedding_dim": 8, "dropout": 0.0, "units": 4, "pooling": "mean"},
}
PARAMS_CLASS = {"feedforward": FeedforwardParams, "cnn": CnnParams, "simple_rnn": RecurrentParams,
                "lstm": RecurrentParams, "gru": RecurrentParams,
                "bidirectional": BidirectionalParams}


def test_registry_has_every_family():
    assert set(MODEL_BUILDERS) >= {"feedforward", "cnn", "simple_rnn", "bidirectional", "lstm",
                                   "gru"}
    assert set(SMALL) == set(MODEL_BUILDERS)


@pytest.mark.parametrize("family", sorted(MODEL_BUILDERS))
def test_params_keys_are_builder_keywords(family):
    """Every non-training key of a family's params section is a keyword of its builder."""
    fields = set(PARAMS_CLASS[family].model_fields) - TRAINING_ONLY_FIELDS
    assert fields == builder_arguments(family)


@pytest.mark.parametrize("family", sorted(MODEL_BUILDERS))
def test_builds_predicts_and_trains_one_step(family):
    keras.utils.set_random_seed(0)
    model = build_model(family, vocab_size=50, maxlen=12, **SMALL[family])
    x = np.random.default_rng(0).integers(2, 50, size=(6, 12)).astype("int32")
    x[:3, 8:] = 0  # right padding
    y = np.array([0, 1, 0, 1, 0, 1], dtype="float32")
    assert model(x).shape == (6, 1)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_recurrent_families_accept_any_length():
    model = build_model("lstm", vocab_size=20, maxlen=50, embedding_dim=4, dropout=0.0, units=3)
    assert model(np.ones((2, 7), "int32")).shape == (2, 1)
    assert model(np.ones((2, 31), "int32")).shape == (2, 1)


def test_masked_max_pooling_survives_save_and_load(tmp_path):
    model = build_model("lstm", vocab_size=20, maxlen=50, embedding_dim=4, dropout=0.0,
                        units=3, pooling="max")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.array([[3, 4, 0]], "int32")
    np.testing.assert_allclose(model(x), loaded(x), rtol=1e-6)


def test_flatten_feedforward_is_fixed_length():
    model = build_model("feedforward", vocab_size=20, maxlen=10, embedding_dim=4, dropout=0.0,
                        pooling="flatten")
    assert model.input_shape == (None, 10)


def test_unknown_family_lists_valid_names():
    with pytest.raises(PipelineError, match=r"unknown model family 'transformer'; valid: "
                                            r"bidirectional, cnn, feedforward, gru, lstm"):
        build_model("transformer", vocab_size=10)


def test_unknown_hyperparameter_is_named():
    with pytest.raises(PipelineError, match=r"lstm: unknown hyperparameter\(s\) unitz"):
        build_model("lstm", vocab_size=10, maxlen=5, embedding_dim=4, dropout=0.0, unitz=3)


@pytest.mark.parametrize(("family", "options"), [
    ("lstm", {"pooling": "last"}), ("gru", {"pooling": "max"}),
    ("simple_rnn", {"pooling": "mean"}), ("feedforward", {"pooling": "max"}),
    ("cnn", {"filters": 3, "kernel_size": 3, "num_layers": 1}),
    ("cnn", {"filters": 3, "kernel_size": 2, "num_layers": 3}),
])
def test_padding_does_not_change_predictions(family, options):
    """Extra right padding (a longer batch-mate) does not change a review's prediction."""
    keras.utils.set_random_seed(1)
    model = build_model(family, vocab_size=20, maxlen=50, embedding_dim=4, dropout=0.0,
                        units=3, **options)
    short = np.array([[5, 6, 7]], "int32")
    padded = np.array([[5, 6, 7, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(model(short), model(padded), rtol=1e-5)
