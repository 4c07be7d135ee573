"""The registry of model builders: one name per family, Keras 3 Functional API, uncompiled models.

Every builder takes ``vocab_size``, ``sequence_length`` (the fixed input length, or None for
batches of any length: the training path passes it from the input shape, never from a model
section) and keyword-only architecture hyperparameters whose names equal the architecture keys
of the family's section in ``params.yaml`` (and the Optuna trial parameter names), so best
params rebuild a model directly. The classic recipes of ``imdb_rnn.reproductions`` add their
builders here with :func:`register`.

Inputs are right-padded token ids (id 0 = padding). Recurrent families mask the padding; with
tanh/sigmoid, ``recurrent_dropout=0``, ``unroll=False`` and right padding, LSTM and GRU stay
eligible for the fast cuDNN kernel on a GPU. A non-zero
``recurrent_dropout`` or ``padding: pre`` switches that kernel off.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path

import keras
import numpy as np
from keras import layers

from imdb_rnn.errors import PipelineError
from imdb_rnn.data.vectorize import PAD_ID, log_count_ratio

_CELLS = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


class _OverSteps(layers.Layer):
    """A reduction over time steps that reads the mask of real steps and passes none on:
    (batch, time, features) -> (batch, features)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="imdb_rnn")
class MaskedGlobalMaxPooling1D(_OverSteps):
    """Max over time of the unmasked steps only (Keras' GlobalMaxPooling1D ignores the mask)."""

    def call(self, inputs, mask=None):  # inputs: (batch, time, features)
        if mask is not None:
            hidden = keras.ops.expand_dims(keras.ops.cast(mask, "bool"), -1)
            inputs = keras.ops.where(hidden, inputs, keras.ops.full_like(inputs, -1e9))
        return keras.ops.max(inputs, axis=1)


@keras.saving.register_keras_serializable(package="imdb_rnn")
class HashedNgrams(layers.Layer):
    """The ids of a review's word n-grams of 2 to ``ngram_max`` words, hashed into ``buckets``
    (fastText's n-gram features, Joulin et al. 2016): the hash of each run of n neighbouring
    words is ``h = (h * vocab_size + word) mod buckets`` over its words (for a bigram
    ``(first * vocab_size + second) mod buckets``), its id ``h + 1``; 0 where any of its words
    is padding. Out: (batch, sum over n of time - n + 1) int32, the bigrams first."""

    def __init__(self, buckets: int, vocab_size: int, ngram_max: int = 2,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.buckets, self.vocab_size, self.ngram_max = buckets, vocab_size, ngram_max

    def call(self, ids):
        ids = keras.ops.cast(ids, "int64")  # h * vocab_size overflows int32 past 46,340
        length = keras.ops.shape(ids)[1]
        grams = []
        for n in range(2, self.ngram_max + 1):
            count = keras.ops.maximum(length - n + 1, 0)  # n-grams in a row (0: too short)
            h = ids[:, :count]
            real = keras.ops.not_equal(h, PAD_ID)
            for k in range(1, n):
                word = ids[:, k:k + count]
                h = keras.ops.mod(h * self.vocab_size + word, self.buckets)
                real = keras.ops.logical_and(real, keras.ops.not_equal(word, PAD_ID))
            grams.append(keras.ops.where(real, h + 1, 0))
        out = grams[0] if len(grams) == 1 else keras.ops.concatenate(grams, axis=1)
        return keras.ops.cast(out, "int32")

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        if length is not None:
            length = sum(max(length - n + 1, 0) for n in range(2, self.ngram_max + 1))
        return (input_shape[0], length)

    def get_config(self):
        return {**super().get_config(), "buckets": self.buckets, "vocab_size": self.vocab_size,
                "ngram_max": self.ngram_max}


@keras.saving.register_keras_serializable(package="imdb_rnn")
class HashedBigrams(HashedNgrams):
    """:class:`HashedNgrams` of bigrams, under the name that models saved before ``ngram_max``
    existed (the fasttext model's, up to 41882c7) give the layer, so they still load."""

    def __init__(self, buckets: int, vocab_size: int, **kwargs: object) -> None:
        kwargs.pop("ngram_max", None)
        super().__init__(buckets, vocab_size, 2, **kwargs)


@keras.saving.register_keras_serializable(package="imdb_rnn")
class UniqueIds(layers.Layer):
    """Each review's ids once (binary features, as NBSVM's): sorted, every repeat turned into
    padding (0). Out: the input's shape."""

    def call(self, ids):
        ids = keras.ops.sort(ids, axis=1)
        repeat = keras.ops.concatenate(
            [keras.ops.zeros_like(ids[:, :1], dtype="bool"),
             keras.ops.equal(ids[:, 1:], ids[:, :-1])], axis=1)
        return keras.ops.where(repeat, keras.ops.zeros_like(ids), ids)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="imdb_rnn")
class NaiveBayesScale(layers.Layer):
    """Scales the vector of each id by ``scale`` times the id's naive-Bayes log-count ratio
    (Wang & Manning 2012): ``r = log((p / |p|1) / (q / |q|1))``, p and q the number of positive
    and negative training reviews holding the id, plus 1. An id found in fewer than
    ``MIN_REVIEWS`` training reviews, and the padding, get 0. The ratios are learned from the
    training split by :meth:`adapt` before training (the one training path calls it) and stay
    fixed; they are saved with the model. In: [ids (batch, time), vectors (batch, time, dim)]."""

    MIN_REVIEWS = 2

    def __init__(self, size: int, scale: float, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.size, self.scale = size, scale
        self.supports_masking = True

    def build(self, input_shape):
        self.ratios = self.add_weight(shape=(self.size,), initializer="zeros", trainable=False,
                                      name="ratios")

    def call(self, inputs):
        ids, vectors = inputs
        weight = keras.ops.take(self.ratios, ids, axis=0) * self.scale
        return vectors * keras.ops.expand_dims(keras.ops.cast(weight, vectors.dtype), -1)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[1]

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def adapt(self, batches) -> None:
        """Learn the ratios from ``batches`` of (ids, labels): each review's ids (its repeats
        already padding) and its label 0/1."""
        counts = np.zeros((2, self.size), np.int64)
        for ids, labels in batches:
            counts += self.count(ids, labels)
        self.set_counts(counts)

    def count(self, ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """(2, size): how many of the negative and positive reviews of a batch hold each id."""
        ids, labels = np.asarray(ids), np.asarray(labels)
        return np.stack([np.bincount(ids[labels == label].ravel(), minlength=self.size)
                         for label in (0, 1)])

    def set_counts(self, counts: np.ndarray) -> None:
        """The ratios from the training split's counts (:meth:`count` summed over batches)."""
        counts = counts.copy()
        counts[:, PAD_ID] = 0  # padding is no feature
        ratios = log_count_ratio(counts[1], counts[0], alpha=1.0)
        ratios[(counts.sum(axis=0) < self.MIN_REVIEWS) | (np.arange(self.size) == PAD_ID)] = 0.0
        self.ratios.assign(ratios.astype("float32"))

    def get_config(self):
        return {**super().get_config(), "size": self.size, "scale": self.scale}


@keras.saving.register_keras_serializable(package="imdb_rnn")
class MaskedSum(_OverSteps):
    """The sum over time of the unmasked steps (a bag of features' total: NBSVM's score)."""

    def call(self, inputs, mask=None):  # inputs: (batch, time, features)
        if mask is not None:
            inputs = inputs * keras.ops.expand_dims(keras.ops.cast(mask, inputs.dtype), -1)
        return keras.ops.sum(inputs, axis=1)


@keras.saving.register_keras_serializable(package="imdb_rnn")
class MaskedLast(_OverSteps):
    """The state at each review's last real step (right padding; the mask marks real steps)."""

    def call(self, inputs, mask=None):  # inputs: (batch, time, features)
        if mask is None:
            return inputs[:, -1, :]
        steps = keras.ops.sum(keras.ops.cast(mask, "int32"), axis=1)  # real steps per review
        last = keras.ops.maximum(steps - 1, 0)
        picked = keras.ops.take_along_axis(inputs, keras.ops.reshape(last, (-1, 1, 1)), axis=1)
        return keras.ops.squeeze(picked, 1)


def token_input(sequence_length: int | None) -> keras.KerasTensor:
    """The token-id input; length None lets batches be padded only to their longest review."""
    return keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")


def _output(x: keras.KerasTensor) -> keras.KerasTensor:
    # float32 output keeps the loss numerically safe under a mixed-precision policy.
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="positive_probability")(x)


def _hidden(x: keras.KerasTensor, units: int, dropout: float) -> keras.KerasTensor:
    if units > 0:
        x = layers.Dense(units, activation="relu", name="hidden")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="output_dropout")(x)
    return x


def build_feedforward(*, vocab_size: int, sequence_length: int | None, embedding_dim: int,
                      dropout: float, pooling: str, units: int, embedding_trainable: bool,
                      ngram_max: int, ngram_buckets: int, nb_scale: float) -> keras.Model:
    """Embedding, then Flatten (the classic recipe) or pooling over time, Dense, sigmoid.

    ``ngram_buckets`` > 0 adds the review's word n-grams of 2 to ``ngram_max`` words, hashed
    into that many buckets with an embedding of their own (learned from scratch), to the words
    it pools: fastText's bigram model when pooling is average and ``ngram_max`` 2.
    ``nb_scale`` > 0 reads each word and n-gram once per review and scales its vector by
    ``nb_scale`` times its naive-Bayes log-count ratio on the training split
    (:class:`NaiveBayesScale`): with pooling sum, ``embedding_dim`` 1 and ``units`` 0 the
    model is NBSVM trained as a network (Wang & Manning 2012; "NBSVM++" of fast.ai)."""
    flatten = pooling == "flatten"
    if flatten and sequence_length is None:
        raise PipelineError("feedforward with pooling flatten needs a fixed sequence_length")
    if flatten and (ngram_buckets or nb_scale):
        raise PipelineError("feedforward: ngram_buckets and nb_scale need pooling average, max "
                            "or sum, not flatten")
    if (ngram_max > 1) != (ngram_buckets > 0):
        raise PipelineError(f"feedforward: ngram_max {ngram_max} with ngram_buckets "
                            f"{ngram_buckets}: n-grams (ngram_max 2 or more) need buckets, "
                            "and buckets need ngram_max 2 or more")
    inputs = token_input(sequence_length)
    words = UniqueIds(name="unique_words")(inputs) if nb_scale else inputs
    x = layers.Embedding(vocab_size, embedding_dim, mask_zero=not flatten,
                         trainable=embedding_trainable, name="embedding")(words)
    if nb_scale:
        x = NaiveBayesScale(vocab_size, nb_scale, name="word_naive_bayes")([words, x])
    if ngram_buckets:
        grams = HashedNgrams(ngram_buckets, vocab_size, ngram_max, name="ngrams")(inputs)
        if nb_scale:
            grams = UniqueIds(name="unique_ngrams")(grams)
        gram_vectors = layers.Embedding(ngram_buckets + 1, embedding_dim, mask_zero=True,
                                        name="ngram_embedding")(grams)
        if nb_scale:
            gram_vectors = NaiveBayesScale(ngram_buckets + 1, nb_scale,
                                           name="ngram_naive_bayes")([grams, gram_vectors])
        x = layers.Concatenate(axis=1, name="words_and_ngrams")([x, gram_vectors])
    if flatten:
        x = layers.Flatten(name="flatten")(x)  # (batch, maxlen * embedding_dim)
    elif pooling == "average":
        x = layers.GlobalAveragePooling1D(name="average_pool")(x)  # masked mean
    elif pooling == "sum":
        x = MaskedSum(name="sum_pool")(x)
    else:
        x = MaskedGlobalMaxPooling1D(name="max_pool")(x)
    x = _hidden(x, units, dropout)
    return keras.Model(inputs, _output(x), name="feedforward")


def adapt(model: keras.Model, batches: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]
          ) -> None:
    """Fit the layers that learn from the training split before training (the naive-Bayes
    ratios of :class:`NaiveBayesScale`); ``batches()`` yields (token ids, labels) of the
    training split. A model without such layers is left as it is."""
    learners = [layer for layer in model.layers if isinstance(layer, NaiveBayesScale)]
    if not learners:
        return
    # each learner's ids, as the model computes them from the token ids; counted batch by batch
    probe = keras.Model(model.inputs, [layer.input[0] for layer in learners])
    counts = [np.zeros((2, layer.size), np.int64) for layer in learners]
    for x, y in batches():
        ids = probe.predict_on_batch(x)
        for total, layer, layer_ids in zip(counts, learners, ids if len(learners) > 1 else [ids],
                                           strict=True):
            total += layer.count(layer_ids, y)
    for layer, total in zip(learners, counts, strict=True):
        layer.set_counts(total)


def build_cnn(*, vocab_size: int, sequence_length: int | None, embedding_dim: int,
              dropout: float, filters: int, kernel_size: int, kernel_widths: int,
              num_layers: int, units: int, embedding_trainable: bool) -> keras.Model:
    """Embedding, ``num_layers`` x Conv1D (max-pooled between layers), global max pool, Dense.

    The first convolution runs ``kernel_widths`` widths side by side, ``filters`` filters each:
    ``kernel_size``, ``kernel_size - 1``, ... (Kim 2014: 3, 4 and 5); 1 = one width.
    Padding is zeroed before every convolution and left out of every pooling, so a review's
    score does not depend on how far its batch is padded.
    """
    if not 1 <= kernel_widths <= kernel_size:
        raise PipelineError(f"cnn: kernel_widths {kernel_widths} must be 1 to kernel_size "
                            f"({kernel_size}): the widths are kernel_size, kernel_size - 1, ...")
    inputs = token_input(sequence_length)
    x = layers.Embedding(vocab_size, embedding_dim, trainable=embedding_trainable,
                         name="embedding")(inputs)
    # (batch, time, 1): 1 on real tokens, 0 on padding
    keep = keras.ops.expand_dims(keras.ops.cast(keras.ops.not_equal(inputs, PAD_ID), x.dtype), -1)
    for i in range(num_layers):
        if i > 0:
            x = layers.MaxPooling1D(2, padding="same", name=f"pool_{i}")(x)
            keep = layers.MaxPooling1D(2, padding="same", name=f"pool_{i}_mask")(keep)
        # "same" padding: a batch of short reviews is never shorter than the kernel.
        widths = range(kernel_size, kernel_size - kernel_widths, -1) if i == 0 else [kernel_size]
        branches = [layers.Conv1D(filters, width, padding="same", activation="relu",
                                  name=f"conv_{i + 1}" + (f"_width_{width}" if len(widths) > 1
                                                          else ""))(x * keep)
                    for width in widths]  # each (batch, time, filters)
        x = branches[0] if len(branches) == 1 else layers.Concatenate(name="conv_1_widths")(
            branches)
    x = MaskedGlobalMaxPooling1D(name="max_pool")(x, mask=keras.ops.squeeze(keep, -1))
    x = _hidden(x, units, dropout)
    return keras.Model(inputs, _output(x), name="cnn")


def _recurrent_stack(x: keras.KerasTensor, make_layer: Callable[[bool, int], layers.Layer],
                     num_layers: int, pooling: str) -> keras.KerasTensor:
    for i in range(num_layers):
        last = i == num_layers - 1
        x = make_layer(not last or pooling != "last", i)(x)
    if pooling == "max":
        x = MaskedGlobalMaxPooling1D(name="max_pool")(x)
    elif pooling == "mean":
        x = layers.GlobalAveragePooling1D(name="mean_pool")(x)  # masked mean
    elif pooling == "concat":  # Howard & Ruder 2018: the last state, max and mean over steps
        x = layers.Concatenate(name="concat_pool")([
            MaskedLast(name="last_state")(x), MaskedGlobalMaxPooling1D(name="max_pool")(x),
            layers.GlobalAveragePooling1D(name="mean_pool")(x)])
    return x


def _recurrent(family: str, *, vocab_size: int, sequence_length: int | None, embedding_dim: int,
               dropout: float, units: int, num_layers: int, recurrent_dropout: float,
               pooling: str, embedding_trainable: bool, bidirectional: bool = False
               ) -> keras.Model:
    cell = _CELLS[family]
    inputs = token_input(sequence_length)
    x = layers.Embedding(vocab_size, embedding_dim, mask_zero=True,
                         trainable=embedding_trainable, name="embedding")(inputs)
    if dropout > 0:
        x = layers.Dropout(dropout, name="embedding_dropout")(x)

    def make_layer(return_sequences: bool, i: int) -> layers.Layer:
        rnn = cell(units, return_sequences=return_sequences, recurrent_dropout=recurrent_dropout,
                   name=f"{family}_{i + 1}")
        return layers.Bidirectional(rnn, name=f"bidirectional_{i + 1}") if bidirectional else rnn

    x = _recurrent_stack(x, make_layer, num_layers, pooling)
    if dropout > 0:
        x = layers.Dropout(dropout, name="output_dropout")(x)
    name = f"bidirectional_{family}" if bidirectional else family
    return keras.Model(inputs, _output(x), name=name)


def build_simple_rnn(*, vocab_size: int, sequence_length: int | None, embedding_dim: int,
                     dropout: float, units: int, num_layers: int, recurrent_dropout: float,
                     pooling: str, embedding_trainable: bool) -> keras.Model:
    """Embedding, ``num_layers`` stacked SimpleRNN, sigmoid output."""
    return _recurrent("simple_rnn", vocab_size=vocab_size, sequence_length=sequence_length,
                      embedding_dim=embedding_dim, dropout=dropout, units=units,
                      num_layers=num_layers, recurrent_dropout=recurrent_dropout,
                      pooling=pooling, embedding_trainable=embedding_trainable)


def build_lstm(*, vocab_size: int, sequence_length: int | None, embedding_dim: int,
               dropout: float, units: int, num_layers: int, recurrent_dropout: float,
               pooling: str, embedding_trainable: bool) -> keras.Model:
    """Embedding, ``num_layers`` stacked LSTM, sigmoid output."""
    return _recurrent("lstm", vocab_size=vocab_size, sequence_length=sequence_length,
                      embedding_dim=embedding_dim, dropout=dropout, units=units,
                      num_layers=num_layers, recurrent_dropout=recurrent_dropout,
                      pooling=pooling, embedding_trainable=embedding_trainable)


def build_gru(*, vocab_size: int, sequence_length: int | None, embedding_dim: int,
              dropout: float, units: int, num_layers: int, recurrent_dropout: float,
              pooling: str, embedding_trainable: bool) -> keras.Model:
    """Embedding, ``num_layers`` stacked GRU, sigmoid output."""
    return _recurrent("gru", vocab_size=vocab_size, sequence_length=sequence_length,
                      embedding_dim=embedding_dim, dropout=dropout, units=units,
                      num_layers=num_layers, recurrent_dropout=recurrent_dropout,
                      pooling=pooling, embedding_trainable=embedding_trainable)


def build_bidirectional(*, vocab_size: int, sequence_length: int | None, embedding_dim: int,
                        dropout: float, units: int, cell: str, num_layers: int,
                        recurrent_dropout: float, pooling: str,
                        embedding_trainable: bool) -> keras.Model:
    """Embedding, ``num_layers`` Bidirectional(SimpleRNN, LSTM or GRU), sigmoid output."""
    return _recurrent(cell, vocab_size=vocab_size, sequence_length=sequence_length,
                      embedding_dim=embedding_dim, dropout=dropout, units=units,
                      num_layers=num_layers, recurrent_dropout=recurrent_dropout,
                      pooling=pooling, embedding_trainable=embedding_trainable,
                      bidirectional=True)


MODEL_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "feedforward": build_feedforward,
    "cnn": build_cnn,
    "simple_rnn": build_simple_rnn,
    "bidirectional": build_bidirectional,
    "lstm": build_lstm,
    "gru": build_gru,
}
# The families of train.models (the pipeline's own); register() adds the presets' builders.
PIPELINE_FAMILIES = tuple(MODEL_BUILDERS)
# Arguments every builder takes that are not architecture hyperparameters.
INPUT_ARGUMENTS = frozenset({"vocab_size", "sequence_length"})


def register(name: str) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
    """Add a builder to the registry under ``name`` (a decorator); names are unique."""

    def add(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if MODEL_BUILDERS.get(name, builder) is not builder:
            raise ValueError(f"model family {name!r} is registered already")
        MODEL_BUILDERS[name] = builder
        return builder

    return add


def builder_arguments(family: str) -> set[str]:
    """Names of the architecture keywords a family's builder takes."""
    return set(inspect.signature(get_builder(family)).parameters) - INPUT_ARGUMENTS


def get_builder(family: str) -> Callable[..., keras.Model]:
    """The builder for ``family``; an unknown name fails with the list of valid ones."""
    try:
        return MODEL_BUILDERS[family]
    except KeyError:
        raise PipelineError(f"unknown model family {family!r}; valid: "
                            f"{', '.join(sorted(MODEL_BUILDERS))}") from None


def build_model(family: str, *, vocab_size: int, sequence_length: int | None = None,
                **hyperparameters: object) -> keras.Model:
    """Build an uncompiled model of ``family``; unknown or missing keywords are named."""
    expected = builder_arguments(family)
    unknown, missing = set(hyperparameters) - expected, expected - set(hyperparameters)
    if unknown or missing:
        problem = "; ".join(f"{what} hyperparameter(s) {', '.join(sorted(keys))}"
                            for what, keys in (("unknown", unknown), ("missing", missing)) if keys)
        raise PipelineError(f"{family}: {problem}; valid: {', '.join(sorted(expected))}")
    return get_builder(family)(vocab_size=vocab_size, sequence_length=sequence_length,
                               **hyperparameters)


def load_model(path: str | Path) -> keras.Model:
    """Load a saved ``.keras`` model; importing this module registers the custom layers."""
    return keras.models.load_model(path)
