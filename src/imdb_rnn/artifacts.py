"""What a trained model's folder holds, and the params and tags every tracked run records."""

from __future__ import annotations

import json

from imdb_rnn import tracking
from imdb_rnn.errors import PipelineError
from imdb_rnn.params import ModelSection, Params

MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
RUN_FILE = "run.json"
DATA_DIR = "data/vectorized"  # as declared in dvc.yaml; used only to look up its DVC hash


def model_section(params: Params, name: str) -> ModelSection:
    """The ``train.models.NAME`` section; an unknown name lists the valid ones."""
    try:
        return params.train.models[name]
    except KeyError:
        raise PipelineError(f"params.yaml: train.models has no model {name!r}; valid: "
                            f"{', '.join(params.train.models)}") from None


def run_params(params: Params, name: str) -> dict:
    """Every resolved param of one training run, flat, with the same names for every family."""
    section = model_section(params, name)
    return {
        "model": name,
        **section.model_dump(),
        "seed": params.train.seed,
        "monitor": params.train.monitor,
        "patience": params.train.patience,
        "max_features": params.vectorize.max_features,
        "lowercase": params.preprocess.lowercase,
        "punctuation": params.preprocess.punctuation,
        "split_seed": params.preprocess.split_seed,
        "val_fraction": params.preprocess.val_fraction,
    }


def run_tags(name: str, family: str, stage: str) -> dict[str, str]:
    return {"model": name, "family": family, "stage": stage,
            "git_commit": tracking.git_commit(), "data_md5": tracking.dvc_hash(DATA_DIR)}



def describe(result: dict) -> str:
    """One line of a result for the terminal."""
    return json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                       for k, v in result.items() if not isinstance(v, dict)})
