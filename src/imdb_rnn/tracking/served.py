"""What a logged model of this project runs when it is loaded: no pickle, only this code.

Every network and the TF-IDF reference is logged as an MLflow "model from code": the logged
model holds a three-line file of ``imdb_rnn/tracking/model_code/`` (which calls
:func:`mlflow.models.set_model` on one of the classes below) and plain data: the network's model
folder (a Keras ``.keras`` archive, loaded with Keras' safe mode, its vocabulary and settings
as text and JSON) or the reference's vocabulary and weights (``.npz`` read without pickle, and
JSON). Loading ``models:/imdb-sentiment@champion`` thus imports ``imdb_rnn`` from the
environment that loads it, never code or pickles from the tracking store.

Both refuse what is not a review (:func:`imdb_rnn.data.text.checked_reviews`: empty,
whitespace or markup only, not text, too long) with an MlflowException of error code
INVALID_PARAMETER_VALUE, which the scoring server of ``mlflow models serve`` answers with a 400
whose JSON ``message`` is the one-line reason. A number cannot pass as text: the signature
declares ``review`` as MLflow's ``Any`` type, whose schema check passes values on as sent (a
``string`` column would turn ``{"inputs": [42]}`` into "42" before ``predict`` sees it). One
gap is MLflow's: ``instances`` as records that mix text and numbers
(``[{"review": "a"}, {"review": 2}]``) become one NumPy array of text while parsed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from imdb_rnn.data.text import checked_reviews, standardize

INPUT_COLUMN = "review"
OUTPUT_COLUMN = "positive_probability"
LABEL_COLUMN = "label"  # "pos" at a positive probability of 0.5 or more, else "neg"
THRESHOLD = 0.5
# The reference's files inside its logged model's artifact "reference".
REFERENCE_WEIGHTS = "weights.npz"
REFERENCE_SETTINGS = "settings.json"


class RefusedInput(MlflowException):
    """A request that holds something other than reviews: a 400 of the scoring server whose
    JSON message is ``reason`` alone (one line, no stack trace, nothing of the input echoed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, error_code=INVALID_PARAMETER_VALUE)
        # The scoring server prefixes the message with the request's data (a DataFrame repr
        # over several lines); the JSON body takes its fields from these keyword values last.
        self.json_kwargs["message"] = reason


def review_texts(model_input: Any) -> list[str]:
    """The reviews of what pyfunc's predict receives (a DataFrame with the review column, a
    Series, a list, an array or a single string); RefusedInput naming the first bad row."""
    if isinstance(model_input, pd.DataFrame):
        if INPUT_COLUMN not in model_input.columns:
            raise RefusedInput(f"input has no column {INPUT_COLUMN!r} (columns: "
                               f"{', '.join(map(str, model_input.columns))[:200]})")
        values = model_input[INPUT_COLUMN].tolist()
        if len(values) == 1 and isinstance(values[0], list | tuple | np.ndarray):
            # {"inputs": ["a", "b"]} reaches predict as one row holding the list (the schema's
            # Any type keeps lists whole)
            values = list(values[0])
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, dict):
        values = model_input.get(INPUT_COLUMN)
        if not isinstance(values, list | tuple | np.ndarray | pd.Series):
            raise RefusedInput(f"input has no list {INPUT_COLUMN!r}")
        values = list(values)
    else:
        values = list(np.asarray(model_input, dtype=object).reshape(-1)) if isinstance(
            model_input, np.ndarray) else list(model_input)
    try:
        return checked_reviews(values)
    except ValueError as error:
        raise RefusedInput(str(error)) from None


def probabilities_frame(probabilities: np.ndarray) -> pd.DataFrame:
    """What every logged model answers, the reference's too: per review its positive
    probability and the label it implies (``{"positive_probability": p, "label": "pos"}``)."""
    p = np.asarray(probabilities, dtype=np.float64)
    return pd.DataFrame({OUTPUT_COLUMN: p,
                         LABEL_COLUMN: np.where(p >= THRESHOLD, "pos", "neg").astype(object)})


class ReviewSentiment(mlflow.pyfunc.PythonModel):
    """A trained network with its text preprocessing (artifact ``model_dir``: a model folder
    of the train stage): reviews in, positive probability out."""

    # The signature gives the input schema; without this MLflow asks for type hints on predict.
    _skip_type_hint_validation = True

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from imdb_rnn.modeling.predict import Predictor

        self._predictor = Predictor(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        return probabilities_frame(self._predictor.predict(review_texts(model_input)))


def save_reference(folder: Path, *, terms: list[str], idf: np.ndarray, coef: np.ndarray,
                   intercept: float, settings: dict) -> None:
    """The TF-IDF + logistic regression reference as plain data: its terms (the column order),
    their idf, the coefficients and intercept (``.npz``, no pickle) and its text settings."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / REFERENCE_WEIGHTS, terms=np.asarray(terms, dtype=np.str_),
                        idf=np.asarray(idf, np.float64), coef=np.asarray(coef, np.float64),
                        intercept=np.asarray([intercept], np.float64))
    (folder / REFERENCE_SETTINGS).write_text(json.dumps(settings, indent=2, sort_keys=True))


class TfidfReference:
    """The reference's scoring rebuilt from its plain data: standardise as the pipeline does,
    count the word n-grams of its vocabulary, sublinear tf times idf, L2 norm, logistic."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.settings = json.loads((folder / REFERENCE_SETTINGS).read_text())
        with np.load(folder / REFERENCE_WEIGHTS, allow_pickle=False) as weights:
            terms = weights["terms"].tolist()
            self.idf = weights["idf"]
            self.coef = weights["coef"]
            self.intercept = float(weights["intercept"][0])
        self.index = {term: column for column, term in enumerate(terms)}
        self.ngram_max = int(self.settings["ngram_max"])

    def _ngrams(self, tokens: list[str]) -> list[str]:
        """Word n-grams of 1 to ngram_max tokens joined by a space (scikit-learn's order)."""
        grams = list(tokens)
        for n in range(2, min(self.ngram_max, len(tokens)) + 1):
            grams.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        return grams

    def predict(self, texts: list[str]) -> np.ndarray:
        out = np.empty(len(texts), dtype=np.float64)
        for row, text in enumerate(texts):
            tokens = standardize(text, lowercase=self.settings["lowercase"],
                                 punctuation=self.settings["punctuation"]).split()
            counts: dict[int, int] = {}
            for gram in self._ngrams(tokens):
                column = self.index.get(gram)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            if self.settings["sublinear_tf"]:
                tf = np.log(tf) + 1.0
            weights = tf * self.idf[columns]
            norm = np.sqrt(np.sum(weights ** 2))
            if norm > 0:
                weights = weights / norm
            out[row] = float(weights @ self.coef[columns]) + self.intercept
        return 1.0 / (1.0 + np.exp(-out))


class ReferenceSentiment(mlflow.pyfunc.PythonModel):
    """The TF-IDF reference (artifact ``reference``: :func:`save_reference`'s folder)."""

    _skip_type_hint_validation = True

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self._reference = TfidfReference(context.artifacts["reference"])

    def predict(self, context, model_input, params=None):
        return probabilities_frame(self._reference.predict(review_texts(model_input)))
