"""The one prediction path: positive-class probabilities of reviews, and trained model folders.

:func:`predict_probabilities` serves the evaluate stage, ``imdb-predict``, the seed replicates
and the reproduction presets. A model folder (written by the train stage) holds the model and
everything needed to turn raw text into its input: the vocabulary and the standardisation and
input settings; :class:`Predictor` is its one loader.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from imdb_rnn.data.text import standardize
from imdb_rnn.data.vectorize import VOCAB_FILE, Sequences, encode, load_vocabulary
from imdb_rnn.errors import PipelineError
from imdb_rnn.io import read_json
from imdb_rnn.layout import MODEL_FILE, PREPROCESSING_FILE
from imdb_rnn.modeling.inputs import InputShape, make_dataset
from imdb_rnn.modeling.registry import load_model


def predict_probabilities(model: keras.Model, sequences: Sequences, shape: InputShape,
                          batch_size: int) -> np.ndarray:
    """Positive-class probability for every review, in the order of ``sequences``."""
    if 0 < len(sequences) <= batch_size:
        # One batch (a served request, a few reviews on the command line): straight through
        # the model, without a tf.data pipeline and predict()'s loop (most of the latency).
        prepared = shape.prepare(sequences)
        batch = shape.batch(prepared, np.arange(len(prepared)))
        return np.asarray(model.predict_on_batch(batch), dtype=np.float32).reshape(-1)
    dataset, order = make_dataset(sequences, shape, batch_size, with_labels=False)
    out = np.empty(len(sequences), dtype=np.float32)
    if len(sequences):
        out[order] = model.predict(dataset, verbose=0).reshape(-1)
    return out


# What a model folder's preprocessing settings must hold.
SETTINGS = ("lowercase", "punctuation", "maxlen", "padding", "truncating", "fixed_length")


class Predictor:
    """A trained model folder (model, vocabulary, input settings), loaded once."""

    def __init__(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / MODEL_FILE).is_file():
            raise PipelineError(f"{model_dir}: no {MODEL_FILE} here (train the model first: "
                                f"dvc repro train@NAME)")
        self.settings = read_json(model_dir / PREPROCESSING_FILE, "preprocessing settings")
        missing = [k for k in SETTINGS if not isinstance(self.settings, dict)
                   or k not in self.settings]
        if missing:
            raise PipelineError(f"{model_dir / PREPROCESSING_FILE}: preprocessing settings lack "
                                f"{', '.join(missing)}")
        self.shape = InputShape.from_json(self.settings)
        try:
            self.vocabulary = load_vocabulary(model_dir / VOCAB_FILE)
        except (OSError, UnicodeDecodeError) as error:
            raise PipelineError(f"{model_dir / VOCAB_FILE}: cannot read the vocabulary "
                                f"({type(error).__name__})") from None
        if not zipfile.is_zipfile(model_dir / MODEL_FILE):  # what Keras 3 saves
            raise PipelineError(f"{model_dir / MODEL_FILE}: not a readable Keras model (not a "
                                "zip archive: truncated or overwritten?)")
        try:
            self.model = load_model(model_dir / MODEL_FILE)
        except Exception as error:  # Keras: ValueError, zipfile.BadZipFile, OSError, ...
            raise PipelineError(f"{model_dir / MODEL_FILE}: not a readable Keras model "
                                f"({type(error).__name__}: {str(error)[:100]})") from None

    def predict_sequences(self, sequences: Sequences, batch_size: int = 256) -> np.ndarray:
        """Positive-class probability per already vectorized review, in their order."""
        return predict_probabilities(self.model, sequences, self.shape, batch_size)

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Positive-class probability per raw text."""
        standardized = [standardize(t, lowercase=self.settings["lowercase"],
                                    punctuation=self.settings["punctuation"]) for t in texts]
        ids, offsets = encode(standardized, self.vocabulary)
        sequences = Sequences(ids, offsets, np.zeros(len(texts), np.int8),
                              np.arange(len(texts)).astype(str))
        return self.predict_sequences(sequences, batch_size)
