"""Compare two runs' test accuracies and flag regressions (the scheduled CI rerun's gate).

A run is a ``reports/`` folder (the committed one, or the artifact of the previous scheduled
run). Every model's ``evaluate/NAME/metrics.json`` (its train.seed run) is read, and its
``seeds/NAME.json`` (the seeds stages: the same configuration over several training seeds)
where there is one. The rule, with T = ci.max_accuracy_drop (or --threshold):

- a model with two or more seed runs on both sides fails when its mean test accuracy over
  seeds drops by more than max(T, 2 x SE), SE = sqrt(s1^2/n1 + s2^2/n2) the standard error of
  the difference of the two means (s: the sd over seeds, n: the seed runs, of each run): one
  run's accuracy moves with its seed and with the CPU's numerics, a mean moves less, and a
  family is flagged only when its mean moves beyond what its seed spread allows;
- otherwise (a single run on either side: the reference models, ``report.seeds: []``, an
  older run without seed summaries) it fails when its test accuracy drops by more than T;
- a model that disappeared fails too (unless the params no longer define it).

A seed mean's rise beyond the same allowance is shown (``improved``) but does not fail. Runs
of different data cannot be compared: when the two runs were tested on different numbers of
reviews (the smoke profile against a full run) the gate stops with one line naming both counts
and the profiles they fit.

    python tools/regression_gate.py --previous previous-reports --current reports
    python tools/regression_gate.py --previous-rev HEAD~1          # a committed run

Prints a Markdown table (and appends it to --summary, e.g. $GITHUB_STEP_SUMMARY); exits 1 when
the gate fails; ``--profile smoke`` takes the threshold of that profile (profiles.smoke.ci).
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from imdb_rnn.cli import stage_main
from imdb_rnn.config import load_params
from imdb_rnn.errors import PipelineError
from imdb_rnn.evaluation.leaderboard import models_of
from imdb_rnn.io import read_json
from imdb_rnn.layout import Reports

# How many standard errors of the difference of two seed means a mean may move.
SE_BAND = 2.0


@dataclass(frozen=True)
class Measured:
    """One model's test accuracy in one run: its train.seed run, and its seed runs (that run
    among them) when the run has a seeds summary."""

    single: float
    seeds: tuple[float, ...] = ()

    @property
    def has_spread(self) -> bool:
        return len(self.seeds) >= 2

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seeds) if self.has_spread else self.single

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.seeds) if self.has_spread else None

    def cell(self) -> str:
        if self.has_spread:
            return f"{self.mean:.2%} ± {self.std:.2%} ({len(self.seeds)} seeds)"
        return f"{self.single:.2%}"


def measured(value: Measured | float) -> Measured:
    """A bare accuracy is a single run."""
    return value if isinstance(value, Measured) else Measured(float(value))


def accuracies_of(reports: Path) -> dict[str, Measured]:
    """Every model evaluated under ``reports/evaluate``, with its seed runs when
    ``reports/seeds/NAME.json`` exists."""
    layout = Reports(Path(reports))
    folder = layout.evaluated
    if not folder.is_dir():
        raise PipelineError(f"{folder}: no evaluate folder (not a reports/ folder of a run)")
    found = {}
    for name in layout.evaluated_models():
        single = float(read_json(layout.test_metrics(name), "test metrics")["accuracy"])
        seeds: tuple[float, ...] = ()
        if layout.seeds(name).is_file():
            summary = read_json(layout.seeds(name), f"{name} seed summary")
            seeds = tuple(float(r["test_accuracy"]) for r in summary.get("runs", []))
        found[name] = Measured(single, seeds)
    if not found:
        raise PipelineError(f"{folder}: no */metrics.json in it")
    return found


def test_reviews_of(reports: Path) -> int | None:
    """How many test reviews a run's models were scored on: ``reports/data.json``'s count, or
    without it what its evaluated models report (None when neither says)."""
    layout = Reports(Path(reports))
    data = layout.root / "data.json"
    if data.is_file():
        test = read_json(data, "data report").get("counts", {}).get("test", {})
        if "reviews" in test:
            return int(test["reviews"])
    for name in layout.evaluated_models():
        metrics = read_json(layout.test_metrics(name), "test metrics")
        if "reviews" in metrics:
            return int(metrics["reviews"])
    return None


def profile_sizes(params_file: str | Path) -> dict[str, int | None]:
    """Test reviews of each profile of the params file: 2 x preprocess.per_label for a slice,
    None for every review."""
    raw = yaml.safe_load(Path(params_file).read_text(encoding="utf-8")) or {}
    sizes = {}
    for name in ["full", *((raw.get("profiles") or {}).keys())]:
        per_label = load_params(params_file, name).preprocess.per_label
        sizes[name] = 2 * per_label if per_label is not None else None
    return sizes


def _profile_word(test_reviews: int, sizes: Mapping[str, int | None]) -> str:
    """' (profile NAME)' for the profile whose slice has that many test reviews (or that
    takes every review, for a count no slice has); '' when none fits."""
    names = [n for n, size in sizes.items() if size == test_reviews]
    if not names and test_reviews not in sizes.values():
        names = [n for n, size in sizes.items() if size is None]
    return f" (profile {' or '.join(names)})" if names else ""


def check_same_data(previous: int | None, current: int | None,
                    sizes: Mapping[str, int | None], previous_label: str = "previous run"
                    ) -> None:
    """Refuse to compare runs scored on different test reviews (another profile, another
    slice): their accuracies are not measurements of one thing. ``previous``/``current``: the
    runs' test review counts (None: unknown, not checked)."""
    if previous is None or current is None or previous == current:
        return
    raise PipelineError(
        f"runs of different data cannot be compared: {previous_label} was tested on "
        f"{previous:,} reviews{_profile_word(previous, sizes)}, the current run on "
        f"{current:,}{_profile_word(current, sizes)}")


@dataclass(frozen=True)
class Comparison:
    rows: list[dict]
    failed: list[str]  # one line per failing model

    @property
    def passed(self) -> bool:
        return not self.failed


def compare(previous: Mapping[str, Measured | float], current: Mapping[str, Measured | float],
            threshold: float, defined: set[str] | None = None) -> Comparison:
    """Every model of either run, by the rule of this module's docstring. ``defined``: the
    models the current params define; one of the previous run that they no longer define was
    removed on purpose (say, a study renamed), not lost, and does not fail the gate."""
    rows, failed = [], []
    for name in sorted(previous.keys() | current.keys()):
        before = measured(previous[name]) if name in previous else None
        now = measured(current[name]) if name in current else None
        delta = allowed = se = None
        basis = "-"
        if before is not None and now is not None:
            if before.has_spread and now.has_spread:
                basis = "seeds"
                delta = now.mean - before.mean
                se = math.sqrt(before.std ** 2 / len(before.seeds)
                               + now.std ** 2 / len(now.seeds))
                allowed = max(threshold, SE_BAND * se)
            else:
                basis = "single run"
                delta, allowed = now.single - before.single, threshold
        if now is None and defined is not None and name not in defined:
            status = "removed"
        elif now is None:
            status = "missing"
            failed.append(f"{name}: evaluated in the previous run, missing now")
        elif before is None:
            status = "new"
        elif delta < -allowed:
            status = "regression"
            if basis == "seeds":
                failed.append(
                    f"{name}: mean test accuracy over seeds {before.mean:.4f} -> {now.mean:.4f} "
                    f"({delta * 100:+.2f} points, allowed -{allowed * 100:.2f}: max(threshold "
                    f"{threshold * 100:.2f}, {SE_BAND:g} x SE {se * 100:.2f}))")
            else:
                failed.append(f"{name}: test accuracy {before.single:.4f} -> {now.single:.4f} "
                              f"({delta * 100:+.2f} points, threshold -{threshold * 100:.2f})")
        elif basis == "seeds" and delta > allowed:
            status = "improved"
        else:
            status = "ok"
        rows.append({"model": name, "previous": before, "current": now, "delta": delta,
                     "allowed": allowed, "basis": basis, "status": status})
    return Comparison(rows, failed)


def markdown(comparison: Comparison, previous_label: str, threshold: float) -> str:
    def cell(value: Measured | None) -> str:
        return value.cell() if value is not None else "-"

    lines = [f"### Test accuracy against {previous_label}", "",
             f"Gate: a model with seed runs on both sides fails when its mean test accuracy "
             f"over seeds drops by more than max({threshold * 100:.2f} points, "
             f"{SE_BAND:g} x the standard error of the difference of the two means, from their "
             f"seed sds); a model with a single run on either side when its test accuracy "
             f"drops by more than {threshold * 100:.2f} points; a model that vanished fails.", "",
             "| model | previous | current | change | allowed drop | compared | status |",
             "|---|---|---|---|---|---|---|"]
    for r in comparison.rows:
        change = f"{r['delta'] * 100:+.2f} pts" if r["delta"] is not None else "-"
        allowed = f"{r['allowed'] * 100:.2f} pts" if r["allowed"] is not None else "-"
        mark = {"ok": "ok", "new": "new", "missing": "**missing**",
                "removed": "removed from params.yaml", "improved": "improved (beyond seed noise)",
                "regression": "**regression**"}[r["status"]]
        lines.append(f"| {r['model']} | {cell(r['previous'])} | {cell(r['current'])} | "
                     f"{change} | {allowed} | {r['basis']} | {mark} |")
    lines += ["", "**Gate: passed**" if comparison.passed else
              "**Gate: FAILED**\n\n" + "\n".join(f"- {line}" for line in comparison.failed), ""]
    return "\n".join(lines)


def committed_reports(rev: str, into: Path) -> Path:
    """What the gate reads of commit ``rev``'s reports/ (test metrics, seed summaries, the data
    report), written under ``into``."""
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "reports/evaluate",
                             "reports/seeds", "reports/data.json"],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        raise PipelineError(f"git revision {rev!r}: {listed.stderr.strip()}")
    for name in listed.stdout.split():
        if name.endswith("/metrics.json") or name.startswith("reports/seeds/") \
                or name == "reports/data.json":
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(subprocess.run(["git", "show", f"{rev}:{name}"],
                                              capture_output=True, check=True).stdout)
    return into / "reports"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", help="whose ci.max_accuracy_drop applies (default: the "
                        "params file's profile)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--previous", type=Path, help="reports/ folder of the previous run")
    source.add_argument("--previous-rev", help="a git revision whose committed reports/ to use")
    parser.add_argument("--current", type=Path, default=Path("reports"))
    parser.add_argument("--threshold", type=float, default=None,
                        help="largest allowed drop in test accuracy (default: ci.max_accuracy_drop)")
    parser.add_argument("--summary", type=Path, help="append the Markdown table to this file")
    args = parser.parse_args()
    params = load_params(args.params, args.profile)
    threshold = args.threshold if args.threshold is not None else params.ci.max_accuracy_drop
    defined = {name for name, _, _ in models_of(params)}
    with tempfile.TemporaryDirectory() as tmp:
        previous_dir = (committed_reports(args.previous_rev, Path(tmp)) if args.previous_rev
                        else args.previous)
        label = f"commit {args.previous_rev}" if args.previous_rev else str(args.previous)
        check_same_data(test_reviews_of(previous_dir), test_reviews_of(args.current),
                        profile_sizes(args.params), label)
        comparison = compare(accuracies_of(previous_dir), accuracies_of(args.current),
                             threshold, defined)
    text = markdown(comparison, label, threshold)
    print(text)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as summary:
            summary.write(text + "\n")
    if not comparison.passed:
        sys.exit(1)


if __name__ == "__main__":
    stage_main(main)
