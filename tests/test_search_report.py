"""The search per model: baseline against best trial, time to near-best, pruning savings."""

from __future__ import annotations

import pandas as pd
import pytest

from imdb_rnn.errors import PipelineError
from imdb_rnn.search.comparison import compare, load_study, markdown


def study(sampler: str, values: list[float | None], model: str = "lstm") -> tuple[dict, pd.DataFrame]:
    """Trials in order; None is a pruned trial; trial 0 is the baseline. Every trial took 10 s."""
    best, rows = None, []
    for i, value in enumerate(values):
        if value is not None:
            best = value if best is None else max(best, value)
        rows.append({"trial": i, "state": "PRUNED" if value is None else "COMPLETE",
                     "value": value, "best_so_far": best, "elapsed_seconds": 10.0 * (i + 1)})
    summary = {"model": model, "sampler": sampler, "best_val_accuracy": best,
               "test_accuracy": best - 0.01, "trial_seconds": 10.0 * len(values),
               "epochs_run": 10, "epochs_budget": 12, "epochs_saved_by_pruning": 2,
               "baseline_val_accuracy": values[0], "best_is_baseline": best == values[0]}
    return summary, pd.DataFrame(rows)


def test_near_best_is_measured_against_the_best_of_either_sampler():
    table, curves = compare({
        "lstm_random": study("random", [0.80, None, 0.86, 0.871]),
        "lstm_tpe": study("tpe", [0.81, 0.875, 0.87, None]),
    })
    rows = table.set_index("sampler")
    # best overall 0.875; near = >= 0.870
    assert rows.loc["tpe", "trials_to_near_best"] == 2
    assert rows.loc["tpe", "seconds_to_near_best"] == 20.0
    assert rows.loc["random", "trials_to_near_best"] == 4
    assert rows.loc["random", "pruned"] == 1
    assert len(curves) == 8
    text = markdown(table)
    assert "lstm: tpe came within 0.5 points of the best first (trial 2, 20 s of training)" in text
    assert "| lstm | random | 4 (1) | 0.8000 | 0.8710 | +7.10 pts |" in text


def test_a_tie_is_called_a_tie():
    table, _ = compare({"a": study("random", [0.80, 0.87]), "b": study("tpe", [0.80, 0.871])})
    assert "lstm: a tie: random and tpe came within 0.5 points of the best at the same trial (2)" \
        in markdown(table)


def test_a_sampler_that_never_gets_near_says_never():
    table, _ = compare({"a": study("random", [0.70, 0.71]), "b": study("tpe", [0.80])})
    assert "| lstm | random | 2 (0) | 0.7000 | 0.7100 | +1.00 pts | 0.7000 | never |" \
        in markdown(table)


def test_a_study_whose_best_is_its_baseline_says_so():
    table, _ = compare({"gru": study("tpe", [0.88, 0.86, None], model="gru")})
    assert "| gru | tpe | 3 (1) | 0.8800 | 0.8800 | the baseline |" in markdown(table)


def test_a_missing_study_is_one_line(tmp_path):
    with pytest.raises(PipelineError, match="best.json: tune summary not found"):
        load_study(tmp_path / "lstm_tpe")
