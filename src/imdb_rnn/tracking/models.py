"""MLflow Models, datasets and the model registry: raw review text in, probability out.

Every trained network and the TF-IDF reference is logged as an MLflow 3 logged model of the
``python_function`` flavour, as a model from code: the logged code is a three-line file of
``imdb_rnn/tracking/model_code/`` naming a class of :mod:`imdb_rnn.tracking.served`, the
artifacts are plain data (the network's model folder; the reference's vocabulary and weights as
``.npz`` and JSON). No pickle, no ``code_paths``: loading runs the ``imdb_rnn`` installed where
it loads, so

    mlflow.pyfunc.load_model("models:/imdb-sentiment@champion").predict(
        pd.DataFrame({"review": ["A wonderful, moving film."]}))

and ``mlflow models serve -m models:/imdb-sentiment@champion --env-manager local`` (with this
package installed) answer raw text with the same probabilities as ``imdb-predict``.
:func:`load_text_model` (``imdb-predict models:/...``) also checks, before MLflow runs it, that
the logged model holds nothing else: its code file is this package's own, byte for byte. Data
splits are logged as dataset inputs whose digest is the split file's DVC hash (the md5 of its
content).
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
import yaml
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from imdb_rnn.errors import PipelineError
from imdb_rnn.tracking.runs import (STORE_ERRORS, Experiment, Run, _one_line, environment,
                                    store_failure)
from imdb_rnn.tracking.served import INPUT_COLUMN, LABEL_COLUMN, OUTPUT_COLUMN

# ``review`` is declared Any, not string: MLflow's schema check would turn a number sent as
# {"inputs": [42]} into the text "42"; passed on as sent, predict refuses it (served.py).
SIGNATURE = ModelSignature(inputs=Schema([ColSpec(AnyType(), INPUT_COLUMN)]),
                           outputs=Schema([ColSpec("double", OUTPUT_COLUMN),
                                           ColSpec("string", LABEL_COLUMN)]))
INPUT_EXAMPLE = pd.DataFrame({INPUT_COLUMN: ["A wonderful, moving film.",
                                             "Two hours I will never get back."]})
# The code of each kind of logged model (MLflow runs the logged copy of this file on load).
MODEL_CODE = {kind: Path(__file__).parent / "model_code" / f"{kind}.py"
              for kind in ("network", "reference")}
# What serving a network needs besides MLflow (pinned to the versions that trained it).
_REQUIREMENTS = ("keras", "tensorflow-cpu", "tensorflow", "numpy", "pandas")


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
                name: str, tags: Mapping[str, str] | None = None) -> str:
    """Log the model folder ``model_dir`` (its ``files``: what the served model loads) as the
    run's MLflow Model named ``name`` (the model's own: runs:/RUN_ID/NAME, and the name the
    UI's Models tab lists); returns its model id.

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
        info = Model.log(artifact_path=None, name=name, flavor=mlflow.pyfunc, run_id=run.id,
                         python_model=str(MODEL_CODE["network"]),
                         artifacts={"model_dir": str(folder)},
                         signature=SIGNATURE, input_example=INPUT_EXAMPLE,
                         pip_requirements=requirements(), tags=dict(tags or {}),
                         model_type="keras-text-classifier")
    return info.model_id


def log_reference(experiment: Experiment, run: Run, folder: Path, name: str,
                  tags: Mapping[str, str] | None = None) -> str:
    """Log the TF-IDF reference saved in ``folder`` (:func:`served.save_reference`: weights
    and settings, no pickle) as the run's MLflow Model named ``name``; returns its model id."""
    with _tracking(experiment):
        info = Model.log(artifact_path=None, name=name, flavor=mlflow.pyfunc, run_id=run.id,
                         python_model=str(MODEL_CODE["reference"]),
                         artifacts={"reference": str(folder)},
                         signature=SIGNATURE, input_example=INPUT_EXAMPLE,
                         pip_requirements=[r for r in requirements() if "tensorflow" not in r
                                           and not r.startswith("keras")],
                         tags=dict(tags or {}), model_type="tfidf-text-classifier")
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
                      model_id: str, tags: Mapping[str, str],
                      description: str) -> tuple[str, bool]:
    """Make logged model ``model_id`` a version of ``registered_model`` (reusing the version
    that already holds it; a new one takes its run from the logged model) and move ``alias``
    to it; returns (version, created)."""
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
            # MLflow's register_model, not the client's create_model_version: it also links
            # the logged model to its version (the tag the UI reads; without it the champion's
            # logged model shows "Not registered"). It reads the global tracking URI.
            with _tracking(experiment):
                version = mlflow.register_model(source, registered_model).version
            client.update_model_version(registered_model, str(version), description=description)
        for key, value in tags.items():
            client.set_model_version_tag(registered_model, str(version), key, str(value))
        client.set_registered_model_alias(registered_model, alias, str(version))
    except mlflow.exceptions.MlflowException as error:
        raise PipelineError(f"registering {registered_model}: {_one_line(error)} "
                            f"(tracking store {experiment.uri})") from None
    return str(version), created


# --- loading ---------------------------------------------------------------------------------

# What a logged model of this project is: python_function from code, nothing pickled or added.
_CODE_LOADER = "mlflow.pyfunc.loaders.code_model"


def check_own_code(model_dir: Path, uri: str) -> None:
    """Refuse the downloaded logged model ``model_dir`` unless loading it runs only this
    package's code: a model from code whose code file is one of :data:`MODEL_CODE` byte for
    byte, with no pickled python_model, no ``code_paths`` and no other flavour."""
    try:
        mlmodel = yaml.safe_load((Path(model_dir) / "MLmodel").read_text())
        flavors = mlmodel["flavors"]
        pyfunc = flavors["python_function"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise PipelineError(f"{uri}: not an MLflow python_function model "
                            f"({type(error).__name__}: {_one_line(error, 100)})") from None
    code_file = pyfunc.get("model_code_path")
    if (pyfunc.get("loader_module") != _CODE_LOADER or not code_file or pyfunc.get("code")
            or "python_model" in pyfunc or set(flavors) != {"python_function"}):
        raise PipelineError(f"{uri}: not logged as this project's model from code (a pickled "
                            "python_model, code_paths or another flavour: refused, since "
                            "loading it would run them; retrain it: dvc repro -f train@NAME)")
    stored = Path(model_dir) / Path(code_file).name
    own = MODEL_CODE.get(stored.stem)
    if own is None or not stored.is_file() or stored.read_bytes() != own.read_bytes():
        raise PipelineError(f"{uri}: its code file {stored.name} is not imdb_rnn's own "
                            f"({', '.join(str(p) for p in MODEL_CODE.values())}): refused, "
                            "since loading it would run it")


def download_checked_model(uri: str, tracking_uri: str, dst: str | Path) -> Path:
    """Download the logged model ``uri`` (resolved in ``tracking_uri``) into the folder ``dst``
    and check that loading it runs only this package's code (:func:`check_own_code`); returns
    the local model folder, for ``mlflow.pyfunc.load_model`` or ``mlflow models serve -m``."""
    if tracking_uri.startswith("sqlite:///") and not Path(
            tracking_uri.removeprefix("sqlite:///")).is_file():  # opening it would create it
        raise PipelineError(f"{uri}: no MLflow store at {tracking_uri} (run from the project "
                            "folder, or set MLFLOW_TRACKING_URI)")
    try:
        with environment(MLFLOW_TRACKING_URI=tracking_uri):  # where models:/, runs:/ resolve
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                             dst_path=str(dst)))
    except Exception as error:  # MlflowException, OSError, a store that does not answer
        raise PipelineError(f"{uri}: cannot load the model from {tracking_uri} "
                            f"({type(error).__name__}: {_one_line(error, 150)})") from None
    check_own_code(local, uri)
    return local


def load_text_model(uri: str, tracking_uri: str) -> Any:
    """A logged model of this project from ``uri``: a function from review texts to their
    positive-class probabilities (networks and the TF-IDF reference alike). The model is
    downloaded and checked to run only this package's code (:func:`check_own_code`) before
    MLflow loads it."""
    from imdb_rnn.tracking.served import RefusedInput

    with tempfile.TemporaryDirectory() as staging:
        local = download_checked_model(uri, tracking_uri, staging)
        try:
            model = mlflow.pyfunc.load_model(str(local))  # every artifact is read into memory
        except Exception as error:  # a broken model file, missing packages, ...
            raise PipelineError(f"{uri}: cannot load the model from {tracking_uri} "
                                f"({type(error).__name__}: {_one_line(error, 150)})") from None

    def predict(texts: Sequence[str]) -> np.ndarray:
        try:
            out = model.predict(pd.DataFrame({INPUT_COLUMN: list(texts)}))
        except RefusedInput as error:
            raise PipelineError(error.message) from None
        return out[OUTPUT_COLUMN].to_numpy(np.float64)

    return predict
