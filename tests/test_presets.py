"""The classic presets: published architectures, sizes as in the sources, unknown names refused."""

from __future__ import annotations

import pytest

from imdb_rnn.errors import PipelineError
from imdb_rnn.reproductions.presets import PRESETS, get_preset, small_cnn


def layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_every_variant_builds_for_its_vocabulary_and_length():
    for preset in PRESETS.values():
        for variant in preset.variants:
            model = variant.build(preset.num_words or 20_000)
            assert model.input_shape == (None, preset.maxlen), (preset.name, variant.name)
            assert model.output_shape == (None, 1)


def test_parameter_counts_match_the_published_summaries():
    # DLwP 6.2 prints 322,113 for Embedding(10000, 32) + SimpleRNN(32) + Dense(1).
    chollet = get_preset("chollet_simplernn").variants[0].build(10_000)
    assert chollet.count_params() == 322_113
    # Embedding(1000, 16) over 100 words, Flatten, Dense(1): 16,000 + 1,601.
    feedforward = get_preset("small_vocab_four").variants[0].build(1_000)
    assert feedforward.count_params() == 17_601


def test_the_architectures_are_the_published_ones():
    nlpia = get_preset("nlpia_simplernn").variants[0].build(100)
    assert layer_types(nlpia) == ["InputLayer", "Embedding", "SimpleRNN", "Dropout", "Flatten",
                                  "Dense"]
    assert nlpia.get_layer("simple_rnn").units == 50
    assert nlpia.get_layer("simple_rnn").return_sequences
    stacked = {v.name: v for v in get_preset("chollet_simplernn").variants}["four_stacked"]
    assert layer_types(stacked.build(10_000)).count("SimpleRNN") == 4
    dropout = {v.name: v for v in get_preset("chollet_simplernn").variants}["dropout_0.2"]
    rnn = dropout.build(10_000).get_layer("simple_rnn_1")
    assert (rnn.dropout, rnn.recurrent_dropout) == (0.2, 0.2)
    assert get_preset("lstm_5k").variants[0].build(5_000).get_layer("lstm").units == 32


def test_the_published_cnn_has_no_sigmoid_and_the_corrected_one_has():
    published, corrected = small_cnn(sigmoid=False)(1_000), small_cnn(sigmoid=True)(1_000)
    assert published.layers[-1].activation.__name__ == "linear"
    assert corrected.layers[-1].activation.__name__ == "sigmoid"
    assert [type(layer).__name__ for layer in published.layers][2:7] == [
        "Conv1D", "MaxPooling1D", "Conv1D", "GlobalMaxPooling1D", "Dense"]


def test_an_unknown_preset_lists_the_valid_ones():
    with pytest.raises(PipelineError, match="unknown preset 'chollet'; valid: .*lstm_5k.*elman_xor"):
        get_preset("chollet")
