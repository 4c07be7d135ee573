"""The one exception type that stages turn into a one-line message and a non-zero exit."""

from __future__ import annotations


class PipelineError(Exception):
    """Bad input or environment: the message names the culprit and fits on one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
