"""Secrets out of everything the pipeline writes: passwords in store URLs become ``***``.

A store URL may carry its password (``postgresql+psycopg2://u:PASSWORD@host/db`` for Optuna's
storage or MLflow's tracking URI, ``http://user:PASSWORD@host`` for a tracking server). The
pipeline connects with the URL as given, and writes it only through :func:`redact_url` (reports,
DVC outputs, MLflow params and tags, stdout) or :func:`redact_text` (error lines, failure
reasons: text in which a library may have echoed a URL or a connection string):
``postgresql+psycopg2://u:***@host/db``.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
# Environment variables whose values are, or may hold, credentials.
SECRET_ENV = ("IMDB_TUNE_STORAGE", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
              "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
# Query parameters that carry a secret (``?password=...`` is a valid SQLAlchemy URL too).
SECRET_QUERY = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|access_token|api_key)"
                          r"=([^&\s'\"]+)")
# ``scheme://user:password@`` anywhere in a text (the password ends at the last ``@`` before
# the host; it may itself contain ``:`` or ``@``).
URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)([^\s/'\"]*?)(@[^\s@/'\"]*"
                             r"(?=[/?\s'\"]|$))")
# libpq's key=value form, as psycopg2 may echo a connection string: ``password=xxx``.
DSN_PASSWORD = re.compile(r"(?i)\b(password\s*=\s*)('[^']*'|\S+)")


def redact_url(url: str) -> str:
    """``url`` with its password (and secret query values) replaced by ``***``; the user, host,
    port and path are kept, so the line still says which store it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    redacted = url
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
            redacted = redacted.replace(parts.netloc, netloc, 1)
    # Rebuilt by replacement, not urlunsplit, which writes sqlite:///x as sqlite:/x.
    return SECRET_QUERY.sub(lambda m: f"{m.group(1)}={MASK}", redacted)


def _known_secrets() -> set[str]:
    """The passwords of this process's configured stores (each as written and URL-decoded),
    so a library that prints one in another form is still caught."""
    found = set()
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if not value:
            continue
        if "://" not in value:  # a bare password or token
            found.add(value)
            continue
        try:
            parts = urlsplit(value)
        except ValueError:
            continue
        if parts.password:
            found.add(parts.password)
        found.update(m.group(2) for m in SECRET_QUERY.finditer(parts.query))
    return {variant for secret in found for variant in (secret, unquote(secret), quote(secret))
            if len(variant) >= 3}


def redact_text(text: str) -> str:
    """``text`` with every URL's password, ``password=`` value and known secret of the
    configured stores replaced by ``***``."""
    text = URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    text = SECRET_QUERY.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = DSN_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}", text)
    for secret in sorted(_known_secrets(), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
