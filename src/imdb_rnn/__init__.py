"""IMDB sentiment study: data preparation, model registry, training, evaluation and tracking."""

import os

# TensorFlow's native log lines drown the stage logs: INFO (oneDNN, CPU features), WARNING and
# ERROR lines that are notes, not failures ("E0000 ... oneDNN supports DT_BOOL only on platforms
# with AVX-512. Falling back to ..." on every training). A real failure reaches Python as an
# exception, which the stage reports in its one error line. TF_CPP_MIN_LOG_LEVEL=0 in the
# environment shows them all again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# MLflow draws a "Downloading artifacts" progress bar (five lines in a log file) each time a
# model is logged; the stage's own line says where the model went. MLflow's own switch for it;
# MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true in the environment brings it back.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

__version__ = "0.1.0"
