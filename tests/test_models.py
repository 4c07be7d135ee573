"""The model registry: every family builds, has the right output, trains a step; names are checked."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imdb_rnn.errors import PipelineError
from imdb_rnn.config.params import (BidirectionalParams, CnnParams, FeedforwardParams,
                                    ModelSection, RecurrentParams)
from imdb_rnn.modeling.registry import (MODEL_BUILDERS, PIPELINE_FAMILIES, adapt, build_model,
                                        builder_arguments)

RECURRENT = {"units": 4, "num_layers": 1, "recurrent_dropout": 0.0, "pooling": "last",
             "embedding_trainable": True}
SMALL = {
    "feedforward": {"embedding_dim": 8, "dropout": 0.1, "pooling": "average", "units": 4,
                    "embedding_trainable": True, "ngram_max": 1, "ngram_buckets": 0,
                    "nb_scale": 0.0},
    "cnn": {"embedding_dim": 8, "dropout": 0.1, "filters": 4, "kernel_size": 3,
            "kernel_widths": 2, "num_layers": 2, "units": 4, "embedding_trainable": True},
    "simple_rnn": {**RECURRENT, "embedding_dim": 8, "dropout": 0.1, "num_layers": 2},
    "bidirectional": {**RECURRENT, "embedding_dim": 8, "dropout": 0.1, "cell": "gru"},
    "lstm": {**RECURRENT, "embedding_dim": 8, "dropout": 0.1, "pooling": "max"},
    "gru": {**RECURRENT, "embedding_dim": 8, "dropout": 0.0, "pooling": "mean"},
}


def recurrent(**options) -> dict:
    """A small recurrent architecture: every keyword of the builder, ``options`` overriding."""
    return {**RECURRENT, "embedding_dim": 4, "dropout": 0.0, "units": 3, **options}
PARAMS_CLASS = {"feedforward": FeedforwardParams, "cnn": CnnParams, "simple_rnn": RecurrentParams,
                "lstm": RecurrentParams, "gru": RecurrentParams,
                "bidirectional": BidirectionalParams}


def test_registry_has_every_pipeline_family():
    assert set(PIPELINE_FAMILIES) == {"feedforward", "cnn", "simple_rnn", "bidirectional",
                                      "lstm", "gru"}
    assert set(MODEL_BUILDERS) >= set(PIPELINE_FAMILIES)
    assert set(SMALL) == set(PIPELINE_FAMILIES) == set(PARAMS_CLASS)


@pytest.mark.parametrize("family", PIPELINE_FAMILIES)
def test_architecture_keys_are_the_builder_keywords(family):
    """A section's architecture keys are exactly its builder's keywords (no more, no fewer)."""
    cls = PARAMS_CLASS[family]
    assert family in cls.model_fields["family"].annotation.__args__
    assert set(cls.architecture_keys()) == builder_arguments(family)


@pytest.mark.parametrize("cls", sorted(set(PARAMS_CLASS.values()), key=lambda c: c.__name__))
def test_every_section_field_has_exactly_one_role(cls: type[ModelSection]):
    roles = [("family",), cls.INPUT_KEYS, cls.OPTIMIZER_KEYS, cls.FIT_KEYS, cls.INIT_KEYS,
             cls.architecture_keys()]
    assigned = [key for role in roles for key in role]
    assert len(assigned) == len(set(assigned)), f"a key with two roles: {assigned}"
    assert set(assigned) == set(cls.model_fields)
    assert "clipnorm" in cls.OPTIMIZER_KEYS and "maxlen" in cls.INPUT_KEYS


def test_builder_arguments_leave_out_the_input_arguments():
    for family in MODEL_BUILDERS:
        assert not builder_arguments(family) & {"vocab_size", "sequence_length", "maxlen"}


@pytest.mark.parametrize("family", PIPELINE_FAMILIES)
def test_builds_predicts_and_trains_one_step(family):
    keras.utils.set_random_seed(0)
    model = build_model(family, vocab_size=50, sequence_length=12, **SMALL[family])
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
    model = build_model("lstm", vocab_size=20, sequence_length=None, **recurrent())
    assert model(np.ones((2, 7), "int32")).shape == (2, 1)
    assert model(np.ones((2, 31), "int32")).shape == (2, 1)


def test_masked_max_pooling_survives_save_and_load(tmp_path):
    model = build_model("lstm", vocab_size=20, sequence_length=None, **recurrent(pooling="max"))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.array([[3, 4, 0]], "int32")
    np.testing.assert_allclose(model(x), loaded(x), rtol=1e-6)


@pytest.mark.parametrize(("family", "options"), [
    ("feedforward", {"embedding_dim": 4, "dropout": 0.0, "pooling": "average", "units": 0,
                     "embedding_trainable": True, "ngram_max": 2, "ngram_buckets": 16,
                     "nb_scale": 0.0}),
    ("feedforward", {"embedding_dim": 1, "dropout": 0.0, "pooling": "sum", "units": 0,
                     "embedding_trainable": True, "ngram_max": 3, "ngram_buckets": 16,
                     "nb_scale": 0.05}),
    ("lstm", recurrent(pooling="concat")),
])
def test_ngram_naive_bayes_and_concat_layers_survive_save_and_load(tmp_path, family, options):
    model = build_model(family, vocab_size=20, **options)
    reviews = np.array([[3, 4, 5, 0], [6, 7, 3, 4], [3, 4, 8, 9], [6, 7, 0, 0]], "int32")
    adapt(model, lambda: [(reviews, np.array([1, 0, 1, 0]))])  # the ratios, where it has some
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.array([[3, 4, 5, 0]], "int32")
    np.testing.assert_allclose(model(x), loaded(x), rtol=1e-6)
    learners = [layer for layer in model.layers if hasattr(layer, "ratios")]
    assert len(learners) == (2 if options.get("nb_scale") else 0)  # words and n-grams
    for layer in learners:  # learned from the reviews, saved with the model
        assert np.any(np.asarray(layer.ratios) != 0)
        np.testing.assert_array_equal(layer.ratios, loaded.get_layer(layer.name).ratios)


def test_flatten_feedforward_is_fixed_length():
    flatten = dict(embedding_dim=4, dropout=0.0, pooling="flatten", units=0,
                   embedding_trainable=True, ngram_max=1, ngram_buckets=0, nb_scale=0.0)
    model = build_model("feedforward", vocab_size=20, sequence_length=10, **flatten)
    assert model.input_shape == (None, 10)
    with pytest.raises(PipelineError, match="needs a fixed sequence_length"):
        build_model("feedforward", vocab_size=20, sequence_length=None, **flatten)
    with pytest.raises(PipelineError, match="ngram_buckets and nb_scale need pooling average"):
        build_model("feedforward", vocab_size=20, sequence_length=10,
                    **{**flatten, "ngram_max": 2, "ngram_buckets": 8})
    with pytest.raises(PipelineError, match="ngram_buckets and nb_scale need pooling average"):
        build_model("feedforward", vocab_size=20, sequence_length=10,
                    **{**flatten, "nb_scale": 0.1})
    with pytest.raises(PipelineError, match="ngram_max 3 with ngram_buckets 0"):
        build_model("feedforward", vocab_size=20, sequence_length=10,
                    **{**flatten, "pooling": "sum", "ngram_max": 3})


def test_hashed_ngrams_are_the_runs_of_neighbouring_words_and_zero_at_padding():
    from imdb_rnn.modeling.registry import HashedNgrams

    ids = np.array([[5, 6, 7, 0, 0], [5, 6, 5, 6, 2]], "int32")
    bigrams = np.asarray(HashedNgrams(1000, vocab_size=10)(ids))
    # (first * 10 + second) mod 1000 + 1; 0 where either word is padding
    np.testing.assert_array_equal(bigrams, [[57, 68, 0, 0], [57, 66, 57, 63]])
    # trigrams after the bigrams: (first * 100 + second * 10 + third) mod 1000 + 1
    both = np.asarray(HashedNgrams(1000, vocab_size=10, ngram_max=3)(ids))
    np.testing.assert_array_equal(both, [[57, 68, 0, 0, 568, 0, 0],
                                         [57, 66, 57, 63, 566, 657, 563]])
    # ids past 46,340 (first * vocab_size would overflow int32) stay in range
    big = np.asarray(HashedNgrams(7, vocab_size=100_000, ngram_max=3)(
        np.array([[99_999, 99_998, 99_997]], "int32")))
    assert big.shape == (1, 3) and ((1 <= big) & (big <= 7)).all()


def test_reviews_shorter_than_an_ngram_have_none_of_it():
    from imdb_rnn.modeling.registry import HashedNgrams

    for length in (1, 2, 3):
        ids = np.arange(5, 5 + length, dtype="int32")[None, :]
        grams = np.asarray(HashedNgrams(97, vocab_size=10, ngram_max=4)(ids))
        # bigrams, trigrams and 4-grams that fit: length - 1, length - 2, length - 3 of them
        assert grams.shape == (1, sum(max(length - n + 1, 0) for n in (2, 3, 4)))
        assert (grams > 0).all()


def test_a_model_saved_with_the_former_bigram_layer_still_loads():
    """Models saved before ngram_max (the fasttext model up to 41882c7) name the layer
    HashedBigrams: it still deserialises, to the same bigrams."""
    from imdb_rnn.modeling.registry import HashedNgrams

    config = {"module": None, "class_name": "HashedBigrams", "registered_name":
              "imdb_rnn>HashedBigrams", "config": {"name": "bigrams", "trainable": True,
                                                   "dtype": "float32", "buckets": 1000,
                                                   "vocab_size": 10}}
    old = keras.saving.deserialize_keras_object(config)
    ids = np.array([[5, 6, 7, 0]], "int32")
    np.testing.assert_array_equal(old(ids), HashedNgrams(1000, vocab_size=10)(ids))


def test_each_id_once_per_review():
    from imdb_rnn.modeling.registry import UniqueIds

    once = np.asarray(UniqueIds()(np.array([[7, 3, 7, 7, 0, 0], [2, 4, 6, 4, 2, 9]], "int32")))
    assert [sorted(row[row > 0]) for row in once] == [[3, 7], [2, 4, 6, 9]]  # no repeat left


def test_naive_bayes_ratios_are_the_log_count_ratios_of_the_training_reviews():
    """r = log((p / |p|1) / (q / |q|1)) with one added to every count; ids in fewer than two
    training reviews and the padding get 0. (The layer's ids hold each id once per review:
    UniqueIds comes before it.)"""
    from imdb_rnn.modeling.registry import NaiveBayesScale

    layer = NaiveBayesScale(6, scale=0.5)
    layer.build(None)
    ids = np.array([[1, 2, 0], [1, 3, 0], [1, 4, 3], [2, 4, 5]], "int32")
    labels = np.array([1, 1, 0, 0])
    layer.adapt([(ids[:2], labels[:2]), (ids[2:], labels[2:])])
    p = np.array([0, 2, 1, 1, 0, 0]) + 1.0  # positive reviews holding ids 0-5
    q = np.array([0, 1, 1, 1, 2, 1]) + 1.0
    expected = np.log((p / p.sum()) / (q / q.sum()))
    expected[0] = 0.0  # padding
    expected[5] = 0.0  # in one training review only
    np.testing.assert_allclose(np.asarray(layer.ratios), expected, rtol=1e-6)
    vectors = np.ones((1, 3, 2), "float32")
    scaled = np.asarray(layer([np.array([[1, 4, 0]], "int32"), vectors]))
    np.testing.assert_allclose(scaled[0, :, 0], 0.5 * expected[[1, 4, 0]], rtol=1e-6)


def test_fit_learns_the_naive_bayes_ratios_from_the_training_split_only():
    """The NB-weighted feedforward model (NBSVM as a network) gets its ratios from the training
    reviews before the first epoch: a word only in validation reviews keeps ratio 0, and the
    trained model separates the training labels."""
    from imdb_rnn.data.vectorize import Sequences
    from imdb_rnn.modeling import InputShape, Recipe, fit

    rng = np.random.default_rng(0)
    rows = [np.r_[rng.integers(4, 9, 5), 2 + label] for label in (0, 1) * 20]
    def split(rows, labels):
        lengths = [len(r) for r in rows]
        return Sequences(np.concatenate(rows).astype("int32"), np.r_[0, np.cumsum(lengths)],
                         np.asarray(labels, "int8"), np.array([f"r{i}" for i in range(len(rows))]))
    train = split(rows, [0, 1] * 20)
    # word 9: in positive validation reviews only (a ratio learned from them would be > 0)
    val = split([np.array([9, 9, 3]), np.array([9, 3]), np.array([2, 2])], [1, 1, 0])
    nb = {"embedding_dim": 1, "dropout": 0.0, "pooling": "sum", "units": 0,
          "embedding_trainable": True, "ngram_max": 2, "ngram_buckets": 32, "nb_scale": 0.5}
    recipe = Recipe("feedforward", nb, InputShape(10), "adam", 0.05, batch_size=8, epochs=3)
    result = fit(recipe, train, val, vocab_size=10, seed=0, verbose=0)
    ratios = np.asarray(result.model.get_layer("word_naive_bayes").ratios)
    assert ratios[3] > 0 > ratios[2]  # word 3 only in positive reviews, word 2 in negative
    assert ratios[9] == 0 and ratios[0] == 0
    assert np.any(np.asarray(result.model.get_layer("ngram_naive_bayes").ratios) != 0)
    assert result.history[-1]["val_accuracy"] == 1.0


def test_ngrams_change_what_the_feedforward_model_reads():
    """Two reviews of the same words in another order: the same average of word vectors, a
    different one once bigrams join it."""
    keras.utils.set_random_seed(0)
    words = dict(embedding_dim=4, dropout=0.0, pooling="average", units=0,
                 embedding_trainable=True)
    plain = build_model("feedforward", vocab_size=20, **words, ngram_max=1, ngram_buckets=0,
                        nb_scale=0.0)
    bigram = build_model("feedforward", vocab_size=20, **words, ngram_max=2, ngram_buckets=64,
                         nb_scale=0.0)
    one, other = np.array([[5, 6, 7, 8]], "int32"), np.array([[8, 7, 6, 5]], "int32")
    np.testing.assert_allclose(plain(one), plain(other), rtol=1e-6)
    assert not np.allclose(bigram(one), bigram(other))


def test_a_multi_width_cnn_runs_its_widths_side_by_side_and_refuses_too_many():
    cnn = dict(embedding_dim=4, dropout=0.0, filters=3, kernel_size=5, num_layers=1, units=0,
               embedding_trainable=True)
    model = build_model("cnn", vocab_size=20, **cnn, kernel_widths=3)
    widths = sorted(layer.kernel_size[0] for layer in model.layers
                    if isinstance(layer, keras.layers.Conv1D))
    assert widths == [3, 4, 5]  # Kim 2014
    assert model.get_layer("max_pool").output.shape == (None, 9)
    one = build_model("cnn", vocab_size=20, **cnn, kernel_widths=1)
    assert [layer.name for layer in one.layers if isinstance(layer, keras.layers.Conv1D)] == [
        "conv_1"]  # the name saved models of one width have
    with pytest.raises(PipelineError, match="kernel_widths 6 must be 1 to kernel_size"):
        build_model("cnn", vocab_size=20, **cnn, kernel_widths=6)
    section = dict(family="cnn", maxlen=10, padding="post", truncating="pre", optimizer="adam",
                   learning_rate=0.01, clipnorm=None, batch_size=8, epochs=1,
                   embedding_file=None, **cnn)
    with pytest.raises(ValueError, match="kernel_widths 6 is more than kernel_size 5"):
        CnnParams(**section, kernel_widths=6)


def test_concat_pooling_is_the_last_real_state_beside_max_and_mean():
    from imdb_rnn.modeling.registry import MaskedLast

    states = np.arange(24, dtype="float32").reshape(2, 4, 3)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(np.asarray(MaskedLast()(states, mask=mask)),
                                  [states[0, 1], states[1, 3]])
    model = build_model("gru", vocab_size=20, **recurrent(pooling="concat"))
    assert model.get_layer("concat_pool").output.shape == (None, 9)  # 3 units x 3


def test_the_section_says_when_the_input_length_is_fixed():
    base = dict(maxlen=10, padding="post", truncating="pre", optimizer="adam",
                learning_rate=0.01, clipnorm=None, batch_size=8, epochs=1, embedding_file=None,
                embedding_dim=4, dropout=0.0, embedding_trainable=True, units=0)
    words = dict(ngram_max=1, ngram_buckets=0, nb_scale=0.0)
    assert FeedforwardParams(family="feedforward", pooling="flatten", **words, **base).fixed_length
    assert not FeedforwardParams(family="feedforward", pooling="average", **words,
                                 **base).fixed_length
    with pytest.raises(ValueError, match="ngram_max 2 with ngram_buckets 0"):
        FeedforwardParams(family="feedforward", pooling="sum", **{**words, "ngram_max": 2},
                          **base)
    assert not CnnParams(family="cnn", filters=2, kernel_size=2, kernel_widths=1, num_layers=1,
                         **base).fixed_length


def test_unknown_family_lists_valid_names():
    with pytest.raises(PipelineError, match=r"unknown model family 'transformer'; valid: ") as error:
        build_model("transformer", vocab_size=10)
    valid = str(error.value).split("valid: ")[1].split(", ")
    assert valid == sorted(MODEL_BUILDERS) and set(PIPELINE_FAMILIES) <= set(valid)


def test_unknown_hyperparameter_is_named():
    with pytest.raises(PipelineError, match=r"lstm: unknown hyperparameter\(s\) unitz; valid:"):
        build_model("lstm", vocab_size=10, sequence_length=None, **recurrent(), unitz=3)


def test_missing_hyperparameter_is_named():
    arguments = recurrent()
    del arguments["pooling"]
    with pytest.raises(PipelineError, match=r"lstm: missing hyperparameter\(s\) pooling; valid:"):
        build_model("lstm", vocab_size=10, sequence_length=None, **arguments)


@pytest.mark.parametrize(("family", "options"), [
    ("lstm", {"pooling": "last"}), ("gru", {"pooling": "max"}),
    ("simple_rnn", {"pooling": "mean"}),
    ("feedforward", {"pooling": "max", "ngram_max": 1, "ngram_buckets": 0, "nb_scale": 0.0}),
    ("feedforward", {"pooling": "average", "ngram_max": 2, "ngram_buckets": 32, "nb_scale": 0.0}),
    ("feedforward", {"pooling": "max", "ngram_max": 3, "ngram_buckets": 32, "nb_scale": 0.0}),
    ("feedforward", {"pooling": "sum", "ngram_max": 2, "ngram_buckets": 32, "nb_scale": 0.0}),
    ("feedforward", {"pooling": "sum", "ngram_max": 3, "ngram_buckets": 32, "nb_scale": 0.1}),
    ("lstm", {"pooling": "concat"}), ("gru", {"pooling": "concat"}),
    ("cnn", {"filters": 3, "kernel_size": 3, "kernel_widths": 1, "num_layers": 1}),
    ("cnn", {"filters": 3, "kernel_size": 2, "kernel_widths": 1, "num_layers": 3}),
    ("cnn", {"filters": 3, "kernel_size": 5, "kernel_widths": 3, "num_layers": 1}),
])
def test_padding_does_not_change_predictions(family, options):
    """Extra right padding (a longer batch-mate) does not change a review's prediction."""
    keras.utils.set_random_seed(1)
    defaults = (recurrent() if family in ("lstm", "gru", "simple_rnn")
                else {"embedding_dim": 4, "dropout": 0.0, "units": 3,
                      "embedding_trainable": True})
    model = build_model(family, vocab_size=20, sequence_length=None, **{**defaults, **options})
    # ratios for the naive-Bayes model (else every ratio is 0 and every answer the same)
    adapt(model, lambda: [(np.array([[5, 6, 7, 0], [8, 9, 5, 6], [5, 6, 9, 0], [8, 9, 7, 5]],
                                    "int32"), np.array([1, 0, 1, 0]))])
    short = np.array([[5, 6, 7]], "int32")
    padded = np.array([[5, 6, 7, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(model(short), model(padded), rtol=1e-5)
    if options.get("nb_scale"):  # the ratios reach the answer
        assert not np.allclose(model(short), model(np.array([[8, 9, 0]], "int32")))


def test_the_lstm_and_gru_sections_are_written_for_the_cudnn_kernel():
    """On a GPU, Keras' TensorFlow backend gives a recurrent layer cuDNN only when its arguments
    allow it and the padding is on the right; checked here with Keras' own tests of the
    arguments, on every LSTM/GRU layer the default sections build (a CPU cannot run the kernel:
    tools/gpu_check.py shows the op on a GPU)."""
    import importlib

    # the module (the package exports a function of the same name)
    tf_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")

    from conftest import ROOT
    from imdb_rnn.config.params import load_params
    from imdb_rnn.modeling import recipe_for
    from imdb_rnn.modeling.fit import build

    params = load_params(ROOT / "params.yaml")
    checked = []
    for name, section in params.train.models.items():
        cell = section.family if section.family != "bidirectional" else section.cell
        if cell not in ("lstm", "gru"):
            continue
        assert section.padding == "post" and section.recurrent_dropout == 0.0, name
        model = build(recipe_for(section), vocab_size=50)
        rnns = [layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
                for layer in model.layers
                if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional))]
        for rnn in rnns:
            cell_layer = rnn.cell
            kwargs = {"activation": cell_layer.activation,
                      "recurrent_activation": cell_layer.recurrent_activation,
                      "unroll": rnn.unroll, "use_bias": cell_layer.use_bias}
            if isinstance(rnn, keras.layers.GRU):
                assert tf_rnn._do_gru_arguments_support_cudnn(reset_after=cell_layer.reset_after,
                                                              **kwargs), rnn.name
            else:
                assert tf_rnn._do_lstm_arguments_support_cudnn(**kwargs), rnn.name
            assert rnn.use_cudnn in ("auto", True) and not cell_layer.dropout
            checked.append(f"{name}/{rnn.name}")
    assert {c.split("/")[0] for c in checked} >= {"lstm", "gru", "bidirectional"}, checked
