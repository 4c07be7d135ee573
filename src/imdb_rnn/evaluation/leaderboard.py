"""The leaderboard: every model's test accuracy with a bootstrap confidence interval, and which
differences between models are real (paired McNemar tests on the same test reviews)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_rnn.errors import PipelineError
from imdb_rnn.io import read_json
from imdb_rnn.layout import Reports, tuned_name
from imdb_rnn.config.params import Params

# Numbers these families are usually compared with (test accuracy unless marked), from the
# sources named; they use other settings (vocabulary, maxlen, epochs), so they are context,
# not a replication (see the reproductions for those).
PUBLISHED = {
    "feedforward": ("79.3%", "Embedding(1,000, 16), Flatten, Dense; maxlen 100"),
    "cnn": ("79.2%", "Conv1D(32, 7) x2; vocabulary 1,000, maxlen 100"),
    "simple_rnn": ("79.1% / ~85% val",
                   "2 x SimpleRNN(32), vocab 1,000, maxlen 100 / SimpleRNN(32), vocab 10,000, "
                   "maxlen 500 (Chollet)"),
    "lstm": ("83.2% / 86.5%", "LSTM(32), vocab 1,000, maxlen 100 / LSTM from scratch "
                              "(Dai & Le 2015)"),
    "gru": ("-", ""),
    "bidirectional": ("-", ""),
    "tfidf_logreg": ("~90.6%", "TF-IDF uni+bigrams + logistic regression"),
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
    """The seeds stage's summaries that exist (a model without one has a single seed)."""
    return {name: read_json(layout.seeds(name), f"{name} seed summary")
            for name in names if layout.seeds(name).is_file()}


def seed_spread(summary: dict | None, prefix: str = "") -> dict:
    """A model's test accuracy over its training seeds, from its seeds-stage summary (None
    without one; a standard deviation of None for a single seed)."""
    if not summary:
        return {f"{prefix}seeds": None, f"{prefix}seed_mean": None, f"{prefix}seed_std": None}
    return {f"{prefix}seeds": len(summary["seeds"]),
            f"{prefix}seed_mean": summary["test_accuracy_mean"],
            f"{prefix}seed_std": summary["test_accuracy_std"]}


def seed_cell(mean: float | None, std: float | None, runs: int | None) -> str:
    """'mean ± sd (runs)' for a table, '-' without a spread."""
    if std is None or pd.isna(std):
        return "-"
    return f"{mean:.2%} ± {std:.2%} ({int(runs)})"


def leaderboard(results: list[ModelResult], *, n_resamples: int, seed: int,
                seed_runs: dict[str, dict] | None = None) -> pd.DataFrame:
    seed_runs = seed_runs or {}
    rows = []
    for r in results:
        correct = (r.predictions["label"] == r.predictions["predicted"]).to_numpy()
        low, high = bootstrap_ci(correct, n_resamples=n_resamples, seed=seed)
        published = PUBLISHED.get(r.family if r.kind != "reference" else r.name, ("-", ""))
        train = r.train or {}
        rows.append({
            "model": r.name, "kind": r.kind, "family": r.family,
            "test_accuracy": r.metrics["accuracy"], "ci_low": low, "ci_high": high,
            "f1": r.metrics["f1"], "roc_auc": r.metrics["roc_auc"],
            "params": train.get("params_count"),
            "train_seconds": train.get("train_seconds", r.metrics.get("train_seconds")),
            "epochs": train.get("epochs"),
            "reviews_per_second": r.metrics.get("reviews_per_second"),
            "published": published[0], "published_setting": published[1],
            **seed_spread(seed_runs.get(r.name)),
        })
    return pd.DataFrame(rows).sort_values("test_accuracy", ascending=False, ignore_index=True)


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
                  "baseline_test", "tuned_test", "p_value", "trials", "pruned",
                  "baseline_seeds", "baseline_seed_mean", "baseline_seed_std", "p_holm",
                  "verdict"]
# A tuned model whose test accuracy lies within mean +- SEED_BAND sd of its baseline retrained
# with other seeds is no further from the baseline than another training seed alone would be.
SEED_BAND = 2.0


def tuning_verdicts(tests: pd.DataFrame, studies: dict[str, tuple[str, dict]],
                    seed_runs: dict[str, dict] | None = None) -> pd.DataFrame:
    """Per study: its baseline against its tuned model on the test split, in words.

    ``studies``: study -> (baseline model name, the study's best.json). The p-values are the
    exact McNemar tests of each (baseline, tuned) pair, Holm-adjusted over these planned
    comparisons (one per study). McNemar compares two sets of weights; ``seed_runs`` (the seeds
    stage's summaries, by baseline name) add the baseline's spread over training seeds, and a
    significant difference that stays within it is said to be so (the configuration is not
    shown better or worse than the baseline's, only these weights).
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
        rows.append({"study": study, "baseline": baseline, "tuned": tuned,
                     "baseline_val": best.get("baseline_val_accuracy"),
                     "tuned_val": best.get("best_val_accuracy"),
                     "best_is_baseline": bool(best.get("best_is_baseline")),
                     "baseline_test": acc[baseline], "tuned_test": acc[tuned],
                     "p_value": float(row["p_value"]),
                     "trials": (best.get("trials_complete") or 0) + (best.get("trials_pruned") or 0),
                     "pruned": best.get("trials_pruned"),
                     **seed_spread(seed_runs.get(baseline), "baseline_")})
    table = pd.DataFrame(rows, columns=TUNING_COLUMNS[:-2])
    if table.empty:
        return pd.DataFrame(columns=TUNING_COLUMNS)
    table["p_holm"] = multipletests(table["p_value"], method="holm")[1]
    table["verdict"] = [_tuning_words(r) for r in table.itertuples()]
    return table


def _within_seed_spread(r) -> bool:
    if r.baseline_seed_std is None or pd.isna(r.baseline_seed_std):
        return False
    return abs(r.tuned_test - r.baseline_seed_mean) <= SEED_BAND * r.baseline_seed_std


def _tuning_words(r) -> str:
    if r.best_is_baseline:
        return "no trial beat the baseline on validation: tuned = baseline"
    if r.p_holm >= ALPHA:
        return "no real difference"
    words = "tuning helped" if r.tuned_test > r.baseline_test else "tuning hurt"
    if _within_seed_spread(r):
        words += (", but within the baseline's seed spread: these weights, not the "
                  "configuration")
    return words


def tuning_markdown(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    lines = ["", "## Did tuning pay?", "",
             "Each model's baseline (hand-set) against its tuned configuration (the best of its "
             "study by validation accuracy, trained the same way: the best trial's own weights "
             "when trials train as the baseline did, else retrained). The study's first trial is "
             "the baseline itself (by default the baseline's own training, replayed), so the tuned "
             "model is never worse on validation; the test "
             "split decides whether that carries over: exact McNemar test of the pair, "
             f"Holm-adjusted over the {len(table)} models tuned, significance level {ALPHA}. "
             "That test compares two sets of trained weights; *baseline over seeds* is the "
             "baseline trained again with other training seeds (mean ± sd, runs), and a "
             f"significant difference whose tuned test accuracy lies within mean ± {SEED_BAND:g} "
             "sd of those runs is no larger than another training seed alone gives: it says "
             "*within the baseline's seed spread*.", "",
             "| model | trials (pruned) | baseline val | tuned val | baseline test | "
             "baseline over seeds | tuned test | p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        base_val = f"{r.baseline_val:.2%}" if r.baseline_val is not None and pd.notna(
            r.baseline_val) else "-"
        pruned = 0 if r.pruned is None or pd.isna(r.pruned) else int(r.pruned)
        seeds = seed_cell(r.baseline_seed_mean, r.baseline_seed_std, r.baseline_seeds)
        lines.append(f"| {r.baseline} | {int(r.trials)} ({pruned}) | {base_val} | "
                     f"{r.tuned_val:.2%} | {r.baseline_test:.2%} | {seeds} | "
                     f"{r.tuned_test:.2%} | {r.p_holm:.2g} | {r.verdict} |")
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


def leaderboard_markdown(board: pd.DataFrame, tests: pd.DataFrame, top: list[str]) -> str:
    lines = ["# Leaderboard: which network reads movie reviews best?", "",
             "Test split: 25,000 reviews never used for training, early stopping or tuning. "
             "The 95% confidence interval comes from a bootstrap over test reviews; "
             "*published* is the number this kind of model is usually compared with (other "
             "settings, see the note). *Over seeds*: the baseline trained again with other "
             "training seeds (same data and hyperparameters): the spread is the noise of one "
             "run. Sorted by test accuracy.", "",
             "| # | model | kind | test accuracy | 95% CI | over seeds: mean ± sd (n) | F1 | "
             "ROC AUC | params | train s | epochs | reviews/s | published |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(board.itertuples(), start=1):
        seconds = f"{r.train_seconds:,.0f}" if pd.notna(r.train_seconds) else "-"
        speed = f"{r.reviews_per_second:,.0f}" if pd.notna(r.reviews_per_second) else "-"
        seeds = seed_cell(r.seed_mean, r.seed_std, r.seeds)
        lines.append(f"| {i} | {r.model} | {r.kind} | {r.test_accuracy:.2%} | "
                     f"{r.ci_low:.2%} - {r.ci_high:.2%} | {seeds} | {r.f1:.4f} | {r.roc_auc:.4f} | "
                     f"{_fmt_int(r.params)} | {seconds} | {_fmt_int(r.epochs)} | {speed} | "
                     f"{r.published} |")
    lines += ["", "## Which differences are real?", "",
              "Exact McNemar tests on the paired test predictions (does one model get right "
              "the reviews the other gets wrong more often than chance would?), p-values "
              f"Holm-adjusted over all {len(tests)} pairs, significance level {ALPHA}.", ""]
    pairs = tests[tests["model_a"].isin(top) & tests["model_b"].isin(top)]
    lines += [f"- {in_words(row)}" for _, row in pairs.iterrows()]
    lines += ["", "Every pair: `reports/significance.csv`.", "",
              "## Published numbers", ""]
    lines += [f"- **{family}**: {number} ({setting})" for family, (number, setting)
              in PUBLISHED.items() if setting]
    lines.append("")
    return "\n".join(lines)


# --- the stage -----------------------------------------------------------------------------------

FIGURES = "figures"
SLICE_PARAMS = ("maxlen", "units", "dropout")


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


def build_report(params: Params, reports: Path, evaluation: Path, out: Path) -> pd.DataFrame:
    """Leaderboard, significance tests and figures from every evaluated model; returns the board.

    Writes under ``out`` (a temporary folder the stage moves into place): leaderboard.md/.csv,
    significance.csv, figures/*.png and index.html.
    """
    from imdb_rnn.evaluation import plots
    from imdb_rnn.search.comparison import load_study

    rp = params.report
    results = [load_result(name, kind, family, reports, evaluation)
               for name, kind, family in models_of(params)]
    check_same_reviews(results)
    seed_runs = load_seed_runs(Reports(reports, evaluation), list(params.train.models))
    board = leaderboard(results, n_resamples=rp.bootstrap_resamples, seed=rp.seed,
                        seed_runs=seed_runs)
    tests = mcnemar_tests(results)
    top = list(board["model"].head(rp.top))
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    board.to_csv(out / "leaderboard.csv", index=False, float_format="%.5f")
    tests.to_csv(out / "significance.csv", index=False, float_format="%.6g")
    text = leaderboard_markdown(board, tests, top)
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
        figures["Search: parameter importances and slices"] = (
            plots.importances_and_slices(studies, SLICE_PARAMS), "search_slices.png")
    images = {}
    for title, (figure, file) in figures.items():
        _save(figure, out / FIGURES / file)
        images[title] = out / FIGURES / file
    text += "\n## Figures\n\n" + "\n".join(f"![{t}]({FIGURES}/{p.name})" for t, p in images.items())
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
