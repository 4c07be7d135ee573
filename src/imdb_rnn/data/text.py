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



# The longest review a predictor accepts, in characters: a bound on what one request can make
# the server hold, several times the longest review in aclImdb.
MAX_REVIEW_CHARS = 100_000


def review_problem(value: object) -> str | None:
    """Why ``value`` cannot be read as a review, or None when it can.

    A review must be a string with at least one word once HTML line breaks and whitespace are
    removed: a network given nothing answers with a confident probability all the same (the LSTM
    said 1.0000 for ""), so empty, whitespace-only and ``<br />``-only text is refused, as is any
    value that is not text (a number that a server would turn into "42").
    """
    if not isinstance(value, str):
        return f"is {type(value).__name__}, not text"
    if len(value) > MAX_REVIEW_CHARS:
        return f"has {len(value):,} characters, more than the {MAX_REVIEW_CHARS:,} accepted"
    if not standardize(value, punctuation="strip"):
        return "has no words (empty, whitespace or markup only)"
    return None


def checked_reviews(values: list[object]) -> list[str]:
    """``values`` when every one is a review, else ValueError naming the first bad row (one line)."""
    if not values:
        raise ValueError("no review given")
    for row, value in enumerate(values):
        problem = review_problem(value)
        if problem:
            raise ValueError(f"review at row {row} {problem}")
    return values  # type: ignore[return-value]
