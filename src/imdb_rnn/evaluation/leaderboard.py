"""The leaderboard: every model ranked by its mean test accuracy over training seeds, with an
interval that holds both the seeds' and the test set's noise; which family differences exceed
seed noise (Welch's t-test over the seed runs); and beside them the single runs, with bootstrap
confidence intervals and paired McNemar tests on the same test reviews."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_rnn.errors import PipelineError
from imdb_rnn.io import read_json, write_json
from imdb_rnn.layout import Reports, tuned_name
from imdb_rnn.search.figures import FIGURES as SEARCH_FIGURES
from imdb_rnn.config.params import Params

# Numbers these models (by name, else by family) are usually compared with (test accuracy
# unless marked), from the sources named; they use other settings (vocabulary, maxlen, epochs),
# so they are context, not a replication (see the reproductions for those).
PUBLISHED = {
    "feedforward": ("79.3%", "Embedding(1,000, 16), Flatten, Dense; maxlen 100"),
    "fasttext": ("90.56%", "bigram fastText, Keras example (epochs chosen on test)"),
    "nb_ngrams": ("91.87%", "NBSVM uni+bi+trigrams, the same features, fitted as an SVM "
                            "(Mesnil et al. 2014)"),
    "cnn": ("79.2%", "Conv1D(32, 7) x2; vocabulary 1,000, maxlen 100"),
    "simple_rnn": ("79.1% / ~85% val",
                   "2 x SimpleRNN(32), vocab 1,000, maxlen 100 / SimpleRNN(32), vocab 10,000, "
                   "maxlen 500 (Chollet)"),
    "lstm": ("83.2% / 86.5%", "LSTM(32), vocab 1,000, maxlen 100 / LSTM from scratch "
                              "(Dai & Le 2015)"),
    "gru": ("-", ""),
    "bidirectional": ("-", ""),
    "tfidf_logreg": ("~90.6%", "TF-IDF uni+bigrams + logistic regression"),
    "nbsvm": ("91.87%", "NBSVM uni+bi+trigrams (Mesnil et al. 2014; uni+bigrams 91.22%, "
                        "Wang & Manning 2012)"),
    "majority": ("50.0%", "balanced test split"),
}
ALPHA = 0.05


@dataclass(frozen=True)
class ModelResult:
    name: str
    kind: str  # baseline, tuned, reference, null
    family: str
    metrics: dict
    train: dict | None  # the training summary, None for reference models without one
    predictions: pd.DataFrame  # review, label, probability, predicted


def load_result(name: str, kind: str, family: str, reports: Path, evaluation: Path
                ) -> ModelResult:
    layout = Reports(reports, evaluation)
    metrics = read_json(layout.test_metrics(name), f"{name} test metrics")
    train_file = layout.train_summary(name)
    train = read_json(train_file, f"{name} training summary") if train_file.is_file() else None
    path = layout.predictions(name)
    try:
        predictions = pd.read_csv(path).sort_values("review", ignore_index=True)
    except FileNotFoundError:
        raise PipelineError(f"{path}: {name} predictions not found (run dvc repro)") from None
    return ModelResult(name, kind, family, metrics, train, predictions)


def bootstrap_ci(correct: np.ndarray, *, n_resamples: int, seed: int,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy (resampling test reviews)."""
    from scipy.stats import bootstrap

    if correct.all() or not correct.any():  # no spread to resample
        value = float(correct.mean())
        return value, value
    result = bootstrap((correct.astype(np.float64),), np.mean, n_resamples=n_resamples,
                       confidence_level=level, method="percentile", vectorized=True,
                       batch=200, random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def check_same_reviews(results: list[ModelResult]) -> None:
    """Paired tests need every model's predictions on the same test reviews."""
    first = results[0]
    for other in results[1:]:
        if not first.predictions["review"].equals(other.predictions["review"]):
            raise PipelineError(f"{other.name} and {first.name} were evaluated on different "
                                "test reviews; re-run their evaluate stages")


def load_seed_runs(layout: Reports, names: list[str]) -> dict[str, dict]:
    """The seeds stages' summaries that exist (a model without one has a single run)."""
    return {name: read_json(layout.seeds(name), f"{name} seed summary")
            for name in names if layout.seeds(name).is_file()}


def seed_accuracies(summary: dict | None, key: str = "test_accuracy") -> list[float]:
    """A model's accuracies (``key``) over its training seeds, from its seeds summary."""
    return [float(r[key]) for r in (summary or {}).get("runs", [])]


def seed_interval(accuracies: list[float], n_test: int, level: float = 0.95
                  ) -> tuple[float, float]:
    """Interval of a model's mean test accuracy over training seeds that includes both noises.

    With n >= 2 seed runs of mean m and standard deviation s on N test reviews:
    ``m ± sqrt((t(n-1) * s / sqrt(n))^2 + (z * sqrt(m (1 - m) / N))^2)``: the t-interval of
    the mean over training seeds and the binomial sampling error of the N test reviews (shared
    by every run, so it does not shrink with n), their half-widths added in quadrature
    (clipped to [0, 1]).
    """
    from scipy.stats import norm, t

    n = len(accuracies)
    if n < 2:
        raise ValueError("an interval over seeds needs at least two runs")
    mean = statistics.fmean(accuracies)
    quantile = 1 - (1 - level) / 2
    seed_half = float(t.ppf(quantile, n - 1)) * statistics.stdev(accuracies) / math.sqrt(n)
    test_half = float(norm.ppf(quantile)) * math.sqrt(mean * (1 - mean) / n_test)
    half = math.hypot(seed_half, test_half)
    return max(0.0, mean - half), min(1.0, mean + half)


def welch_test(a: list[float], b: list[float]) -> dict:
    """Welch's t-test (two-sided, unequal variances) of two models' seed runs: difference of
    means (a - b), its standard error, t, Welch-Satterthwaite degrees of freedom, p-value."""
    from scipy.stats import t

    var_a, var_b = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    difference = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(var_a + var_b)
    if se == 0:  # both constant: equal, or a difference no seed moves
        return {"difference": difference, "se": 0.0, "t": math.nan, "df": math.nan,
                "p_value": 1.0 if difference == 0 else 0.0}
    df = (var_a + var_b) ** 2 / (var_a ** 2 / (len(a) - 1) + var_b ** 2 / (len(b) - 1))
    statistic = difference / se
    return {"difference": difference, "se": se, "t": statistic, "df": df,
            "p_value": float(2 * t.sf(abs(statistic), df))}


SEED_TEST_COLUMNS = ["model_a", "model_b", "seeds_a", "seeds_b", "seed_mean_a", "seed_mean_b",
                     "seed_difference", "seed_se", "welch_t", "welch_df", "welch_p",
                     "welch_p_holm", "welch_significant"]


def seed_tests(seed_runs: dict[str, dict], names: list[str]) -> pd.DataFrame:
    """Welch's t-test on the seed runs' test accuracies for every pair of ``names`` (in that
    order) that both have two or more runs, p-values Holm-adjusted over those pairs."""
    from statsmodels.stats.multitest import multipletests

    runs = {name: seed_accuracies(seed_runs.get(name)) for name in names}
    rows = []
    for a, b in itertools.combinations([n for n in names if len(runs[n]) >= 2], 2):
        test = welch_test(runs[a], runs[b])
        rows.append({"model_a": a, "model_b": b, "seeds_a": len(runs[a]),
                     "seeds_b": len(runs[b]), "seed_mean_a": statistics.fmean(runs[a]),
                     "seed_mean_b": statistics.fmean(runs[b]),
                     "seed_difference": test["difference"], "seed_se": test["se"],
                     "welch_t": test["t"], "welch_df": test["df"], "welch_p": test["p_value"]})
    table = pd.DataFrame(rows, columns=SEED_TEST_COLUMNS)
    if len(table):
        table["welch_p_holm"] = multipletests(table["welch_p"], method="holm")[1]
        table["welch_significant"] = table["welch_p_holm"] < ALPHA
    return table


def seed_words(row) -> str:
    """One Welch test of two families' seed runs as a sentence."""
    a, b = row["model_a"], row["model_b"]
    mean = {a: row["seed_mean_a"], b: row["seed_mean_b"]}
    runs = {a: int(row["seeds_a"]), b: int(row["seeds_b"])}
    if mean[a] < mean[b]:
        a, b = b, a
    gap = (f"{mean[a]:.2%} vs {mean[b]:.2%} over {runs[a]} and {runs[b]} seeds; difference "
           f"{abs(row['seed_difference']) * 100:.2f} points, SE {row['seed_se'] * 100:.2f}; "
           f"Welch p = {row['welch_p']:.2g}, Holm-adjusted {row['welch_p_holm']:.2g}")
    if row["welch_significant"]:
        return f"{a} beats {b} ({gap}): a real difference."
    return f"{a} and {b} are not distinguishable ({gap}): within seed noise."


def seed_cell(mean: float | None, std: float | None, runs: int | None) -> str:
    """'mean ± sd (runs)' for a table, '-' without a spread."""
    if std is None or pd.isna(std):
        return "-"
    return f"{mean:.2%} ± {std:.2%} ({int(runs)})"


def leaderboard(results: list[ModelResult], *, n_resamples: int, seed: int,
                seed_runs: dict[str, dict] | None = None) -> pd.DataFrame:
    """Every model, ranked by its mean test accuracy over training seeds (a single run's
    accuracy for a model without seed runs), with the interval of :func:`seed_interval`
    (the single run's bootstrap interval with one run), beside its single run."""
    seed_runs = seed_runs or {}
    rows = []
    for r in results:
        correct = (r.predictions["label"] == r.predictions["predicted"]).to_numpy()
        low, high = bootstrap_ci(correct, n_resamples=n_resamples, seed=seed)
        base = r.name.removeprefix("tuned_") if r.kind != "reference" else r.name
        published = PUBLISHED.get(base) or PUBLISHED.get(r.family, ("-", ""))
        train = r.train or {}
        summary = seed_runs.get(r.name)
        tests = seed_accuracies(summary)
        vals = seed_accuracies(summary, "val_accuracy")
        if len(tests) >= 2:
            mean = statistics.fmean(tests)
            mean_low, mean_high = seed_interval(tests, len(correct))
        else:
            mean, mean_low, mean_high = r.metrics["accuracy"], low, high
        rows.append({
            "model": r.name, "kind": r.kind, "family": r.family,
            "mean_accuracy": mean, "mean_ci_low": mean_low, "mean_ci_high": mean_high,
            "seeds": len(tests) if summary else None,
            "seed_std": statistics.stdev(tests) if len(tests) >= 2 else None,
            "mean_val_accuracy": statistics.fmean(vals) if vals else None,
            "test_accuracy": r.metrics["accuracy"], "ci_low": low, "ci_high": high,
            "f1": r.metrics["f1"], "roc_auc": r.metrics["roc_auc"],
            "params": train.get("params_count"),
            "train_seconds": train.get("train_seconds", r.metrics.get("train_seconds")),
            "epochs": train.get("epochs"),
            "reviews_per_second": r.metrics.get("reviews_per_second"),
            "published": published[0], "published_setting": published[1],
        })
    return pd.DataFrame(rows).sort_values("mean_accuracy", ascending=False, ignore_index=True)


def mcnemar_tests(results: list[ModelResult]) -> pd.DataFrame:
    """Exact McNemar test for every pair, with Holm-adjusted p-values across all pairs."""
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.multitest import multipletests

    correct = {r.name: (r.predictions["label"] == r.predictions["predicted"]).to_numpy()
               for r in results}
    rows = []
    for a, b in itertools.combinations(correct, 2):
        only_a = int((correct[a] & ~correct[b]).sum())
        only_b = int((~correct[a] & correct[b]).sum())
        test = mcnemar([[0, only_a], [only_b, 0]], exact=True)
        rows.append({"model_a": a, "model_b": b, "accuracy_a": correct[a].mean(),
                     "accuracy_b": correct[b].mean(), "only_a_right": only_a,
                     "only_b_right": only_b, "p_value": float(test.pvalue)})
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = multipletests(table["p_value"], method="holm")[1]
        table["significant"] = table["p_holm"] < ALPHA
    return table


def in_words(row: pd.Series) -> str:
    """One McNemar result as a sentence."""
    a, b = row["model_a"], row["model_b"]
    if row["accuracy_a"] < row["accuracy_b"]:
        a, b = b, a
    acc = {row["model_a"]: row["accuracy_a"], row["model_b"]: row["accuracy_b"]}
    p = f"p = {row['p_value']:.2g}, Holm-adjusted {row['p_holm']:.2g}"
    if row["significant"]:
        return (f"{a} beats {b} ({acc[a]:.2%} vs {acc[b]:.2%}; {p}): a real difference.")
    return (f"{a} and {b} are not distinguishable ({acc[a]:.2%} vs {acc[b]:.2%}; {p}): "
            "the gap is within noise.")


TUNING_COLUMNS = ["study", "baseline", "tuned", "baseline_val", "tuned_val", "best_is_baseline",
                  "trials", "pruned", "baseline_seeds", "baseline_mean", "baseline_std",
                  "tuned_seeds", "tuned_mean", "tuned_std", "baseline_val_mean",
                  "tuned_val_mean", "difference", "se", "baseline_test", "tuned_test",
                  "mcnemar_p", "test", "p_value", "p_holm", "verdict"]
WELCH, MCNEMAR = "Welch over seeds", "McNemar, one run each"


def tuning_verdicts(tests: pd.DataFrame, studies: dict[str, tuple[str, dict]],
                    seed_runs: dict[str, dict] | None = None) -> pd.DataFrame:
    """Per study: its baseline configuration against its tuned configuration, in words.

    ``studies``: study -> (baseline model name, the study's best.json); ``seed_runs``: the
    seeds stages' summaries by model name (baseline and ``tuned_STUDY``). Both configurations
    are trained with the same training seeds, so they are compared by Welch's t-test on those
    runs' test accuracies; without two seed runs on each side (``report.seeds: []``) the
    single runs are compared by the exact McNemar test of the pair (``tests``) instead, which
    judges these two sets of weights, not the configurations. A study won by its baseline
    (trial 0) is not tested: tuned = baseline, seed runs reused. P-values are Holm-adjusted
    over the studies tested (planned comparisons, one per study).
    """
    from statsmodels.stats.multitest import multipletests

    seed_runs = seed_runs or {}
    rows = []
    for study, (baseline, best) in studies.items():
        tuned = tuned_name(study)
        pair = tests[((tests["model_a"] == baseline) & (tests["model_b"] == tuned))
                     | ((tests["model_a"] == tuned) & (tests["model_b"] == baseline))]
        if pair.empty:
            continue
        row = pair.iloc[0]
        acc = {row["model_a"]: row["accuracy_a"], row["model_b"]: row["accuracy_b"]}
        runs = {m: seed_accuracies(seed_runs.get(m)) for m in (baseline, tuned)}
        vals = {m: seed_accuracies(seed_runs.get(m), "val_accuracy") for m in (baseline, tuned)}
        both = all(len(v) >= 2 for v in runs.values())
        entry = {"study": study, "baseline": baseline, "tuned": tuned,
                 "baseline_val": best.get("baseline_val_accuracy"),
                 "tuned_val": best.get("best_val_accuracy"),
                 "best_is_baseline": bool(best.get("best_is_baseline")),
                 "trials": (best.get("trials_complete") or 0) + (best.get("trials_pruned") or 0),
                 "pruned": best.get("trials_pruned"),
                 "baseline_test": acc[baseline], "tuned_test": acc[tuned],
                 "mcnemar_p": float(row["p_value"])}
        for side, model in (("baseline", baseline), ("tuned", tuned)):
            entry |= {f"{side}_seeds": len(runs[model]) or None,
                      f"{side}_mean": statistics.fmean(runs[model]) if runs[model] else None,
                      f"{side}_std": (statistics.stdev(runs[model]) if len(runs[model]) >= 2
                                      else None),
                      f"{side}_val_mean": statistics.fmean(vals[model]) if vals[model] else None}
        if entry["best_is_baseline"]:
            entry |= {"difference": 0.0, "se": None, "test": None, "p_value": None}
        elif both:
            welch = welch_test(runs[tuned], runs[baseline])
            entry |= {"difference": welch["difference"], "se": welch["se"], "test": WELCH,
                      "p_value": welch["p_value"]}
        else:
            entry |= {"difference": acc[tuned] - acc[baseline], "se": None, "test": MCNEMAR,
                      "p_value": float(row["p_value"])}
        rows.append(entry)
    table = pd.DataFrame(rows, columns=TUNING_COLUMNS[:-2])
    if table.empty:
        return pd.DataFrame(columns=TUNING_COLUMNS)
    tested = table["p_value"].notna()
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p_value"].astype(float),
                                                    method="holm")[1]
    table["verdict"] = [_tuning_words(r) for r in table.itertuples()]
    return table


def tuning_answer(verdict: str) -> str:
    """The answer a verdict gives to "did tuning pay?" (*tuning helped*, *tuning hurt*, *no real
    difference*), without the reason after it: two reruns agree when their answers do."""
    return verdict.split(":")[0].split(" (")[0].strip()


def _tuning_words(r) -> str:
    if r.best_is_baseline:
        return "no real difference: no trial beat the baseline on validation (tuned = baseline)"
    single = " (one run each: these weights, not the configuration)" if r.test == MCNEMAR else ""
    if r.p_holm >= ALPHA:
        return ("no real difference: within seed noise" if r.test == WELCH
                else f"no real difference{single}")
    return ("tuning helped" if r.difference > 0 else "tuning hurt") + single


def _pct(value: object) -> str:
    return f"{value:.2%}" if value is not None and pd.notna(value) else "-"


def tuning_markdown(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    tested = int(table["p_value"].notna().sum())
    lines = ["", "## Did tuning pay?", "",
             "Each model's baseline (hand-set) configuration against its tuned configuration "
             "(the best of its study by validation accuracy). The study's first trial is the "
             "baseline itself, so the tuned configuration is never worse on validation; the "
             "test split decides whether that carries over. Both configurations are trained "
             "with the same training seeds (train.seed and report.seeds: stages seeds@MODEL "
             "and seeds_tuned@STUDY) and compared as configurations: Welch's t-test (two-sided, "
             "unequal variances) on the test accuracies of their seed runs, p-values "
             f"Holm-adjusted over the {tested} studies tested, significance level {ALPHA}. "
             "*No real difference: within seed noise* means the gap is no larger than another "
             "training seed could make it. A study won by its baseline (trial 0) is not "
             "tested: its tuned configuration *is* the baseline, whose seed runs it reuses. "
             "Without two seed runs per configuration (`report.seeds: []`) the single runs are "
             "compared instead (exact McNemar test of the pair), which judges two sets of "
             "weights, not two configurations, and the verdict says so. "
             "`reports/tuning.csv` also holds the single runs and their McNemar test.", "",
             "| model | trials (pruned) | baseline val (trial 0) | tuned val (best trial) | "
             "baseline test over seeds | tuned test over seeds | difference (SE) | test | "
             "p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        pruned = 0 if r.pruned is None or pd.isna(r.pruned) else int(r.pruned)
        base = (seed_cell(r.baseline_mean, r.baseline_std, r.baseline_seeds)
                if r.baseline_std is not None and pd.notna(r.baseline_std)
                else f"{r.baseline_test:.2%} (1)")
        tuned = (seed_cell(r.tuned_mean, r.tuned_std, r.tuned_seeds)
                 if r.tuned_std is not None and pd.notna(r.tuned_std)
                 else f"{r.tuned_test:.2%} (1)")
        se = f" ({r.se * 100:.2f})" if r.se is not None and pd.notna(r.se) else ""
        difference = f"{r.difference * 100:+.2f} pts{se}"
        p = f"{r.p_holm:.2g}" if r.p_holm is not None and pd.notna(r.p_holm) else "-"
        lines.append(f"| {r.baseline} | {int(r.trials)} ({pruned}) | {_pct(r.baseline_val)} | "
                     f"{_pct(r.tuned_val)} | {base} | {tuned} | {difference} | "
                     f"{r.test if isinstance(r.test, str) else '-'} | {p} | {r.verdict} |")
    return lines


def expected_max(values: list[float] | np.ndarray) -> list[float]:
    """Expected best of n trials, n = 1..N, drawn from the N observed values (Dodge et al. 2019,
    "Show Your Work", eq. 1): E[max_n] = sum_i v_(i) ((i/N)^n - ((i-1)/N)^n)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n_values = len(v)
    i = np.arange(1, n_values + 1)
    return [float(np.sum(v * ((i / n_values) ** n - ((i - 1) / n_values) ** n)))
            for n in range(1, n_values + 1)]


def models_of(params: Params) -> list[tuple[str, str, str]]:
    """(name, kind, family) of every model the pipeline evaluates."""
    from imdb_rnn.evaluation.reference import REFERENCE_MODELS

    models = [(name, "baseline", section.family) for name, section in params.train.models.items()]
    models += [(tuned_name(study), "tuned", params.train.models[spec.model].family)
               for study, spec in params.tune.studies.items()]
    models += [(name, "reference" if name != "majority" else "null", name)
               for name in REFERENCE_MODELS]
    return models


def _fmt_int(value: object) -> str:
    return f"{int(value):,}" if value is not None and pd.notna(value) else "-"


SEED_INTERVAL_TEXT = (
    "The interval of a mean over n >= 2 seed runs (mean m, standard deviation s, N test "
    "reviews) is m ± √((t · s/√n)² + (1.96 · √(m(1−m)/N))²), t the 97.5% quantile of "
    "Student's t with n−1 degrees of freedom: the t-interval of the mean over training seeds "
    "and the binomial sampling error of the test reviews (shared by every run, so it does not "
    "shrink with n), their half-widths added in quadrature (clipped to 0-100%). A model with "
    "one run (the reference models, which have no training seed to vary, and every model when "
    "`report.seeds` is empty) has its single run's bootstrap interval.")


def leaderboard_markdown(board: pd.DataFrame, tests: pd.DataFrame, top: list[str],
                         family_tests: pd.DataFrame | None = None, *,
                         test_reviews: int | None = None) -> str:
    """leaderboard.md without its figures: the table, which differences are real (over seeds
    between the families, ``family_tests``; single runs of the ``top`` models, ``tests``) and
    the published numbers."""
    family_tests = family_tests if family_tests is not None else pd.DataFrame(
        columns=SEED_TEST_COLUMNS)
    lines = ["# Leaderboard: which network reads movie reviews best?", "",
             f"Test split: {f'{test_reviews:,} reviews' if test_reviews else 'reviews'} never "
             "used for training, early stopping or tuning. "
             "Every network is trained with several training seeds (train.seed and "
             "`report.seeds`; same data and hyperparameters), and models are **ranked by their "
             "mean test accuracy over those seed runs**: one run's accuracy moves with its seed "
             "(sd over seeds in the table), so a ranking of single runs can change on a rerun. "
             "*95% interval* is that of the mean, with the seeds' and the test set's noise. "
             + SEED_INTERVAL_TEXT + " *Single run*: the train.seed run alone (the weights "
             "evaluated in `reports/evaluate/`, with F1, ROC AUC and the rest), its 95% "
             "confidence interval from a bootstrap over test reviews. *Published* is the number "
             "this kind of model is usually compared with (other settings, see the note).", "",
             "| # | model | kind | mean test accuracy (seeds) | 95% interval | sd over seeds | "
             "single run | single run 95% CI | F1 | ROC AUC | params | train s | epochs | "
             "reviews/s | published |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(board.itertuples(), start=1):
        seconds = f"{r.train_seconds:,.0f}" if pd.notna(r.train_seconds) else "-"
        speed = f"{r.reviews_per_second:,.0f}" if pd.notna(r.reviews_per_second) else "-"
        runs = f" ({int(r.seeds)})" if r.seeds is not None and pd.notna(r.seeds) else " (1)"
        lines.append(f"| {i} | {r.model} | {r.kind} | {r.mean_accuracy:.2%}{runs} | "
                     f"{r.mean_ci_low:.2%} - {r.mean_ci_high:.2%} | {_pct(r.seed_std)} | "
                     f"{r.test_accuracy:.2%} | {r.ci_low:.2%} - {r.ci_high:.2%} | {r.f1:.4f} | "
                     f"{r.roc_auc:.4f} | {_fmt_int(r.params)} | {seconds} | "
                     f"{_fmt_int(r.epochs)} | {speed} | {r.published} |")
    family_pairs = (f"all {len(family_tests)} pairs of families" if len(family_tests)
                    else "the pairs of families")
    lines += ["", "## Which differences are real?", "",
              "**Between families, over training seeds.** The test is Welch's t-test "
              "(two-sided, unequal variances) on the test accuracies of the two families' seed "
              "runs (the baselines of `train.models`), with p-values Holm-adjusted over "
              f"{family_pairs}, significance level {ALPHA}. A difference "
              "is *real* when it is larger than their training seeds' scatter lets chance "
              "explain; *within seed noise* means another set of seeds could reverse it (not "
              "that the two are equal: with few seeds only a gap of several standard "
              "deviations passes). Every run is scored on the same test reviews, so the test "
              "set's own sampling error is common to both and largely cancels in a difference. "
              "Tuned configurations are compared with their baselines in *Did tuning pay?*.", ""]
    if family_tests.empty:
        lines.append("No two families have two or more seed runs each (`report.seeds` is "
                     "empty): only the single runs below are compared.")
    else:
        rank = {name: i for i, name in enumerate(board["model"])}
        ordered = sorted(family_tests.to_dict("records"), key=lambda row: sorted(
            (rank.get(row["model_a"], 0), rank.get(row["model_b"], 0))))
        lines += [f"- {seed_words(row)}" for row in ordered]
    lines += ["", f"**Single runs (these weights).** Exact McNemar tests on the paired test "
              "predictions of the train.seed runs (does one model get right the reviews the "
              "other gets wrong more often than chance would?), p-values Holm-adjusted over all "
              f"{len(tests)} pairs, significance level {ALPHA}, for the top {len(top)} models. "
              "They judge two sets of trained weights, not two families: a gap between single "
              "runs can be real for these weights and still within seed noise.", ""]
    pairs = tests[tests["model_a"].isin(top) & tests["model_b"].isin(top)]
    lines += [f"- {in_words(row)}" for _, row in pairs.iterrows()]
    lines += ["", "Every pair, both tests: `reports/significance.csv`.", "",
              "## Published numbers", ""]
    lines += [f"- **{family}**: {number} ({setting})" for family, (number, setting)
              in PUBLISHED.items() if setting]
    lines.append("")
    return "\n".join(lines)


# --- the stage -----------------------------------------------------------------------------------

FIGURES = "figures"
METRICS = "metrics"


def _save(figure, path: Path) -> None:
    from imdb_rnn.evaluation import plots

    figure.savefig(path, dpi=100, format="png")
    plots.close(figure)


def html_page(sections: list[str], images: dict[str, Path]) -> str:
    """One self-contained page: the Markdown sections as HTML, figures inlined (base64)."""
    import base64

    import markdown

    body = "\n".join(markdown.markdown(text, extensions=["tables"]) for text in sections)
    figures = "\n".join(
        f'<figure><img alt="{title}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"><figcaption>{title}</figcaption>'
        "</figure>" for title, path in images.items())
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;"
             "padding:3px 6px;text-align:right}img{max-width:100%}"
             "figure{margin:1.5em 0}figcaption{color:#555}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>IMDB sentiment: "
            f"results</title><style>{style}</style></head><body>{body}<h2>Figures</h2>"
            f"{figures}</body></html>\n")


# The numbers-only metrics file of each model (metrics/NAME.json, what `dvc metrics show`,
# `dvc metrics diff` and `dvc exp show` read): leaderboard column -> metric name. Accuracy only,
# short names, the same for every model: one row per model, few columns; timings (which change
# on every rerun) stay in leaderboard.csv.
MODEL_METRICS = {"mean_accuracy": "test_mean", "seed_std": "test_sd", "seeds": "seeds",
                 "mean_val_accuracy": "val_mean", "test_accuracy": "test"}


def model_metrics(board: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each model's row of the leaderboard as flat numbers (a missing value left out: a
    reference has no seeds and no validation)."""
    out = {}
    for row in board.to_dict("records"):
        values = {}
        for column, name in MODEL_METRICS.items():
            value = row.get(column)
            if value is None or pd.isna(value):
                continue
            values[name] = int(value) if name == "seeds" else round(float(value), 5)
        out[str(row["model"])] = values
    return out


def build_report(params: Params, reports: Path, evaluation: Path, out: Path) -> pd.DataFrame:
    """Leaderboard, significance tests and figures from every evaluated model; returns the board.

    Writes under ``out`` (a temporary folder the stage moves into place): leaderboard.md/.csv,
    significance.csv, figures/*.png, index.html and metrics/NAME.json (numbers only).
    """
    from imdb_rnn.evaluation import plots
    from imdb_rnn.search.comparison import load_study

    rp = params.report
    results = [load_result(name, kind, family, reports, evaluation)
               for name, kind, family in models_of(params)]
    check_same_reviews(results)
    networks = [r.name for r in results if r.kind in ("baseline", "tuned")]
    seed_runs = load_seed_runs(Reports(reports, evaluation), networks)
    board = leaderboard(results, n_resamples=rp.bootstrap_resamples, seed=rp.seed,
                        seed_runs=seed_runs)
    tests = mcnemar_tests(results)
    family_tests = seed_tests(seed_runs, [r.name for r in results if r.kind == "baseline"])
    top = list(board["model"].head(rp.top))
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    board.to_csv(out / "leaderboard.csv", index=False, float_format="%.5f")
    (out / METRICS).mkdir(parents=True, exist_ok=True)
    for name, values in model_metrics(board).items():
        write_json(out / METRICS / f"{name}.json", values)
    tests.merge(family_tests, on=["model_a", "model_b"], how="left").to_csv(
        out / "significance.csv", index=False, float_format="%.6g")
    reviews = results[0].metrics.get("reviews") if results else None
    text = leaderboard_markdown(board, tests, top, family_tests,
                                test_reviews=int(reviews) if reviews else None)
    layout = Reports(reports, evaluation)
    tuning = tuning_verdicts(tests, {
        study: (spec.model, read_json(layout.study_best(study), f"study {study} summary"))
        for study, spec in params.tune.studies.items()}, seed_runs)
    tuning.to_csv(out / "tuning.csv", index=False, float_format="%.6g")
    if not tuning.empty:
        head, _, rest = text.partition("\n## Which differences are real?")
        text = head + "\n".join(tuning_markdown(tuning)) + "\n\n## Which differences are real?" + rest

    trained = [r for r in results if r.train is not None]
    histories = {r.name: pd.read_csv(layout.history(r.name)) for r in trained}
    figures = {
        "Learning curves": (plots.learning_curves_grid(histories), "learning_curves.png"),
        "ROC curves, test split": (plots.roc_overlay(
            {r.name: pd.read_csv(layout.roc(r.name)) for r in results},
            {r.name: r.metrics["roc_auc"] for r in results}), "roc.png"),
        "Confusion matrices, test split": (plots.confusion_grid(
            {r.name: r.metrics["confusion"] for r in results}), "confusion.png"),
        "Accuracy against training time": (plots.accuracy_vs_time(board), "accuracy_vs_time.png"),
    }
    studies = {name: load_study(layout.study_dir(name)) for name in params.tune.studies}
    if studies:
        curves = {name: expected_max(trials.loc[trials["state"] == "COMPLETE", "value"])
                  for name, (_, trials) in studies.items()}
        figures["Expected best validation accuracy of each study (Dodge et al. 2019)"] = (
            plots.expected_max_curves(curves), "expected_max.png")
    images = {}
    links = {}  # title -> path relative to the leaderboard (reports/)
    for title, (figure, file) in figures.items():
        _save(figure, out / FIGURES / file)
        images[title] = out / FIGURES / file
        links[title] = f"{FIGURES}/{file}"
    # Each study's search as Optuna draws it (the tune stage's PNGs; importances only from
    # MIN_IMPORTANCE_TRIALS complete trials on).
    for name in params.tune.studies:
        folder = layout.study_dir(name) / "figures"
        for file, caption in SEARCH_FIGURES.items():
            path = folder / f"{file}.png"
            if path.is_file():
                title = f"Search, study {name}: {caption}"
                images[title] = path
                links[title] = path.relative_to(reports).as_posix()
    text += "\n## Figures\n\n" + "\n".join(f"![{t}]({links[t]})" for t in images)
    (out / "leaderboard.md").write_text(text + "\n", encoding="utf-8")
    sections = [text.split("\n## Figures")[0]]
    search = layout.search_comparison
    if search.is_file():
        sections.append(search.read_text(encoding="utf-8").split("![")[0])
    samplers = layout.samplers_comparison
    if samplers.is_file():
        sections.append(samplers.read_text(encoding="utf-8").split("![")[0])
    data = layout.data_report
    if data.is_file():
        sections.append(data.read_text(encoding="utf-8"))
    (out / "index.html").write_text(html_page(sections, images), encoding="utf-8")
    return board
