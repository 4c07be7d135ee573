"""The classic presets: published architectures, sizes as in the sources, unknown names refused."""

from __future__ import annotations

import pytest

from imdb_rnn.errors import PipelineError
from imdb_rnn.modeling.registry import MODEL_BUILDERS, PIPELINE_FAMILIES, build_model
from imdb_rnn.reproductions.presets import PRESETS, get_preset


def layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def build(preset_name: str, variant_name: str, vocab_size: int, **options):
    preset = get_preset(preset_name)
    variant = {v.name: v for v in preset.variants}[variant_name]
    return variant.build(vocab_size, preset.maxlen, **options)


def test_every_variant_is_a_registered_family_apart_from_the_pipelines():
    for preset in PRESETS.values():
        for variant in preset.variants:
            assert variant.family in MODEL_BUILDERS, (preset.name, variant.name)
            assert variant.family not in PIPELINE_FAMILIES, (preset.name, variant.name)
    assert "elman_xor" in MODEL_BUILDERS


def test_every_variant_builds_for_its_vocabulary_and_length():
    for preset in PRESETS.values():
        for variant in preset.variants:
            model = variant.build(preset.num_words or 20_000, preset.maxlen)
            assert model.input_shape == (None, preset.maxlen), (preset.name, variant.name)
            assert model.output_shape == (None, 1)


def test_parameter_counts_match_the_published_summaries():
    # DLwP 6.2 prints 322,113 for Embedding(10000, 32) + SimpleRNN(32) + Dense(1).
    chollet = build("chollet_simplernn", "simplernn_32", 10_000)
    assert chollet.count_params() == 322_113
    # Embedding(1000, 16) over 100 words, Flatten, Dense(1): 16,000 + 1,601.
    feedforward = build("small_vocab_four", "feedforward", 1_000)
    assert feedforward.count_params() == 17_601


def test_a_frozen_embedding_is_built_frozen():
    assert build("small_vocab_four", "feedforward", 1_000).get_layer("embedding").trainable
    frozen = build("small_vocab_four", "feedforward", 1_000, embedding_trainable=False)
    assert not frozen.get_layer("embedding").trainable


def test_the_architectures_are_the_published_ones():
    nlpia = build("nlpia_simplernn", "simplernn_50", 100)
    assert layer_types(nlpia) == ["InputLayer", "Embedding", "SimpleRNN", "Dropout", "Flatten",
                                  "Dense"]
    assert nlpia.get_layer("simple_rnn").units == 50
    assert nlpia.get_layer("simple_rnn").return_sequences
    assert layer_types(build("chollet_simplernn", "four_stacked", 10_000)).count("SimpleRNN") == 4
    rnn = build("chollet_simplernn", "dropout_0.2", 10_000).get_layer("simple_rnn_1")
    assert (rnn.dropout, rnn.recurrent_dropout) == (0.2, 0.2)
    assert build("lstm_5k", "lstm_32", 5_000).get_layer("lstm").units == 32


def test_the_published_cnn_has_no_sigmoid_and_the_corrected_one_has():
    published, corrected = (build_model("small_cnn", vocab_size=1_000, sequence_length=100,
                                        sigmoid=sigmoid, embedding_trainable=True)
                            for sigmoid in (False, True))
    assert published.layers[-1].activation.__name__ == "linear"
    assert corrected.layers[-1].activation.__name__ == "sigmoid"
    assert [type(layer).__name__ for layer in published.layers][2:7] == [
        "Conv1D", "MaxPooling1D", "Conv1D", "GlobalMaxPooling1D", "Dense"]


def test_an_unknown_preset_lists_the_valid_ones():
    with pytest.raises(PipelineError, match="unknown preset 'chollet'; valid: .*lstm_5k.*elman_xor"):
        get_preset("chollet")


def test_the_published_cnn_variants_differ_only_in_the_output_activation():
    variants = {v.name: v for v in get_preset("small_vocab_four").variants}
    assert variants["cnn_as_published"].family == variants["cnn_sigmoid"].family == "small_cnn"
    assert dict(variants["cnn_as_published"].hyperparameters) == {"sigmoid": False}
    assert dict(variants["cnn_sigmoid"].hyperparameters) == {"sigmoid": True}
