"""Compare two runs' test metrics and flag regressions (the scheduled CI rerun's gate).

A run is a ``reports/`` folder (the committed one, or the artifact of the previous scheduled
run). Every model's ``evaluate/NAME/metrics.json`` is compared; a model whose test accuracy
dropped by more than the threshold fails the gate, and so does a model that disappeared.

    python tools/regression_gate.py --previous previous-reports --current reports
    python tools/regression_gate.py --previous-rev HEAD~1          # a committed run

Prints a Markdown table (and appends it to --summary, e.g. $GITHUB_STEP_SUMMARY); exits 1 when
any model's test accuracy dropped by more than ci.max_accuracy_drop (params.yaml) or
--threshold; ``--profile smoke`` takes the threshold of that profile (profiles.smoke.ci).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config import load_params
from imdb_rnn.errors import PipelineError
from imdb_rnn.evaluation.leaderboard import models_of
from imdb_rnn.io import read_json
from imdb_rnn.layout import Reports

def accuracies_of(reports: Path) -> dict[str, float]:
    """Test accuracy of every model evaluated under ``reports/evaluate``."""
    layout = Reports(Path(reports))
    folder = layout.evaluated
    if not folder.is_dir():
        raise PipelineError(f"{folder}: no evaluate folder (not a reports/ folder of a run)")
    found = {name: float(read_json(layout.test_metrics(name), "test metrics")["accuracy"])
             for name in layout.evaluated_models()}
    if not found:
        raise PipelineError(f"{folder}: no */metrics.json in it")
    return found


@dataclass(frozen=True)
class Comparison:
    rows: list[dict]
    failed: list[str]  # one line per failing model

    @property
    def passed(self) -> bool:
        return not self.failed


def compare(previous: dict[str, float], current: dict[str, float], threshold: float,
            defined: set[str] | None = None) -> Comparison:
    """Every model of either run. ``defined``: the models the current params define; one of the
    previous run that they no longer define was removed on purpose (say, a study renamed), not
    lost, and does not fail the gate."""
    rows, failed = [], []
    for name in sorted(previous.keys() | current.keys()):
        before, now = previous.get(name), current.get(name)
        delta = None if before is None or now is None else now - before
        if now is None and defined is not None and name not in defined:
            status = "removed"
        elif now is None:
            status = "missing"
            failed.append(f"{name}: evaluated in the previous run, missing now")
        elif before is None:
            status = "new"
        elif delta < -threshold:
            status = "regression"
            failed.append(f"{name}: test accuracy {before:.4f} -> {now:.4f} "
                          f"({delta * 100:+.2f} points, threshold -{threshold * 100:.2f})")
        else:
            status = "ok"
        rows.append({"model": name, "previous": before, "current": now, "delta": delta,
                     "status": status})
    return Comparison(rows, failed)


def markdown(comparison: Comparison, previous_label: str, threshold: float) -> str:
    def pct(value: float | None) -> str:
        return f"{value:.2%}" if value is not None else "-"

    lines = [f"### Test accuracy against {previous_label}", "",
             f"Gate: fail when a model drops by more than {threshold * 100:.2f} points.", "",
             "| model | previous | current | change | status |", "|---|---|---|---|---|"]
    for r in comparison.rows:
        change = f"{r['delta'] * 100:+.2f} pts" if r["delta"] is not None else "-"
        mark = {"ok": "ok", "new": "new", "missing": "**missing**",
                "removed": "removed from params.yaml",
                "regression": "**regression**"}[r["status"]]
        lines.append(f"| {r['model']} | {pct(r['previous'])} | {pct(r['current'])} | {change} | "
                     f"{mark} |")
    lines += ["", "**Gate: passed**" if comparison.passed else
              "**Gate: FAILED**\n\n" + "\n".join(f"- {line}" for line in comparison.failed), ""]
    return "\n".join(lines)


def committed_reports(rev: str, into: Path) -> Path:
    """The reports/evaluate/*/metrics.json of commit ``rev``, written under ``into``."""
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "reports/evaluate"],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        raise PipelineError(f"git revision {rev!r}: {listed.stderr.strip()}")
    for name in listed.stdout.split():
        if name.endswith("/metrics.json"):
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
