"""IMDB sentiment study: data preparation, model registry, training, evaluation and tracking."""

__version__ = "0.1.0"
