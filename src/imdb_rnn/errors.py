"""The one exception type that stages turn into a one-line message and a non-zero exit."""

from __future__ import annotations


class PipelineError(Exception):
    """Bad input or environment: the message names the culprit and fits on one line, with
    every password in it (a store URL's, one a library echoed) replaced by ``***``."""

    def __init__(self, message: str) -> None:
        from imdb_rnn.redaction import redact_text

        super().__init__(redact_text(" ".join(str(message).split())))
