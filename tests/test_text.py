"""Text standardisation: exact outputs for each option."""

import pytest

from imdb_rnn.data.text import standardize

RAW = "A <br /><br />GREAT film!! Don't   miss it.<BR>Really."


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"lowercase": True, "punctuation": "split"},
         "a great film ! ! don't miss it . really ."),
        ({"lowercase": True, "punctuation": "strip"}, "a great film don't miss it really"),
        ({"lowercase": False, "punctuation": "keep"}, "A GREAT film!! Don't miss it. Really."),
    ],
)
def test_standardize_exact(options, expected):
    assert standardize(RAW, **options) == expected


def test_apostrophe_outside_a_word_is_punctuation():
    assert standardize("'quoted' rock 'n' roll", punctuation="strip") == "quoted rock n roll"


def test_unknown_punctuation_mode_is_an_error():
    with pytest.raises(ValueError, match="punctuation"):
        standardize("x", punctuation="drop")  # type: ignore[arg-type]
