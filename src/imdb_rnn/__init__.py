"""IMDB sentiment study: data preparation, model registry, training, evaluation and tracking."""

import os

# TensorFlow's C++ INFO lines (oneDNN, CPU features) drown the stage logs; warnings still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
