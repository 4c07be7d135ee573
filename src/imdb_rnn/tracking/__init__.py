"""Tracking: the one module that talks to MLflow (``imdb_rnn.tracking.runs``), and the redaction
of store URLs' passwords in whatever is written (``imdb_rnn.tracking.redaction``)."""
