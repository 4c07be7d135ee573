"""Tracking: the one module that talks to MLflow (``imdb_rnn.tracking.runs``)."""
