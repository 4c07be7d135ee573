"""The layout of ``reports/``, ``evaluation/`` and a model's folder: the one place that knows
where each file goes.

``dvc.yaml`` declares the same paths (a test checks that they agree); stages take their own
outputs from their command line, and readers of many models' files (report, seeds, the
regression gate, the smoke run) find them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TRAIN_SUMMARY = "train.json"
HISTORY = "history.csv"
TEST_METRICS = "metrics.json"
ROC = "roc.csv"
PREDICTIONS = "predictions.csv"

# What a trained model's folder (models/NAME/) holds: here, not in imdb_rnn.modeling, so that
# a stage that only reads run.json (register) does not import Keras with that package.
MODEL_FILE = "model.keras"  # the Keras model (custom layers registered by modeling.registry)
PREPROCESSING_FILE = "preprocessing.json"  # text standardisation and input shape settings
RUN_FILE = "run.json"  # the MLflow run that trained it
SUMMARY_FILE = "summary.txt"  # Keras' model summary
# What the seeds stage keeps of a model's seed replicates (models/seeds/NAME/): the model
# folder of the replicate with the best validation accuracy, when one beats the train.seed
# run (the champion's served weights may be those), and always this file saying which seed.
SEED_FILE = "seed.json"


def tuned_name(study: str) -> str:
    """Model name of a study's retrained best configuration."""
    return f"tuned_{study}"


def seed_model_dir(models: Path, model: str) -> Path:
    """Where the seeds stage keeps model ``model``'s best-validation replicate, under the
    ``models`` folder (``models/seeds/NAME``)."""
    return Path(models) / "seeds" / model


# Where a seeds summary's best-validation weights are (its ``best_val_weights``): the train
# (or tune) stage's folder of its ``weights_of`` model (the train.seed run won), or the seeds
# stage's folder of it (a replicate won).
TRAIN_WEIGHTS, SEED_WEIGHTS = "train", "seeds"


def best_val_model_dir(models: Path, seed_summary: dict) -> Path:
    """The model folder of the best-validation seed of a seeds summary, under ``models``."""
    model = seed_summary["weights_of"]
    if seed_summary["best_val_weights"] == SEED_WEIGHTS:
        return seed_model_dir(models, model)
    return Path(models) / model


@dataclass(frozen=True)
class Reports:
    """A ``reports/`` folder (and the ``evaluation/`` folder of per-review predictions)."""

    root: Path = Path("reports")
    evaluation: Path = Path("evaluation")

    def train_dir(self, model: str) -> Path:
        return self.root / "train" / model

    def train_summary(self, model: str) -> Path:
        return self.train_dir(model) / TRAIN_SUMMARY

    def history(self, model: str) -> Path:
        return self.train_dir(model) / HISTORY

    @property
    def evaluated(self) -> Path:
        """The folder of every model's test metrics."""
        return self.root / "evaluate"

    def evaluate_dir(self, model: str) -> Path:
        return self.evaluated / model

    def test_metrics(self, model: str) -> Path:
        return self.evaluate_dir(model) / TEST_METRICS

    def roc(self, model: str) -> Path:
        return self.evaluate_dir(model) / ROC

    def predictions(self, model: str) -> Path:
        return self.evaluation / model / PREDICTIONS

    def evaluated_models(self) -> list[str]:
        """Every model with test metrics, by name."""
        return sorted(p.parent.name for p in self.evaluated.glob(f"*/{TEST_METRICS}"))

    def seeds(self, model: str) -> Path:
        return self.root / "seeds" / f"{model}.json"

    def study_dir(self, study: str) -> Path:
        return self.root / "tune" / study

    def study_best(self, study: str) -> Path:
        return self.study_dir(study) / "best.json"

    def study_trials(self, study: str) -> Path:
        return self.study_dir(study) / "trials.csv"

    @property
    def samplers_comparison(self) -> Path:
        return self.root / "samplers" / "comparison.md"

    @property
    def search_comparison(self) -> Path:
        return self.root / "search" / "comparison.md"

    @property
    def data_report(self) -> Path:
        return self.root / "data.md"
