"""Pure text transforms: standardisation and tokenisation, shared by training and prediction."""

from __future__ import annotations

import re
from typing import Literal

Punctuation = Literal["keep", "strip", "split"]

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Any mark that is neither a word character nor space, except an apostrophe inside a word
# ("don't" stays one token).
_PUNCTUATION = re.compile(r"(?!(?<=\w)'(?=\w))[^\w\s]")
_WHITESPACE = re.compile(r"\s+")


def standardize(text: str, *, lowercase: bool = True, punctuation: Punctuation = "split") -> str:
    """Replace HTML line breaks, optionally lowercase and treat punctuation, collapse whitespace."""
    text = _HTML_BREAK.sub(" ", text)
    if lowercase:
        text = text.lower()
    if punctuation == "strip":
        text = _PUNCTUATION.sub(" ", text)
    elif punctuation == "split":
        text = _PUNCTUATION.sub(lambda match: f" {match.group()} ", text)
    elif punctuation != "keep":
        raise ValueError(f"punctuation must be keep, strip or split, not {punctuation!r}")
    return _WHITESPACE.sub(" ", text).strip()

