"""MLflow Models, datasets and the model registry: raw review text in, probability out.

Every trained network is logged as an MLflow 3 logged model of the ``python_function`` flavour:
:class:`ReviewSentiment` wraps its model folder (Keras model, vocabulary, text standardisation
and input settings), and the ``imdb_rnn`` package travels with it (``code_paths``), so

    mlflow.pyfunc.load_model("models:/imdb-sentiment@champion").predict(
        pd.DataFrame({"review": ["A wonderful, moving film."]}))

and ``mlflow models serve -m models:/imdb-sentiment@champion --env-manager local`` answer raw
text with the same probabilities as ``imdb-predict``. The TF-IDF reference is logged with the
scikit-learn flavour, standardisation included. Data splits are logged as dataset inputs whose
digest is the split file's DVC hash (the md5 of its content).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema

import imdb_rnn
from imdb_rnn.errors import PipelineError
from imdb_rnn.tracking.runs import (STORE_ERRORS, Experiment, Run, _one_line, environment,
                                    store_failure)

INPUT_COLUMN = "review"
OUTPUT_COLUMN = "positive_probability"
SIGNATURE = ModelSignature(inputs=Schema([ColSpec("string", INPUT_COLUMN)]),
                           outputs=Schema([ColSpec("double", OUTPUT_COLUMN)]))
INPUT_EXAMPLE = pd.DataFrame({INPUT_COLUMN: ["A wonderful, moving film.",
                                             "Two hours I will never get back."]})
# The package every logged model carries (code_paths), so it loads without a checkout.
PACKAGE_DIR = str(Path(imdb_rnn.__file__).parent)
# The name of every logged model inside its run: runs:/RUN_ID/model
MODEL_NAME = "model"
# What serving a network needs besides MLflow (pinned to the versions that trained it).
_REQUIREMENTS = ("keras", "tensorflow-cpu", "tensorflow", "numpy", "pandas")


def _texts(model_input: Any) -> list[str]:
    """Review texts from what pyfunc's predict receives (a DataFrame with the review column, a
    Series, a list or a single string); a non-text value is named by its row."""
    if isinstance(model_input, pd.DataFrame):
        if INPUT_COLUMN not in model_input.columns:
            raise ValueError(f"input has no column {INPUT_COLUMN!r} (columns: "
                             f"{', '.join(map(str, model_input.columns))})")
        values = model_input[INPUT_COLUMN].tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        values = list(model_input)
    for row, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"review at row {row} is {type(value).__name__}, not text")
    return values


class ReviewSentiment(mlflow.pyfunc.PythonModel):
    """A trained network with its text preprocessing: reviews in, positive probability out."""

    # The signature gives the input schema; without this MLflow asks for type hints on predict
    # (a warning on every import, which no filter silences: MLflow resets them).
    _skip_type_hint_validation = True

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from imdb_rnn.modeling.predict import Predictor

        self._predictor = Predictor(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        probabilities = self._predictor.predict(_texts(model_input))
        return pd.DataFrame({OUTPUT_COLUMN: probabilities.astype(np.float64)})


def requirements() -> list[str]:
    """pip requirements of a served network: the installed versions of what it imports."""
    pinned = []
    for name in _REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            pinned.append(f"{name}=={metadata.version(name)}")
    return pinned


@contextlib.contextmanager
def _tracking(experiment: Experiment) -> Iterator[None]:
    """MLflow's model logging reads the global tracking URI and active experiment (the logged
    model belongs to that experiment): point them at ``experiment`` meanwhile."""
    with environment(MLFLOW_TRACKING_URI=experiment.uri, MLFLOW_EXPERIMENT_ID=experiment.id):
        mlflow.set_tracking_uri(experiment.uri)
        try:
            yield
        except STORE_ERRORS as error:
            raise store_failure(experiment.uri, error) from None
        finally:
            mlflow.set_tracking_uri(None)  # no global: the environment (restored) again


def log_network(experiment: Experiment, run: Run, model_dir: Path, files: Sequence[str],
                tags: Mapping[str, str] | None = None) -> str:
    """Log the model folder ``model_dir`` (its ``files``: what the served model loads) as the
    run's MLflow Model; returns its model id.

    The run's params and its step-0 metrics are attached to the logged model; the input example
    is predicted once while logging (the model is checked to serve).
    """
    with _tracking(experiment), tempfile.TemporaryDirectory() as staging:
        # A copy under a plain name: the folder may be a hidden temporary (.NAME.tmp-...),
        # which the logged model's artifacts would not keep.
        folder = Path(staging) / "model_dir"
        folder.mkdir()
        for file in files:
            shutil.copyfile(Path(model_dir) / file, folder / file)
        info = Model.log(artifact_path=None, name=MODEL_NAME, flavor=mlflow.pyfunc, run_id=run.id,
                         python_model=ReviewSentiment(), artifacts={"model_dir": str(folder)},
                         code_paths=[PACKAGE_DIR],
                         signature=SIGNATURE, input_example=INPUT_EXAMPLE,
                         pip_requirements=requirements(), tags=dict(tags or {}),
                         model_type="keras-text-classifier")
    return info.model_id


def log_sklearn_text_model(experiment: Experiment, run: Run, pipeline: Any,
                           tags: Mapping[str, str] | None = None) -> str:
    """Log a scikit-learn pipeline over raw text (probabilities from ``predict_proba``)."""
    import mlflow.sklearn

    with _tracking(experiment):
        info = Model.log(artifact_path=None, name=MODEL_NAME, flavor=mlflow.sklearn, run_id=run.id,
                         sk_model=pipeline, pyfunc_predict_fn="predict_proba",
                         serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                         code_paths=[PACKAGE_DIR],
                         input_example=INPUT_EXAMPLE,
                         pip_requirements=[r for r in requirements() if "tensorflow" not in r
                                           and not r.startswith("keras")]
                         + [f"scikit-learn=={metadata.version('scikit-learn')}"],
                         tags=dict(tags or {}), model_type="sklearn-text-classifier")
    return info.model_id


# --- datasets --------------------------------------------------------------------------------

CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}


def file_md5(path: Path) -> str:
    """The md5 of a file's content: DVC 3's hash of that file inside a tracked folder."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_dataset(path: Path, name: str) -> MetaDataset:
    """A data file as an MLflow dataset named ``name``, its DVC hash as digest."""
    path = Path(path)
    try:
        digest = file_md5(path)
    except OSError as error:
        raise PipelineError(f"{path}: cannot read dataset {name} ({error.strerror})") from None
    with warnings.catch_warnings():  # "can be interpreted in multiple ways": the same class twice
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(path.as_posix())
    return MetaDataset(source, name=name, digest=digest)


def log_datasets(run: Run, datasets: Sequence[tuple[MetaDataset, str]]) -> None:
    """Record (dataset, context) pairs as the run's dataset inputs."""
    run.client.log_inputs(run.id, datasets=[
        DatasetInput(dataset._to_mlflow_entity(),
                     tags=[InputTag("mlflow.data.context", context)])
        for dataset, context in datasets])


def log_splits(run: Run, data_dir: Path, splits: Sequence[str]) -> dict[str, MetaDataset]:
    """Record the vectorized splits (train, val, test) a run used as its dataset inputs;
    returns them by split."""
    datasets = {split: file_dataset(Path(data_dir) / f"{split}.npz", f"imdb-{split}")
                for split in splits}
    log_datasets(run, [(datasets[split], CONTEXTS[split]) for split in splits])
    return datasets


# --- registry --------------------------------------------------------------------------------

def register_champion(experiment: Experiment, registered_model: str, alias: str, *,
                      model_id: str, run_id: str, tags: Mapping[str, str],
                      description: str) -> tuple[str, bool]:
    """Make logged model ``model_id`` a version of ``registered_model`` (reusing the version
    that already holds it) and move ``alias`` to it; returns (version, created)."""
    client = experiment.client
    source = f"models:/{model_id}"
    try:
        if not client.search_registered_models(f"name = '{registered_model}'"):
            client.create_registered_model(
                registered_model, description="IMDB review sentiment: raw text in, positive "
                "probability out; the champion is the configuration with the best mean "
                "validation accuracy over training seeds, its best-validation seed's weights.")
        existing = [v for v in client.search_model_versions(f"name = '{registered_model}'")
                    if v.source == source]
        created = not existing
        if existing:
            version = existing[0].version
        else:
            # The SQL registry resolves models:/ID through the global tracking URI.
            with _tracking(experiment):
                version = client.create_model_version(
                    registered_model, source=source, run_id=run_id, model_id=model_id,
                    description=description).version
        for key, value in tags.items():
            client.set_model_version_tag(registered_model, str(version), key, str(value))
        client.set_registered_model_alias(registered_model, alias, str(version))
    except mlflow.exceptions.MlflowException as error:
        raise PipelineError(f"registering {registered_model}: {_one_line(error)} "
                            f"(tracking store {experiment.uri})") from None
    return str(version), created


# --- loading ---------------------------------------------------------------------------------

def load_text_model(uri: str, tracking_uri: str) -> Any:
    """A logged model of this project from ``uri``: a function from review texts to their
    positive-class probabilities (networks and the TF-IDF reference alike)."""
    if tracking_uri.startswith("sqlite:///") and not Path(
            tracking_uri.removeprefix("sqlite:///")).is_file():  # opening it would create it
        raise PipelineError(f"{uri}: no MLflow store at {tracking_uri} (run from the project "
                            "folder, or set MLFLOW_TRACKING_URI)")
    try:
        with environment(MLFLOW_TRACKING_URI=tracking_uri):  # where models:/ and runs:/ resolve
            model = mlflow.pyfunc.load_model(uri)
    except Exception as error:  # MlflowException, OSError, a broken model file, ...
        raise PipelineError(f"{uri}: cannot load the model from {tracking_uri} "
                            f"({type(error).__name__}: {_one_line(error, 150)})") from None

    def predict(texts: Sequence[str]) -> np.ndarray:
        out = model.predict(pd.DataFrame({INPUT_COLUMN: list(texts)}))
        if isinstance(out, pd.DataFrame):
            return out[OUTPUT_COLUMN].to_numpy(np.float64)
        out = np.asarray(out, dtype=np.float64)  # scikit-learn's predict_proba: (n, 2)
        return out[:, 1] if out.ndim == 2 else out

    return predict
