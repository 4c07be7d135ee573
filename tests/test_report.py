"""The leaderboard: bootstrap intervals, McNemar tests in words, expected max, the whole report."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT

from imdb_rnn.errors import PipelineError
from imdb_rnn.evaluation.metrics import classification_metrics, roc_points
from imdb_rnn.config.params import parse_params
from imdb_rnn.evaluation.leaderboard import (ModelResult, bootstrap_ci, build_report, check_same_reviews,
                             expected_max, in_words, mcnemar_tests, tuning_markdown,
                             tuning_verdicts)


def result(name: str, correct: np.ndarray, reviews: list[str] | None = None) -> ModelResult:
    labels = np.arange(len(correct)) % 2
    predicted = np.where(correct, labels, 1 - labels)
    frame = pd.DataFrame({"review": reviews or [f"r{i:05d}" for i in range(len(correct))],
                          "label": labels, "probability": predicted.astype(float),
                          "predicted": predicted})
    return ModelResult(name, "baseline", "lstm", {}, None, frame)


def test_bootstrap_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    correct = rng.random(5000) < 0.85
    low, high = bootstrap_ci(correct, n_resamples=1000, seed=1)
    p = correct.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / len(correct))
    assert low < p < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert bootstrap_ci(correct, n_resamples=1000, seed=1) == (low, high)  # seeded
    assert bootstrap_ci(np.ones(10, bool), n_resamples=1000, seed=1) == (1.0, 1.0)


def test_mcnemar_separates_real_differences_from_noise():
    rng = np.random.default_rng(0)
    base = rng.random(4000) < 0.85
    better = base | (rng.random(4000) < 0.3)  # fixes ~30% of base's errors
    noisy = base.copy()  # 20 new errors and 20 fixes: different reviews, same skill
    noisy[rng.choice(np.flatnonzero(base), 20, replace=False)] = False
    noisy[rng.choice(np.flatnonzero(~base), 20, replace=False)] = True
    tests = mcnemar_tests([result("base", base), result("better", better),
                           result("noisy", noisy)]).set_index(["model_a", "model_b"])
    assert tests.loc[("base", "better"), "significant"]
    assert tests.loc[("base", "better"), "only_a_right"] == 0
    assert not tests.loc[("base", "noisy"), "significant"]
    assert (tests["p_holm"] >= tests["p_value"]).all()
    sentence = in_words(tests.reset_index().iloc[0])
    assert sentence.startswith("better beats base (")
    assert "a real difference" in sentence


def test_models_evaluated_on_different_reviews_cannot_be_paired():
    a = result("a", np.ones(4, bool))
    b = result("b", np.ones(4, bool), reviews=["x", "y", "z", "w"])
    with pytest.raises(PipelineError, match="b and a were evaluated on different test reviews"):
        check_same_reviews([a, b])


def test_expected_max_grows_from_the_mean_to_the_best():
    values = [0.80, 0.85, 0.90]
    curve = expected_max(values)
    assert curve[0] == pytest.approx(np.mean(values))
    assert curve[1] == pytest.approx(0.80 * (1 / 9) + 0.85 * (4 / 9 - 1 / 9) + 0.90 * (1 - 4 / 9))
    assert curve == sorted(curve) and curve[-1] < 0.90


def _write_model(root: Path, name: str, labels: np.ndarray, probs: np.ndarray,
                 trained: bool) -> None:
    ev = root / "reports/evaluate" / name
    ev.mkdir(parents=True)
    metrics = classification_metrics(labels, probs) | {"reviews_per_second": 1000.0}
    (ev / "metrics.json").write_text(json.dumps(metrics))
    roc_points(labels, probs).to_csv(ev / "roc.csv", index=False)
    pred = root / "evaluation" / name
    pred.mkdir(parents=True)
    pd.DataFrame({"review": [f"test/x/{i}_1.txt" for i in range(len(labels))], "label": labels,
                  "probability": probs, "predicted": (probs >= 0.5).astype(int)}
                 ).to_csv(pred / "predictions.csv", index=False)
    if trained:
        tr = root / "reports/train" / name
        tr.mkdir(parents=True)
        (tr / "train.json").write_text(json.dumps({"params_count": 1000, "epochs": 2,
                                                   "train_seconds": 12.5}))
        pd.DataFrame({"epoch": [1, 2], "val_accuracy": [0.7, 0.8], "val_loss": [0.6, 0.5]}
                     ).to_csv(tr / "history.csv", index=False)


def test_the_report_ranks_every_model_and_writes_one_page(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    section = params["train"]["models"]["lstm"]
    params["train"]["models"] = {"lstm": section, "cnn": copy.deepcopy(params["train"]["models"]["cnn"])}
    params["tune"]["space"] = {"lstm": params["tune"]["space"]["lstm"]}
    params["tune"]["studies"] = {"lstm_tpe": {"model": "lstm", "sampler": "tpe"}}
    params["samplers"]["model"] = "lstm"
    params["report"]["bootstrap_resamples"] = 200
    parsed = parse_params(params)
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 2
    for name, skill, trained in [("lstm", 0.9, True), ("cnn", 0.8, True),
                                 ("tuned_lstm_tpe", 0.92, True), ("tfidf_logreg", 0.91, False),
                                 ("majority", 0.5, False)]:
        right = rng.random(400) < skill
        probs = np.where(right == labels.astype(bool), 0.8, 0.2) if name != "majority" \
            else np.full(400, 0.5)
        _write_model(tmp_path, name, labels, probs.astype(float), trained)
    tune = tmp_path / "reports/tune/lstm_tpe"
    tune.mkdir(parents=True)
    (tune / "best.json").write_text(json.dumps({
        "model": "lstm", "sampler": "tpe", "best_val_accuracy": 0.9,
        "param_importances": {"units": 0.7, "dropout": 0.3}}))
    pd.DataFrame({"trial": [0, 1, 2], "state": ["COMPLETE", "PRUNED", "COMPLETE"],
                  "value": [0.85, None, 0.9], "param_units": [16, 32, 64],
                  "param_dropout": [0.1, 0.2, 0.3], "param_maxlen": [100, 200, 300]}
                 ).to_csv(tune / "trials.csv", index=False)
    out = tmp_path / "out"
    out.mkdir()
    board = build_report(parsed, tmp_path / "reports", tmp_path / "evaluation", out)
    assert list(board["model"])[0] == "tuned_lstm_tpe"
    assert set(board["kind"]) == {"baseline", "tuned", "reference", "null"}
    assert (board["ci_low"] <= board["test_accuracy"]).all()
    assert (board["test_accuracy"] <= board["ci_high"]).all()
    text = (out / "leaderboard.md").read_text()
    assert "| 1 | tuned_lstm_tpe | tuned |" in text
    assert text.count(" beats ") + text.count("not distinguishable") == 3  # top 3 pairs
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "<table>" in html
    assert len(pd.read_csv(out / "significance.csv")) == 10  # 5 models, every pair
    tuning = pd.read_csv(out / "tuning.csv")
    assert list(tuning["study"]) == ["lstm_tpe"] and tuning["verdict"].iloc[0].startswith((
        "tuning helped", "tuning hurt", "no real difference"))
    assert "## Did tuning pay?" in text and "| lstm | " in text.split("## Did tuning pay?")[1]


def _tests_of(baseline_right: np.ndarray, tuned_right: np.ndarray) -> pd.DataFrame:
    return mcnemar_tests([result("lstm", baseline_right), result("tuned_lstm", tuned_right)])


@pytest.mark.parametrize(("baseline_right", "tuned_right", "best_is_baseline", "words"), [
    (300, 360, False, "tuning helped"),
    (360, 300, False, "tuning hurt"),
    (330, 333, False, "no real difference"),
    (330, 330, True, "no trial beat the baseline on validation: tuned = baseline"),
])
def test_tuning_is_judged_on_the_test_pair_in_words(baseline_right, tuned_right,
                                                    best_is_baseline, words):
    n = 400
    base = np.arange(n) < baseline_right
    tuned = np.arange(n)[::-1] < tuned_right  # the errors fall on other reviews
    best = {"baseline_val_accuracy": 0.85, "best_val_accuracy": 0.87,
            "best_is_baseline": best_is_baseline, "trials_complete": 6, "trials_pruned": 2}
    table = tuning_verdicts(_tests_of(base, tuned), {"lstm": ("lstm", best)})
    (row,) = table.itertuples()
    assert row.verdict == words and row.trials == 8
    assert (row.baseline_test, row.tuned_test) == (baseline_right / n, tuned_right / n)
    assert "| lstm | 8 (2) | 85.00% | 87.00% |" in "\n".join(tuning_markdown(table))


@pytest.mark.parametrize(("seed_accuracies", "words"), [
    ((0.75, 0.74, 0.76), "tuning helped"),  # 0.90 is far above the baseline's seeds
    ((0.75, 0.85, 0.95), "tuning helped, but within the baseline's seed spread: these weights, "
                         "not the configuration"),
    ((0.75,), "tuning helped"),  # one seed: no spread to judge by
])
def test_a_significant_gain_within_the_baselines_seed_spread_says_so(seed_accuracies, words):
    n = 400
    base = np.arange(n) < 300
    tuned = np.arange(n)[::-1] < 360
    best = {"baseline_val_accuracy": 0.85, "best_val_accuracy": 0.87,
            "best_is_baseline": False, "trials_complete": 6, "trials_pruned": 2}
    summary = {"seeds": list(range(len(seed_accuracies))),
               "test_accuracy_mean": float(np.mean(seed_accuracies)),
               "test_accuracy_std": (float(np.std(seed_accuracies, ddof=1))
                                     if len(seed_accuracies) > 1 else None)}
    table = tuning_verdicts(_tests_of(base, tuned), {"lstm": ("lstm", best)},
                            {"lstm": summary})
    (row,) = table.itertuples()
    assert row.verdict == words
    markdown = "\n".join(tuning_markdown(table))
    if len(seed_accuracies) > 1:
        assert f"| 75.00% | {np.mean(seed_accuracies):.2%} ± " in markdown
    else:
        assert "| 75.00% | - | 90.00% |" in markdown
