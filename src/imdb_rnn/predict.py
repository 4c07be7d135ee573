"""``imdb-predict``: positive-class probability of raw review text for any trained model.

    imdb-predict models/lstm "A wonderful, moving film." "Two hours I will never get back."
    cat reviews.txt | imdb-predict models/cnn        # one review per line

The model folder (written by the train stage) holds the model and everything needed to turn raw
text into its input: the vocabulary and the standardisation and padding settings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imdb_rnn.errors import PipelineError
from imdb_rnn.io import read_json
from imdb_rnn.text import standardize
from imdb_rnn.vectorize import VOCAB_FILE, Sequences, encode, load_vocabulary


class Predictor:
    """A trained model folder (model, vocabulary, input settings), loaded once.

    The one loader of a model folder: ``imdb-predict`` and the evaluate stage both use it.
    """

    def __init__(self, model_dir: str | Path) -> None:
        from imdb_rnn.models import load_model
        from imdb_rnn.training import InputShape
        from imdb_rnn.artifacts import MODEL_FILE, PREPROCESSING_FILE

        model_dir = Path(model_dir)
        if not (model_dir / MODEL_FILE).is_file():
            raise PipelineError(f"{model_dir}: no {MODEL_FILE} here (train the model first: "
                                f"dvc repro train@NAME)")
        self.settings = read_json(model_dir / PREPROCESSING_FILE, "preprocessing settings")
        self.vocabulary = load_vocabulary(model_dir / VOCAB_FILE)
        self.model = load_model(model_dir / MODEL_FILE)
        s = self.settings
        self.shape = InputShape(s["maxlen"], s["padding"], s["truncating"], s["fixed_length"])

    def predict_sequences(self, sequences: Sequences, batch_size: int = 256) -> np.ndarray:
        """Positive-class probability per already vectorized review, in their order."""
        from imdb_rnn.training import predict_probabilities

        return predict_probabilities(self.model, sequences, self.shape, batch_size)

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Positive-class probability per raw text."""
        standardized = [standardize(t, lowercase=self.settings["lowercase"],
                                    punctuation=self.settings["punctuation"]) for t in texts]
        ids, offsets = encode(standardized, self.vocabulary)
        sequences = Sequences(ids, offsets, np.zeros(len(texts), np.int8),
                              np.arange(len(texts)).astype(str))
        return self.predict_sequences(sequences, batch_size)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="imdb-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a trained model folder, e.g. models/lstm")
    parser.add_argument("texts", nargs="*", help="reviews; none: read one per line from stdin")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability from which a review is called positive (default 0.5)")
    args = parser.parse_args(argv)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise PipelineError("no review text given (pass it as arguments or on stdin)")
    for text, probability in zip(texts, Predictor(args.model_dir).predict(texts), strict=True):
        label = "pos" if probability >= args.threshold else "neg"
        print(f"{probability:.4f}\t{label}\t{text[:70]}")


def cli() -> None:
    from imdb_rnn.cli import stage_main

    stage_main(main)
