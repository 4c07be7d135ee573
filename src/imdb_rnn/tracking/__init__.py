"""Tracking: the one module that talks to MLflow (``imdb_rnn.tracking.runs``); store URLs are
written only through ``imdb_rnn.redaction``."""
