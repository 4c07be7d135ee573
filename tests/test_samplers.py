"""The sampler verdict: best-so-far curves over repeated studies, pair shares, the sentence."""

from __future__ import annotations

import pandas as pd
import pytest

from imdb_rnn.search import samplers


def trials(values: dict[str, list[list[float]]]) -> pd.DataFrame:
    """sampler -> one list of trial values per repetition."""
    return pd.DataFrame([{"sampler": s, "repeat": r, "trial": t, "value": v, "seconds": 1.0}
                         for s, studies in values.items() for r, study in enumerate(studies)
                         for t, v in enumerate(study)])


def test_curves_are_best_so_far_over_repetitions():
    table = samplers.curves(trials({"random": [[0.5, 0.7, 0.6], [0.8, 0.1, 0.9]]}))
    assert list(table["n"]) == [1, 2, 3]
    assert list(table["mean"]) == pytest.approx([0.65, 0.75, 0.8])
    assert list(table["low"]) == [0.5, 0.7, 0.7] and list(table["high"]) == [0.8, 0.8, 0.9]
    assert (table["repeats"] == 2).all()


def test_the_share_counts_every_pair_of_studies_and_ties_as_half():
    data = trials({"tpe": [[0.8, 0.9], [0.7, 0.7]], "random": [[0.7, 0.8], [0.6, 0.6]]})
    shares = samplers.win_share(data, "tpe", "random").set_index("n")
    # n = 1: tpe {0.8, 0.7} against random {0.7, 0.6}: 0.8 beats both, 0.7 ties one, beats one.
    assert shares.loc[1, "share_a_beats_b"] == pytest.approx(3.5 / 4)
    assert shares.loc[2, "share_a_beats_b"] == pytest.approx(3 / 4)
    assert shares.loc[2, "pairs"] == 4


@pytest.mark.parametrize(("tpe", "random", "words"), [
    ([[0.90], [0.91], [0.92]], [[0.80], [0.81], [0.82]], "tpe found better models than random"),
    ([[0.80], [0.81], [0.82]], [[0.90], [0.91], [0.92]], "random found better models than tpe"),
    ([[0.80], [0.90], [0.85]], [[0.86], [0.84], [0.88]], "No clear difference between tpe and random"),
])
def test_the_verdict_follows_the_share_at_the_full_budget(tpe, random, words):
    sentence = samplers.verdict(trials({"tpe": tpe, "random": random}), "tpe", "random")
    assert sentence.startswith(words) and "3 studies each" in sentence


def test_the_report_has_a_row_per_budget_and_the_verdict():
    data = trials({"random": [[0.5, 0.6, 0.7, 0.8, 0.9]] * 2, "tpe": [[0.6, 0.6, 0.6, 0.6, 0.6]] * 2})
    text = samplers.markdown(data, {"model": "ff", "repeats": 2, "n_trials": 5, "epochs": 1,
                                    "train_reviews": 100}, "tpe", "random", "fig.png")
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[0] for line in rows] == ["| 1", "| 2", "| 5"]
    # Columns: the verdict's pair first (tpe, random), then the share of tpe beating random.
    assert "| 5 | 60.00% ± 0.00% [60.00%, 60.00%] | 90.00% ± 0.00% [90.00%, 90.00%] | 0% |" in text
    assert "**Verdict.** random found better models than tpe" in text


def test_unequal_budgets_are_refused():
    data = trials({"random": [[0.5, 0.6]], "tpe": [[0.6]]})
    with pytest.raises(ValueError, match="unequal budgets"):
        samplers.check_trials(data)
