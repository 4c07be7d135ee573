"""The one training path: recipes from sections, both feeds, early stopping, seeded fits."""

from __future__ import annotations

import numpy as np
import pytest

from imdb_rnn.config.params import FeedforwardParams, RecurrentParams
from imdb_rnn.data.vectorize import Sequences
from imdb_rnn.modeling.fit import Arrays, Stopping, fit, recipe_for
from imdb_rnn.modeling.inputs import (InputShape, input_shape_for, make_dataset)
from imdb_rnn.modeling.predict import predict_probabilities


def seqs(rows: list[list[int]], labels: list[int] | None = None) -> Sequences:
    lengths = [len(r) for r in rows]
    return Sequences(np.array([t for r in rows for t in r], np.int32),
                     np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                     np.array(labels or [0] * len(rows), np.int8),
                     np.array([f"r{i}" for i in range(len(rows))]))


def _toy_data(n: int, seed: int) -> Sequences:
    """Token 2 means positive, 3 negative, among noise tokens 4-9."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n).tolist()
    rows = [rng.integers(4, 10, size=rng.integers(3, 12)).tolist() + [2 if y else 3]
            for y in labels]
    return seqs(rows, labels)


def _lstm(**overrides) -> RecurrentParams:
    base = dict(family="lstm", maxlen=12, padding="post", truncating="pre", batch_size=16,
                optimizer="adam", learning_rate=0.02, clipnorm=None, epochs=3, embedding_dim=4,
                dropout=0.0, units=4, num_layers=1, recurrent_dropout=0.0, pooling="last",
                embedding_file=None, embedding_trainable=True)
    return RecurrentParams(**{**base, **overrides})


def test_a_section_becomes_a_recipe_by_the_roles_of_its_keys():
    section = _lstm(clipnorm=1.5)
    recipe = recipe_for(section)
    assert recipe.family == "lstm"
    assert dict(recipe.architecture) == section.architecture()
    assert set(recipe.architecture) == set(RecurrentParams.architecture_keys())
    assert recipe.shape == InputShape(maxlen=12, padding="post", truncating="pre",
                                      fixed_length=False)
    assert (recipe.optimizer, recipe.learning_rate, recipe.clipnorm) == ("adam", 0.02, 1.5)
    assert (recipe.batch_size, recipe.epochs, recipe.feed) == (16, 3, "bucketed")
    assert recipe_for(section, feed="classic", epochs=1).feed == "classic"
    flatten = FeedforwardParams(**{**_lstm().model_dump(include={
        "maxlen", "padding", "truncating", "optimizer", "learning_rate", "clipnorm",
        "batch_size", "epochs", "embedding_file", "embedding_dim", "dropout",
        "embedding_trainable"}), "family": "feedforward", "pooling": "flatten", "units": 0,
        "ngram_max": 1, "ngram_buckets": 0, "nb_scale": 0.0})
    assert input_shape_for(flatten).length == 12  # Flatten needs one input length
    assert recipe_for(section).shape.length is None  # recurrent: any batch length


def test_fit_learns_a_toy_task_and_is_seeded():
    train, val = _toy_data(256, 0), _toy_data(64, 1)
    runs = [fit(recipe_for(_lstm()), train, val, vocab_size=10, seed=s,
                stopping=Stopping("val_loss", 5), verbose=0) for s in (7, 7, 8)]
    assert runs[0].history[-1]["val_accuracy"] > 0.9
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    assert runs[0].history[0]["loss"] != runs[2].history[0]["loss"]
    probabilities = predict_probabilities(runs[0].model, val, InputShape(maxlen=12), 32)
    assert probabilities.shape == (64,)
    assert ((probabilities >= 0.5) == val.labels.astype(bool)).mean() > 0.9


def test_early_stopping_keeps_the_best_epoch():
    train, val = _toy_data(128, 0), _toy_data(32, 1)
    result = fit(recipe_for(_lstm(epochs=4)), train, val, vocab_size=10, seed=1,
                 stopping=Stopping("val_loss", 0), verbose=0)
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
    recipe = recipe_for(_lstm(epochs=1, learning_rate=0.001, embedding_trainable=trainable))
    result = fit(recipe, train, val, vocab_size=10, seed=1, stopping=Stopping("val_loss", 0),
                 verbose=0, embedding=matrix)
    weights = result.model.get_layer("embedding").get_weights()[0]
    assert np.array_equal(weights, matrix) != trainable
    assert np.abs(weights - matrix).max() < 0.02  # started from the vectors, not at random


def test_the_classic_feed_trains_on_one_padded_array_and_is_seeded():
    train, val = _toy_data(128, 0), _toy_data(32, 1)
    recipe = recipe_for(_lstm(epochs=2), feed="classic")
    runs = [fit(recipe, train, val, vocab_size=10, seed=3, verbose=0) for _ in range(2)]
    assert len(runs[0].history) == 2 and runs[0].best_epoch == 2  # no stopping: the last epoch
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    assert runs[0].train_samples == 128


def test_the_classic_feed_takes_plain_arrays_and_the_bucketed_one_refuses_them():
    rng = np.random.default_rng(0)
    x = rng.integers(2, 10, size=(32, 6)).astype(np.int32)
    data = Arrays(x, (x[:, 0] > 5).astype(np.float32))
    section = _lstm(epochs=1, maxlen=6)
    result = fit(recipe_for(section, feed="classic"), data, None, vocab_size=10, seed=0,
                 verbose=0)
    assert len(result.history) == 1 and "val_loss" not in result.history[0]
    with pytest.raises(TypeError, match="bucketed feed takes token sequences"):
        fit(recipe_for(section), data, None, vocab_size=10, seed=0, verbose=0)


def test_clipnorm_reaches_the_optimizer():
    train = _toy_data(32, 0)
    result = fit(recipe_for(_lstm(epochs=1, clipnorm=0.5)), train, None, vocab_size=10, seed=0,
                 verbose=0)
    assert result.model.optimizer.clipnorm == pytest.approx(0.5)
    plain = fit(recipe_for(_lstm(epochs=1)), train, None, vocab_size=10, seed=0, verbose=0)
    assert plain.model.optimizer.clipnorm is None


@pytest.mark.parametrize("feed", ["bucketed", "classic"])
def test_the_cosine_schedule_decays_to_zero_over_the_whole_budget(feed):
    train = _toy_data(64, 0)  # 4 steps an epoch at batch 16
    result = fit(recipe_for(_lstm(epochs=3), schedule="cosine", feed=feed), train, None,
                 vocab_size=10, seed=0, verbose=0)
    optimizer = result.model.optimizer
    assert int(optimizer.iterations) == 12
    # after the whole budget (3 epochs x 4 steps) the rate has decayed to 0 from 0.02
    assert float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)
    constant = fit(recipe_for(_lstm(epochs=3)), train, None, vocab_size=10, seed=0, verbose=0)
    assert float(constant.model.optimizer.learning_rate) == pytest.approx(0.02)


def test_without_patience_every_epoch_trains_and_the_best_is_kept():
    train, val = _toy_data(128, 0), _toy_data(32, 1)
    result = fit(recipe_for(_lstm(epochs=4, learning_rate=0.2)), train, val, vocab_size=10,
                 seed=1, stopping=Stopping("val_loss", None), verbose=0)
    losses = [h["val_loss"] for h in result.history]
    assert len(result.history) == 4
    assert result.best_epoch == int(np.argmin(losses)) + 1


def test_a_trainings_epochs_reach_mlflow_as_they_end(tmp_path, monkeypatch):
    """The train stage's LiveEpochs: epoch N's metrics are in the tracking store when epoch N
    ends, not only after the training (the UI shows a training while it runs)."""
    import keras

    from imdb_rnn.config.params import MlflowParams
    from imdb_rnn.pipeline.train import LiveEpochs
    from imdb_rnn.tracking import runs as tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    experiment = tracking.connect(MlflowParams(tracking_uri=f"sqlite:///{tmp_path}/m.db",
                                               experiment="t"))
    seen = []

    class Look(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            history = experiment.client.get_metric_history(run.id, "val_accuracy")
            seen.append(sorted(m.step for m in history))

    with experiment.run("live", tags={}) as run:
        fit(recipe_for(_lstm(epochs=2)), _toy_data(64, 0), _toy_data(16, 1), vocab_size=10,
            seed=1, verbose=0, callbacks=[LiveEpochs(run), Look()])
    assert seen == [[1], [1, 2]]
