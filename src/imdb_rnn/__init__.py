"""IMDB sentiment study: data preparation, model registry, training, evaluation and tracking."""

import os

# TensorFlow's native log lines drown the stage logs: INFO (oneDNN, CPU features), WARNING and
# ERROR lines that are notes, not failures ("E0000 ... oneDNN supports DT_BOOL only on platforms
# with AVX-512. Falling back to ..." on every training). A real failure reaches Python as an
# exception, which the stage reports in its one error line. TF_CPP_MIN_LOG_LEVEL=0 in the
# environment shows them all again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
