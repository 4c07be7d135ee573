"""Passwords of store URLs never reach what the pipeline writes (src/imdb_rnn/redaction.py)."""

from __future__ import annotations

import pytest

from imdb_rnn.errors import PipelineError
from imdb_rnn.redaction import redact_text, redact_url


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql+psycopg2://u:s3cret@127.0.0.1:5432/db",
     "postgresql+psycopg2://u:***@127.0.0.1:5432/db"),
    ("postgresql://u:p@ss:w@db.example.org/optuna", "postgresql://u:***@db.example.org/optuna"),
    ("mysql+pymysql://u:p%40ss@h/db?charset=utf8", "mysql+pymysql://u:***@h/db?charset=utf8"),
    ("postgresql://u@h/db?sslmode=require&password=s3cret",
     "postgresql://u@h/db?sslmode=require&password=***"),
    ("http://user:s3cret@mlflow.example.org:5000", "http://user:***@mlflow.example.org:5000"),
    ("https://token:x-s3cret@h/path?a=1", "https://token:***@h/path?a=1"),
    # nothing to hide: as given, byte for byte
    ("postgresql+psycopg2://imdb@127.0.0.1:5432/db",
     "postgresql+psycopg2://imdb@127.0.0.1:5432/db"),
    ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ("journal:studies/optuna.journal", "journal:studies/optuna.journal"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("databricks", "databricks"),
])
def test_a_urls_password_is_masked_and_the_rest_kept(url, expected):
    assert redact_url(url) == expected


def test_text_that_echoes_urls_or_connection_strings_is_masked():
    text = ("store postgresql+psycopg2://u:s3cret@127.0.0.1:5/db failed; 'http://a:b0b@h:1/x' "
            "dsn host=h password=hunter2 user=u; at http://h:8080/path (no credentials)")
    assert redact_text(text) == (
        "store postgresql+psycopg2://u:***@127.0.0.1:5/db failed; 'http://a:***@h:1/x' "
        "dsn host=h password=*** user=u; at http://h:8080/path (no credentials)")


def test_the_configured_stores_passwords_are_masked_in_any_form(monkeypatch):
    """A library may print a password without its URL (a driver's message, a repr)."""
    monkeypatch.setenv("IMDB_TUNE_STORAGE", "postgresql://u:p%2Fq-long@h/db")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "tracking-secret")
    text = "user u with 'p/q-long' or p%2Fq-long refused; basic auth tracking-secret"
    assert redact_text(text) == "user u with '***' or *** refused; basic auth ***"


def test_every_one_line_error_is_redacted():
    error = PipelineError("Optuna storage postgresql://u:s3cret@h/db\nfailed")
    assert str(error) == "Optuna storage postgresql://u:***@h/db failed"


def test_a_store_failure_names_the_store_without_its_password():
    import mlflow

    from imdb_rnn.tracking import runs

    error = mlflow.exceptions.MlflowException(
        "(psycopg2.OperationalError) connection to postgresql://u:s3cret@h/db failed "
        "[SQL: INSERT INTO params VALUES (%(key)s)] [parameters: {'key': 'x'}] "
        "(Background on this error at: https://sqlalche.me/e/20/e3q8)")
    line = str(runs.store_failure("postgresql+psycopg2://u:s3cret@h:5/mlflow", error))
    assert "s3cret" not in line and "[SQL:" not in line
    assert line == ("MLflow tracking store postgresql+psycopg2://u:***@h:5/mlflow failed: "
                    "MlflowException: (psycopg2.OperationalError) connection to "
                    "postgresql://u:***@h/db failed")
