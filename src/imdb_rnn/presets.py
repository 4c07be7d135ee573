"""The classic IMDB recipes of textbooks and tutorials, as named presets beside their published numbers.

Each preset is the recipe as published: its vocabulary size, ``maxlen``, split, optimiser,
batch size, epochs and one or more model variants, each with the number the source reports.
Builders use the Keras Functional API and return uncompiled models. As in the classic
examples, inputs are padded and truncated at the front to a fixed ``maxlen`` and nothing is
masked (id 0 is padding, id 1 an out-of-vocabulary word). ``imdb_rnn.reproduce`` runs them.

Sources: NLPIA = Lane, Howard & Hapke, *Natural Language Processing in Action* (ch. 8-9);
DLwP = Chollet, *Deep Learning with Python* (1st ed., ch. 6); the 5,000-review LSTM and the
four small-vocabulary models are the figures the baseline issue compares with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers

from imdb_rnn.errors import PipelineError


@dataclass(frozen=True)
class Variant:
    """One model of a preset and the number its source reports for it (None: none reported)."""

    name: str
    build: Callable[[int], keras.Model]  # vocabulary size -> uncompiled model
    published: float | None
    note: str = ""


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


def _seq(maxlen: int) -> keras.KerasTensor:
    return keras.Input(shape=(maxlen,), dtype="int32", name="token_ids")


def _sigmoid(x: keras.KerasTensor) -> keras.KerasTensor:
    return layers.Dense(1, activation="sigmoid", name="positive_probability")(x)


def nlpia_head(units: int, maxlen: int, dim: int, *, bidirectional: bool = False
               ) -> Callable[[int], keras.Model]:
    """NLPIA: SimpleRNN(units, return_sequences) [bidirectional], Dropout(0.2), Flatten, sigmoid."""

    def build(vocab_size: int) -> keras.Model:
        inputs = _seq(maxlen)
        x = layers.Embedding(vocab_size, dim, name="embedding")(inputs)  # (batch, time, dim)
        rnn = layers.SimpleRNN(units, return_sequences=True, name="simple_rnn")
        x = (layers.Bidirectional(rnn, name="bidirectional") if bidirectional else rnn)(x)
        x = layers.Dropout(0.2, name="dropout")(x)
        x = layers.Flatten(name="flatten")(x)  # (batch, time * units)
        return keras.Model(inputs, _sigmoid(x), name=f"nlpia_rnn_{units}")

    return build


def dlwp_simple_rnn(*, layers_count: int = 1, bidirectional: bool = False, dropout: float = 0.0
                    ) -> Callable[[int], keras.Model]:
    """DLwP 6.2: Embedding(32), SimpleRNN(32) (stacked, bidirectional or with dropout), sigmoid."""

    def build(vocab_size: int) -> keras.Model:
        inputs = _seq(500)
        x = layers.Embedding(vocab_size, 32, name="embedding")(inputs)
        for i in range(layers_count):
            rnn = layers.SimpleRNN(32, return_sequences=i < layers_count - 1, dropout=dropout,
                                   recurrent_dropout=dropout, name=f"simple_rnn_{i + 1}")
            x = (layers.Bidirectional(rnn, name="bidirectional") if bidirectional else rnn)(x)
        return keras.Model(inputs, _sigmoid(x), name="dlwp_simple_rnn")

    return build


def lstm_5k(vocab_size: int) -> keras.Model:
    """Embedding(5,000, 32), LSTM(32), sigmoid, over reviews padded to 5,000 words."""
    inputs = _seq(5000)
    x = layers.Embedding(vocab_size, 32, name="embedding")(inputs)
    x = layers.LSTM(32, name="lstm")(x)
    return keras.Model(inputs, _sigmoid(x), name="lstm_5k")


def small_feedforward(vocab_size: int) -> keras.Model:
    """Embedding(1,000, 16) over 100 words, Flatten, sigmoid."""
    inputs = _seq(100)
    x = layers.Embedding(vocab_size, 16, name="embedding")(inputs)
    return keras.Model(inputs, _sigmoid(layers.Flatten(name="flatten")(x)), name="feedforward")


def small_two_simple_rnn(vocab_size: int) -> keras.Model:
    """Embedding(16), two stacked SimpleRNN(32), sigmoid."""
    inputs = _seq(100)
    x = layers.Embedding(vocab_size, 16, name="embedding")(inputs)
    x = layers.SimpleRNN(32, return_sequences=True, name="simple_rnn_1")(x)
    x = layers.SimpleRNN(32, name="simple_rnn_2")(x)
    return keras.Model(inputs, _sigmoid(x), name="two_simple_rnn")


def small_lstm(vocab_size: int) -> keras.Model:
    """Embedding(16), LSTM(32), Dense(32, relu), Dropout(0.2), sigmoid."""
    inputs = _seq(100)
    x = layers.Embedding(vocab_size, 16, name="embedding")(inputs)
    x = layers.LSTM(32, name="lstm")(x)
    x = layers.Dense(32, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    return keras.Model(inputs, _sigmoid(x), name="lstm")


def small_cnn(*, sigmoid: bool) -> Callable[[int], keras.Model]:
    """Conv1D(32, 7), MaxPooling1D(5), Conv1D(32, 7), global max pool, Dense(1).

    As published, the output Dense(1) has no activation although the loss is binary
    cross-entropy on probabilities (Keras clips the raw score into (0, 1)); ``sigmoid=True`` is
    the corrected model.
    """

    def build(vocab_size: int) -> keras.Model:
        inputs = _seq(100)
        x = layers.Embedding(vocab_size, 16, name="embedding")(inputs)
        x = layers.Conv1D(32, 7, activation="relu", name="conv_1")(x)
        x = layers.MaxPooling1D(5, name="pool")(x)
        x = layers.Conv1D(32, 7, activation="relu", name="conv_2")(x)
        x = layers.GlobalMaxPooling1D(name="max_pool")(x)
        out = layers.Dense(1, activation="sigmoid" if sigmoid else None,
                           name="positive_probability")(x)
        return keras.Model(inputs, out, name="cnn_sigmoid" if sigmoid else "cnn_as_published")

    return build


def elman_xor() -> keras.Model:
    """Elman's network on XOR as a sequence: 1 step of 2 features, SimpleRNN(2), Dense(1, tanh)."""
    inputs = keras.Input(shape=(1, 2), name="pair")
    x = layers.SimpleRNN(2, name="simple_rnn")(inputs)
    return keras.Model(inputs, layers.Dense(1, activation="tanh", name="output")(x),
                       name="elman_xor")


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("nlpia_simplernn", "NLPIA ch. 8 (word2vec 300-d inputs, 80/20 split of train)",
           "val_accuracy", num_words=None, maxlen=400, epochs=2, batch_size=32,
           optimizer="rmsprop", learning_rate=0.001, embedding_dim=300,
           variants=(Variant("simplernn_50", nlpia_head(50, 400, 300), 0.782),
                     Variant("simplernn_100", nlpia_head(100, 400, 300), 0.7824),
                     Variant("simplernn_25", nlpia_head(25, 400, 300), 0.797))),
    Preset("nlpia_bidirectional", "NLPIA ch. 8 (bidirectional, maxlen 100)", "val_accuracy",
           num_words=None, maxlen=100, epochs=2, batch_size=32, optimizer="rmsprop",
           learning_rate=0.001, embedding_dim=300,
           variants=(Variant("bidirectional_10", nlpia_head(10, 100, 300, bidirectional=True),
                             None),)),
    Preset("chollet_simplernn", "DLwP 6.2 (Embedding(10,000, 32), validation_split 0.2)",
           "best_val_accuracy", num_words=10_000, maxlen=500, epochs=10, batch_size=128,
           optimizer="rmsprop", learning_rate=0.001,
           variants=(Variant("simplernn_32", dlwp_simple_rnn(), 0.85),
                     Variant("four_stacked", dlwp_simple_rnn(layers_count=4), None,
                             "published: not better than one layer"),
                     Variant("bidirectional", dlwp_simple_rnn(bidirectional=True), None),
                     Variant("dropout_0.2", dlwp_simple_rnn(dropout=0.2), None,
                             "published: overfits later, best accuracy not better"))),
    Preset("lstm_5k", "5,000 training and 5,000 test reviews padded to 5,000 words",
           "test_accuracy", num_words=5_000, maxlen=5_000, epochs=5, batch_size=128,
           optimizer="rmsprop", learning_rate=0.001, subset=5_000,
           variants=(Variant("lstm_32", lstm_5k, 0.838),)),
    Preset("small_vocab_four", "vocabulary 1,000, maxlen 100, embedding 16, adam",
           "test_accuracy", num_words=1_000, maxlen=100, epochs=10, batch_size=32,
           optimizer="adam", learning_rate=0.001,
           variants=(Variant("feedforward", small_feedforward, 0.793),
                     Variant("two_simple_rnn", small_two_simple_rnn, 0.791),
                     Variant("lstm_dense", small_lstm, 0.832),
                     Variant("cnn_as_published", small_cnn(sigmoid=False), 0.792,
                             "Dense(1) without sigmoid under binary cross-entropy"),
                     Variant("cnn_sigmoid", small_cnn(sigmoid=True), 0.792,
                             "corrected: sigmoid output"))),
)}


def get_preset(name: str) -> Preset:
    """The preset ``name``; an unknown name fails with the list of valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise PipelineError(f"unknown preset {name!r}; valid: "
                            f"{', '.join(sorted(PRESETS))}, elman_xor") from None
