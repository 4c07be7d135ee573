"""What a trained model's folder holds, and the params every tracked training run records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from imdb_rnn.errors import PipelineError
from imdb_rnn.params import ModelSection, Params

MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
RUN_FILE = "run.json"


def model_section(params: Params, name: str) -> ModelSection:
    """The ``train.models.NAME`` section; an unknown name lists the valid ones."""
    try:
        return params.train.models[name]
    except KeyError:
        raise PipelineError(f"params.yaml: train.models has no model {name!r}; valid: "
                            f"{', '.join(params.train.models)}") from None


def run_params(params: Params, name: str, section: ModelSection | None = None) -> dict:
    """Every resolved param of one training run, flat, with the same names for every family.

    Upstream data params are recorded too, so a run says which data it saw.
    """
    return {
        "model": name,
        **(section or model_section(params, name)).model_dump(),
        "seed": params.train.seed,
        "monitor": params.train.monitor,
        "patience": params.train.patience,
        "max_features": params.vectorize.max_features,
        "lowercase": params.preprocess.lowercase,
        "punctuation": params.preprocess.punctuation,
        "split_seed": params.preprocess.split_seed,
        "val_fraction": params.preprocess.val_fraction,
    }


def read_table(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """Read columns of the reviews table; a missing or unreadable file is a one-line error."""
    try:
        return pd.read_parquet(path, columns=columns)
    except FileNotFoundError:
        raise PipelineError(f"{path}: reviews table not found (run the preprocess stage)") from None
    except Exception as error:  # pyarrow's errors for a corrupt file or missing columns
        raise PipelineError(f"{path}: cannot read the reviews table ({error})") from None


def describe(result: dict) -> str:
    """One line of a result for the terminal."""
    return json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                       for k, v in result.items() if not isinstance(v, dict)})
