"""The leaderboard: seed means and their intervals, Welch and McNemar tests in words, "Did tuning
pay?" over seeds, expected max, the whole report."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT

from imdb_rnn.errors import PipelineError
from imdb_rnn.evaluation.metrics import classification_metrics, roc_points
from imdb_rnn.config.params import parse_params
from imdb_rnn.evaluation.leaderboard import (ModelResult, bootstrap_ci, build_report, check_same_reviews,
                             expected_max, in_words, mcnemar_tests, seed_interval, seed_tests,
                             seed_words, tuning_markdown, tuning_verdicts, welch_test)


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


def _seed_summary(root: Path, name: str, tests: list[float], vals: list[float]) -> None:
    folder = root / "reports/seeds"
    folder.mkdir(parents=True, exist_ok=True)
    runs = [{"seed": seed, "test_accuracy": t, "val_accuracy": v, "epochs": 2,
             "source": "baseline" if seed == 42 else "replicate"}
            for seed, t, v in zip([42, 1, 2, 3], tests, vals)]
    (folder / f"{name}.json").write_text(json.dumps({"model": name, "runs": runs}))


def test_the_report_ranks_every_model_by_its_seed_mean_and_writes_one_page(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    section = params["train"]["models"]["lstm"]
    params["train"]["models"] = {"lstm": section, "cnn": copy.deepcopy(params["train"]["models"]["cnn"]),
                                 "gru": copy.deepcopy(params["train"]["models"]["gru"])}
    params["tune"]["space"] = {"lstm": params["tune"]["space"]["lstm"]}
    params["tune"]["studies"] = {"lstm_tpe": {"model": "lstm", "sampler": "tpe"}}
    params["samplers"]["model"] = "lstm"
    params["report"]["bootstrap_resamples"] = 200
    parsed = parse_params(params)
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 2
    for name, skill, trained in [("lstm", 0.9, True), ("cnn", 0.8, True), ("gru", 0.85, True),
                                 ("tuned_lstm_tpe", 0.92, True), ("tfidf_logreg", 0.91, False),
                                 ("nbsvm", 0.6, False),
                                 ("majority", 0.5, False)]:
        right = rng.random(400) < skill
        probs = np.where(right == labels.astype(bool), 0.8, 0.2) if name != "majority" \
            else np.full(400, 0.5)
        _write_model(tmp_path, name, labels, probs.astype(float), trained)
    single = {name: json.loads((tmp_path / f"reports/evaluate/{name}/metrics.json").read_text())[
        "accuracy"] for name in ("lstm", "cnn", "gru", "tuned_lstm_tpe")}
    # The single runs put tuned_lstm_tpe first and cnn last; the seed means say otherwise:
    # cnn's other seeds are far better than its train.seed run, tuned_lstm_tpe's worse.
    _seed_summary(tmp_path, "cnn", [single["cnn"], 0.99, 0.99], [0.8, 0.9, 0.91])
    _seed_summary(tmp_path, "lstm", [single["lstm"], single["lstm"] - 0.004,
                                     single["lstm"] + 0.004], [0.85, 0.86, 0.84])
    _seed_summary(tmp_path, "gru", [single["gru"], single["gru"] + 0.002,
                                    single["gru"] - 0.002], [0.8, 0.8, 0.8])
    _seed_summary(tmp_path, "tuned_lstm_tpe", [single["tuned_lstm_tpe"], 0.80, 0.81],
                  [0.86, 0.86, 0.86])
    tune = tmp_path / "reports/tune/lstm_tpe"
    tune.mkdir(parents=True)
    (tune / "best.json").write_text(json.dumps({
        "model": "lstm", "sampler": "tpe", "best_val_accuracy": 0.9,
        "param_importances": {"units": 0.7, "dropout": 0.3}}))
    pd.DataFrame({"trial": [0, 1, 2], "state": ["COMPLETE", "PRUNED", "COMPLETE"],
                  "value": [0.85, None, 0.9], "param_units": [16, 32, 64],
                  "param_dropout": [0.1, 0.2, 0.3], "param_maxlen": [100, 200, 300]}
                 ).to_csv(tune / "trials.csv", index=False)
    # the tune stage's Optuna plot of the study (one here): shown on the page, linked in the text
    (tune / "figures").mkdir()
    figure = plt.figure(figsize=(2, 2))
    figure.savefig(tune / "figures" / "history.png")
    plt.close(figure)
    out = tmp_path / "out"
    out.mkdir()
    board = build_report(parsed, tmp_path / "reports", tmp_path / "evaluation", out)
    assert single["tuned_lstm_tpe"] > single["lstm"] > single["gru"] > single["cnn"]
    assert list(board["model"]) == ["cnn", "tfidf_logreg", "lstm", "gru", "tuned_lstm_tpe",
                                    "nbsvm", "majority"]
    assert set(board["kind"]) == {"baseline", "tuned", "reference", "null"}
    rows = board.set_index("model")
    assert rows.loc["cnn", "mean_accuracy"] == pytest.approx(
        np.mean([single["cnn"], 0.99, 0.99]))
    assert rows.loc["cnn", "seeds"] == 3 and rows.loc["cnn", "mean_val_accuracy"] == pytest.approx(0.87)
    # a reference model has one run: its bootstrap interval, no seeds
    assert rows.loc["tfidf_logreg", "mean_accuracy"] == rows.loc["tfidf_logreg", "test_accuracy"]
    assert (rows.loc["tfidf_logreg", ["mean_ci_low", "mean_ci_high"]].tolist()
            == rows.loc["tfidf_logreg", ["ci_low", "ci_high"]].tolist())
    assert pd.isna(rows.loc["tfidf_logreg", "seeds"])
    assert (board["mean_ci_low"] <= board["mean_accuracy"]).all()
    assert (board["mean_accuracy"] <= board["mean_ci_high"]).all()
    assert (board["ci_low"] <= board["test_accuracy"]).all()
    assert (board["test_accuracy"] <= board["ci_high"]).all()
    text = (out / "leaderboard.md").read_text()
    assert f"| 1 | cnn | baseline | {rows.loc['cnn', 'mean_accuracy']:.2%} (3) |" in text
    assert "m ± √((t · s/√n)² + (1.96 · √(m(1−m)/N))²)" in text  # the interval, stated
    assert "Test split: 400 reviews never used" in text  # the run's own count, not 25,000
    real = text.split("## Which differences are real?")[1]
    assert "Welch's t-test" in real and "Holm-adjusted over all 3 pairs of families" in real
    family_lines = [line for line in real.split("**Single runs")[0].splitlines()
                    if line.startswith("- ")]
    assert len(family_lines) == 3 and family_lines[0].startswith("- cnn ")  # 3 baselines
    assert "within seed noise" in real or "a real difference" in real
    single_runs = real.split("**Single runs")[1].split("## Published")[0]
    assert single_runs.count(" beats ") + single_runs.count("not distinguishable") == 3
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "<table>" in html
    assert "](tune/lstm_tpe/figures/history.png)" in text
    significance = pd.read_csv(out / "significance.csv")
    assert len(significance) == 21  # 7 models, every pair, McNemar
    welch = significance.dropna(subset=["welch_p"])
    assert sorted(map(tuple, welch[["model_a", "model_b"]].to_numpy())) == [
        ("cnn", "gru"), ("lstm", "cnn"), ("lstm", "gru")]  # the families' pairs only
    assert (welch["welch_p_holm"] >= welch["welch_p"]).all()
    tuning = pd.read_csv(out / "tuning.csv")
    assert list(tuning["study"]) == ["lstm_tpe"]
    assert tuning["test"].iloc[0] == "Welch over seeds"
    assert tuning["difference"].iloc[0] == pytest.approx(
        rows.loc["tuned_lstm_tpe", "mean_accuracy"] - rows.loc["lstm", "mean_accuracy"])
    assert "## Did tuning pay?" in text and "| lstm | " in text.split("## Did tuning pay?")[1]
    # dvc metrics show: one numbers-only file per model, the same few keys (a reference has no
    # seeds and no validation)
    metrics = {p.stem: json.loads(p.read_text()) for p in (out / "metrics").glob("*.json")}
    assert set(metrics) == set(board["model"])
    assert metrics["cnn"]["test_mean"] == pytest.approx(rows.loc["cnn", "mean_accuracy"], abs=1e-5)
    assert metrics["cnn"]["seeds"] == 3 and set(metrics["cnn"]) == {
        "test_mean", "test_sd", "seeds", "val_mean", "test"}
    assert set(metrics["tfidf_logreg"]) == {"test_mean", "test"}
    assert all(type(v) in (int, float) for values in metrics.values() for v in values.values())


def test_the_seed_interval_adds_the_seed_and_test_set_noise():
    from scipy.stats import t

    runs = [0.87, 0.88, 0.885]
    n_test = 25_000
    low, high = seed_interval(runs, n_test)
    mean, sd = np.mean(runs), np.std(runs, ddof=1)
    seed_half = t.ppf(0.975, 2) * sd / np.sqrt(3)
    test_half = 1.959964 * np.sqrt(mean * (1 - mean) / n_test)
    assert (low + high) / 2 == pytest.approx(mean)
    assert (high - low) / 2 == pytest.approx(np.hypot(seed_half, test_half), rel=1e-6)
    assert (high - low) / 2 > max(seed_half, test_half)
    # identical seed runs: the test set's sampling error is what is left
    low, high = seed_interval([0.88, 0.88], n_test)
    assert (high - low) / 2 == pytest.approx(1.959964 * np.sqrt(0.88 * 0.12 / n_test), rel=1e-6)
    with pytest.raises(ValueError):
        seed_interval([0.88], n_test)


def test_welch_is_scipys_unequal_variance_t_test():
    from scipy.stats import ttest_ind

    a, b = [0.89, 0.885, 0.893], [0.86, 0.87, 0.84, 0.855]
    ours = welch_test(a, b)
    theirs = ttest_ind(a, b, equal_var=False)
    assert ours["p_value"] == pytest.approx(theirs.pvalue)
    assert ours["t"] == pytest.approx(theirs.statistic)
    assert ours["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert welch_test([0.8, 0.8], [0.8, 0.8])["p_value"] == 1.0


def test_family_differences_are_real_only_beyond_seed_noise():
    def summary(values):
        return {"runs": [{"seed": i, "test_accuracy": v, "val_accuracy": v}
                         for i, v in enumerate(values)]}

    seed_runs = {"cnn": summary([0.890, 0.891, 0.889]),
                 "simple_rnn": summary([0.850, 0.852, 0.848]),
                 "bidirectional": summary([0.880, 0.860, 0.900]),  # the same mean as ...
                 "lstm": summary([0.875, 0.876, 0.874]),
                 "single": summary([0.9])}  # one run: no spread, no test
    table = seed_tests(seed_runs, ["cnn", "simple_rnn", "bidirectional", "lstm", "single"])
    assert len(table) == 6  # four families with seed runs
    assert (table["welch_p_holm"] >= table["welch_p"]).all()
    pairs = table.set_index(["model_a", "model_b"])
    assert pairs.loc[("cnn", "simple_rnn"), "welch_significant"]
    # 1.5 points apart, but the bidirectional seeds scatter by 2 points: not shown
    assert not pairs.loc[("cnn", "bidirectional"), "welch_significant"]
    words = seed_words(pairs.reset_index().iloc[0])
    assert words.startswith("cnn beats simple_rnn (89.00% vs 85.00% over 3 and 3 seeds")
    assert words.endswith(": a real difference.")
    noise = seed_words(table[(table["model_a"] == "cnn")
                             & (table["model_b"] == "bidirectional")].iloc[0])
    assert noise.startswith("cnn and bidirectional are not distinguishable")
    assert noise.endswith("within seed noise.")
    assert seed_tests({"a": summary([0.8])}, ["a"]).empty


def _tests_of(baseline_right: np.ndarray, tuned_right: np.ndarray) -> pd.DataFrame:
    return mcnemar_tests([result("lstm", baseline_right), result("tuned_lstm", tuned_right)])


SINGLE = " (one run each: these weights, not the configuration)"


@pytest.mark.parametrize(("baseline_right", "tuned_right", "best_is_baseline", "words"), [
    (300, 360, False, "tuning helped" + SINGLE),
    (360, 300, False, "tuning hurt" + SINGLE),
    (330, 333, False, "no real difference" + SINGLE),
    (330, 330, True, "no real difference: no trial beat the baseline on validation (tuned = baseline)"),
])
def test_without_seed_runs_tuning_falls_back_to_the_single_pair(baseline_right, tuned_right,
                                                                best_is_baseline, words):
    """report.seeds: []: one run per configuration, so the pair of weights is all there is
    (exact McNemar), and the verdict says so."""
    n = 400
    base = np.arange(n) < baseline_right
    tuned = np.arange(n)[::-1] < tuned_right  # the errors fall on other reviews
    best = {"baseline_val_accuracy": 0.85, "best_val_accuracy": 0.87,
            "best_is_baseline": best_is_baseline, "trials_complete": 6, "trials_pruned": 2}
    table = tuning_verdicts(_tests_of(base, tuned), {"lstm": ("lstm", best)})
    (row,) = table.itertuples()
    assert row.verdict == words and row.trials == 8
    assert row.test == (None if best_is_baseline else "McNemar, one run each")
    assert (row.baseline_test, row.tuned_test) == (baseline_right / n, tuned_right / n)
    assert "| lstm | 8 (2) | 85.00% | 87.00% |" in "\n".join(tuning_markdown(table))


def _summary(accuracies: tuple[float, ...]) -> dict:
    return {"runs": [{"seed": i, "test_accuracy": a, "val_accuracy": a}
                     for i, a in enumerate(accuracies)]}


@pytest.mark.parametrize(("baseline_seeds", "tuned_seeds", "words"), [
    ((0.75, 0.74, 0.76), (0.90, 0.91, 0.89), "tuning helped"),
    ((0.90, 0.91, 0.89), (0.75, 0.74, 0.76), "tuning hurt"),
    # the tuned weights of train.seed beat the baseline's clearly (McNemar), but over the
    # seeds the configurations scatter into each other
    ((0.75, 0.85, 0.95), (0.90, 0.80, 0.88), "no real difference: within seed noise"),
])
def test_tuning_compares_configurations_over_the_same_seeds(baseline_seeds, tuned_seeds,
                                                            words):
    n = 400
    base = np.arange(n) < 300
    tuned = np.arange(n)[::-1] < 360
    best = {"baseline_val_accuracy": 0.85, "best_val_accuracy": 0.87,
            "best_is_baseline": False, "trials_complete": 6, "trials_pruned": 2}
    table = tuning_verdicts(_tests_of(base, tuned), {"lstm": ("lstm", best)},
                            {"lstm": _summary(baseline_seeds), "tuned_lstm": _summary(tuned_seeds)})
    (row,) = table.itertuples()
    assert row.verdict == words and row.test == "Welch over seeds"
    assert row.mcnemar_p < 0.05  # the single runs alone would have said "tuning helped"
    assert row.difference == pytest.approx(np.mean(tuned_seeds) - np.mean(baseline_seeds))
    assert row.p_value == pytest.approx(welch_test(list(tuned_seeds),
                                                   list(baseline_seeds))["p_value"])
    markdown = "\n".join(tuning_markdown(table))
    assert f"| {np.mean(baseline_seeds):.2%} ± " in markdown
    assert f"| {np.mean(tuned_seeds):.2%} ± " in markdown and "| Welch over seeds |" in markdown


def test_a_study_won_by_its_baseline_is_not_tested_and_holm_counts_the_others():
    n = 400
    base = np.arange(n) < 300
    tuned = np.arange(n)[::-1] < 360
    tests = mcnemar_tests([result("lstm", base), result("tuned_lstm", tuned),
                           result("gru", base), result("tuned_gru", base)])
    won = {"best_is_baseline": True, "trials_complete": 8, "trials_pruned": 0}
    beaten = {"best_is_baseline": False, "trials_complete": 8, "trials_pruned": 0}
    same = _summary((0.75, 0.74, 0.76))
    table = tuning_verdicts(tests, {"lstm": ("lstm", beaten), "gru": ("gru", won)},
                            {"lstm": same, "tuned_lstm": _summary((0.90, 0.91, 0.89)),
                             "gru": same, "tuned_gru": same}).set_index("study")
    assert table.loc["gru", "verdict"] == ("no real difference: no trial beat the baseline "
                                           "on validation (tuned = baseline)")
    assert pd.isna(table.loc["gru", "p_value"]) and pd.isna(table.loc["gru", "p_holm"])
    # one study tested: Holm over one p-value leaves it as it is
    assert table.loc["lstm", "p_holm"] == pytest.approx(table.loc["lstm", "p_value"])
