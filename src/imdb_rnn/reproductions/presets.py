"""The classic IMDB recipes of textbooks and tutorials, as named presets beside their published numbers.

Each preset is the recipe as published: its vocabulary size, ``maxlen``, split, optimiser,
batch size, epochs and one or more model variants, each with the number the source reports.
Their builders are added to the one model registry (``imdb_rnn.modeling.registry``) under
the names below and are built, fitted and scored through the pipeline's own paths. As in the classic
examples, inputs are padded and truncated at the front to a fixed ``maxlen`` and nothing is
masked (id 0 is padding, id 1 an out-of-vocabulary word). ``imdb_rnn.reproduce`` runs them.

Sources: NLPIA = Lane, Howard & Hapke, *Natural Language Processing in Action* (ch. 8-9);
DLwP = Chollet, *Deep Learning with Python* (1st ed., ch. 6); the 5,000-review LSTM and the
four small-vocabulary models are the figures the baseline issue compares with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
from keras import layers

from imdb_rnn.errors import PipelineError
from imdb_rnn.modeling import build_model, register
from imdb_rnn.modeling.registry import token_input


@dataclass(frozen=True)
class Variant:
    """One model of a preset and the number its source reports for it (None: none reported)."""

    name: str
    family: str  # a key of the model registry
    published: float | None
    note: str = ""
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)  # the builder's keywords

    def build(self, vocab_size: int, sequence_length: int, *,
              embedding_trainable: bool = True) -> keras.Model:
        """The variant's uncompiled model, from the registry."""
        return build_model(self.family, vocab_size=vocab_size, sequence_length=sequence_length,
                           embedding_trainable=embedding_trainable, **self.hyperparameters)


@dataclass(frozen=True)
class Preset:
    """A published recipe: data, training and the variants it compares."""

    name: str
    source: str
    # What the source reports: best validation accuracy over the epochs, the last epoch's
    # validation accuracy, or test accuracy.
    metric: str  # "best_val_accuracy" | "val_accuracy" | "test_accuracy"
    num_words: int | None  # vocabulary: the most frequent training words (None: all 20,000)
    maxlen: int
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    variants: tuple[Variant, ...]
    val_fraction: float = 0.2  # of the training reviews (Keras validation_split / an 80/20 split)
    subset: int | None = None  # the first N training and N test reviews only
    embedding_dim: int | None = None  # word vectors from a file (pretrained) when it matches
    loss: str = "binary_crossentropy"


def _sigmoid(x: keras.KerasTensor) -> keras.KerasTensor:
    return layers.Dense(1, activation="sigmoid", name="positive_probability")(x)


def _embedding(inputs: keras.KerasTensor, vocab_size: int, dim: int, trainable: bool
               ) -> keras.KerasTensor:
    # No mask: the classic recipes pad at the front and let the network see the padding.
    return layers.Embedding(vocab_size, dim, trainable=trainable, name="embedding")(inputs)


@register("nlpia_rnn")
def build_nlpia_rnn(*, vocab_size: int, sequence_length: int | None, units: int,
                    embedding_dim: int, bidirectional: bool,
                    embedding_trainable: bool) -> keras.Model:
    """NLPIA: SimpleRNN(units, return_sequences) [bidirectional], Dropout(0.2), Flatten, sigmoid."""
    inputs = token_input(sequence_length)
    x = _embedding(inputs, vocab_size, embedding_dim, embedding_trainable)  # (batch, time, dim)
    rnn = layers.SimpleRNN(units, return_sequences=True, name="simple_rnn")
    x = (layers.Bidirectional(rnn, name="bidirectional") if bidirectional else rnn)(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    x = layers.Flatten(name="flatten")(x)  # (batch, time * units)
    return keras.Model(inputs, _sigmoid(x), name=f"nlpia_rnn_{units}")


@register("dlwp_simple_rnn")
def build_dlwp_simple_rnn(*, vocab_size: int, sequence_length: int | None, layers_count: int,
                          bidirectional: bool, dropout: float,
                          embedding_trainable: bool) -> keras.Model:
    """DLwP 6.2: Embedding(32), SimpleRNN(32) (stacked, bidirectional or with dropout), sigmoid."""
    inputs = token_input(sequence_length)
    x = _embedding(inputs, vocab_size, 32, embedding_trainable)
    for i in range(layers_count):
        rnn = layers.SimpleRNN(32, return_sequences=i < layers_count - 1, dropout=dropout,
                               recurrent_dropout=dropout, name=f"simple_rnn_{i + 1}")
        x = (layers.Bidirectional(rnn, name="bidirectional") if bidirectional else rnn)(x)
    return keras.Model(inputs, _sigmoid(x), name="dlwp_simple_rnn")


@register("lstm_5k")
def build_lstm_5k(*, vocab_size: int, sequence_length: int | None,
                  embedding_trainable: bool) -> keras.Model:
    """Embedding(5,000, 32), LSTM(32), sigmoid, over reviews padded to 5,000 words."""
    inputs = token_input(sequence_length)
    x = _embedding(inputs, vocab_size, 32, embedding_trainable)
    x = layers.LSTM(32, name="lstm")(x)
    return keras.Model(inputs, _sigmoid(x), name="lstm_5k")


@register("small_feedforward")
def build_small_feedforward(*, vocab_size: int, sequence_length: int | None,
                            embedding_trainable: bool) -> keras.Model:
    """Embedding(1,000, 16) over 100 words, Flatten, sigmoid."""
    inputs = token_input(sequence_length)
    x = _embedding(inputs, vocab_size, 16, embedding_trainable)
    return keras.Model(inputs, _sigmoid(layers.Flatten(name="flatten")(x)), name="feedforward")


@register("small_two_simple_rnn")
def build_small_two_simple_rnn(*, vocab_size: int, sequence_length: int | None,
                               embedding_trainable: bool) -> keras.Model:
    """Embedding(16), two stacked SimpleRNN(32), sigmoid."""
    inputs = token_input(sequence_length)
    x = _embedding(inputs, vocab_size, 16, embedding_trainable)
    x = layers.SimpleRNN(32, return_sequences=True, name="simple_rnn_1")(x)
    x = layers.SimpleRNN(32, name="simple_rnn_2")(x)
    return keras.Model(inputs, _sigmoid(x), name="two_simple_rnn")


@register("small_lstm")
def build_small_lstm(*, vocab_size: int, sequence_length: int | None,
                     embedding_trainable: bool) -> keras.Model:
    """Embedding(16), LSTM(32), Dense(32, relu), Dropout(0.2), sigmoid."""
    inputs = token_input(sequence_length)
    x = _embedding(inputs, vocab_size, 16, embedding_trainable)
    x = layers.LSTM(32, name="lstm")(x)
    x = layers.Dense(32, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    return keras.Model(inputs, _sigmoid(x), name="lstm")


@register("small_cnn")
def build_small_cnn(*, vocab_size: int, sequence_length: int | None, sigmoid: bool,
                    embedding_trainable: bool) -> keras.Model:
    """Conv1D(32, 7), MaxPooling1D(5), Conv1D(32, 7), global max pool, Dense(1).

    As published, the output Dense(1) has no activation although the loss is binary
    cross-entropy on probabilities (Keras clips the raw score into (0, 1)); ``sigmoid=True`` is
    the corrected model.
    """
    inputs = token_input(sequence_length)
    x = _embedding(inputs, vocab_size, 16, embedding_trainable)
    x = layers.Conv1D(32, 7, activation="relu", name="conv_1")(x)
    x = layers.MaxPooling1D(5, name="pool")(x)
    x = layers.Conv1D(32, 7, activation="relu", name="conv_2")(x)
    x = layers.GlobalMaxPooling1D(name="max_pool")(x)
    out = layers.Dense(1, activation="sigmoid" if sigmoid else None,
                       name="positive_probability")(x)
    return keras.Model(inputs, out, name="cnn_sigmoid" if sigmoid else "cnn_as_published")


@register("elman_xor")
def build_elman_xor(*, vocab_size: int, sequence_length: int | None,
                    embedding_trainable: bool) -> keras.Model:
    """Elman's network on XOR as a sequence: 1 step of 2 features, SimpleRNN(2), Dense(1, tanh).

    Its input is two numbers, not token ids: ``vocab_size`` and ``sequence_length`` are unused.
    """
    inputs = keras.Input(shape=(1, 2), name="pair")
    x = layers.SimpleRNN(2, name="simple_rnn")(inputs)
    return keras.Model(inputs, layers.Dense(1, activation="tanh", name="output")(x),
                       name="elman_xor")


def _nlpia(units: int, dim: int, *, bidirectional: bool = False) -> dict:
    return {"units": units, "embedding_dim": dim, "bidirectional": bidirectional}


def _dlwp(layers_count: int = 1, *, bidirectional: bool = False, dropout: float = 0.0) -> dict:
    return {"layers_count": layers_count, "bidirectional": bidirectional, "dropout": dropout}


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("nlpia_simplernn", "NLPIA ch. 8 (word2vec 300-d inputs, 80/20 split of train)",
           "val_accuracy", num_words=None, maxlen=400, epochs=2, batch_size=32,
           optimizer="rmsprop", learning_rate=0.001, embedding_dim=300,
           variants=(Variant("simplernn_50", "nlpia_rnn", 0.782, hyperparameters=_nlpia(50, 300)),
                     Variant("simplernn_100", "nlpia_rnn", 0.7824, hyperparameters=_nlpia(100, 300)),
                     Variant("simplernn_25", "nlpia_rnn", 0.797, hyperparameters=_nlpia(25, 300)))),
    Preset("nlpia_bidirectional", "NLPIA ch. 8 (bidirectional, maxlen 100)", "val_accuracy",
           num_words=None, maxlen=100, epochs=2, batch_size=32, optimizer="rmsprop",
           learning_rate=0.001, embedding_dim=300,
           variants=(Variant("bidirectional_10", "nlpia_rnn", None,
                             hyperparameters=_nlpia(10, 300, bidirectional=True)),)),
    Preset("chollet_simplernn", "DLwP 6.2 (Embedding(10,000, 32), validation_split 0.2)",
           "best_val_accuracy", num_words=10_000, maxlen=500, epochs=10, batch_size=128,
           optimizer="rmsprop", learning_rate=0.001,
           variants=(Variant("simplernn_32", "dlwp_simple_rnn", 0.85, hyperparameters=_dlwp()),
                     Variant("four_stacked", "dlwp_simple_rnn", None,
                             "published: not better than one layer", _dlwp(4)),
                     Variant("bidirectional", "dlwp_simple_rnn", None,
                             hyperparameters=_dlwp(bidirectional=True)),
                     Variant("dropout_0.2", "dlwp_simple_rnn", None,
                             "published: overfits later, best accuracy not better",
                             _dlwp(dropout=0.2)))),
    Preset("lstm_5k", "5,000 training and 5,000 test reviews padded to 5,000 words",
           "test_accuracy", num_words=5_000, maxlen=5_000, epochs=5, batch_size=128,
           optimizer="rmsprop", learning_rate=0.001, subset=5_000,
           variants=(Variant("lstm_32", "lstm_5k", 0.838),)),
    Preset("small_vocab_four", "vocabulary 1,000, maxlen 100, embedding 16, adam",
           "test_accuracy", num_words=1_000, maxlen=100, epochs=10, batch_size=32,
           optimizer="adam", learning_rate=0.001,
           variants=(Variant("feedforward", "small_feedforward", 0.793),
                     Variant("two_simple_rnn", "small_two_simple_rnn", 0.791),
                     Variant("lstm_dense", "small_lstm", 0.832),
                     Variant("cnn_as_published", "small_cnn", 0.792,
                             "Dense(1) without sigmoid under binary cross-entropy",
                             {"sigmoid": False}),
                     Variant("cnn_sigmoid", "small_cnn", 0.792, "corrected: sigmoid output",
                             {"sigmoid": True}))),
)}


def get_preset(name: str) -> Preset:
    """The preset ``name``; an unknown name fails with the list of valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise PipelineError(f"unknown preset {name!r}; valid: "
                            f"{', '.join(sorted(PRESETS))}, elman_xor") from None
