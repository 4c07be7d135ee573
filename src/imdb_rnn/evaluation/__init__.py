"""Evaluation: test metrics and their files, the TF-IDF reference, the leaderboard, figures."""

from imdb_rnn.evaluation.metrics import (EvaluationPaths, classification_metrics, tracked_metrics,
                                         write_evaluation)

__all__ = ["EvaluationPaths", "classification_metrics", "tracked_metrics", "write_evaluation"]
