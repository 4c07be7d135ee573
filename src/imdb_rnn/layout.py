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


def tuned_name(study: str) -> str:
    """Model name of a study's retrained best configuration."""
    return f"tuned_{study}"


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
