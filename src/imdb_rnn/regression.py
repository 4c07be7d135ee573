"""Compare two runs' test metrics and flag regressions (the scheduled CI rerun's gate).

A run is a ``reports/`` folder (the committed one, or the artifact of the previous scheduled
run). Every model's ``evaluate/NAME/metrics.json`` is compared; a model whose test accuracy
dropped by more than the threshold fails the gate, and so does a model that disappeared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imdb_rnn.errors import PipelineError
from imdb_rnn.io import read_json


def accuracies_of(reports: Path) -> dict[str, float]:
    """Test accuracy of every model evaluated under ``reports/evaluate``."""
    folder = Path(reports) / "evaluate"
    if not folder.is_dir():
        raise PipelineError(f"{folder}: no evaluate folder (not a reports/ folder of a run)")
    found = {path.parent.name: float(read_json(path, "test metrics")["accuracy"])
             for path in sorted(folder.glob("*/metrics.json"))}
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


def compare(previous: dict[str, float], current: dict[str, float], threshold: float) -> Comparison:
    rows, failed = [], []
    for name in sorted(previous.keys() | current.keys()):
        before, now = previous.get(name), current.get(name)
        delta = None if before is None or now is None else now - before
        if now is None:
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
                "regression": "**regression**"}[r["status"]]
        lines.append(f"| {r['model']} | {pct(r['previous'])} | {pct(r['current'])} | {change} | "
                     f"{mark} |")
    lines += ["", "**Gate: passed**" if comparison.passed else
              "**Gate: FAILED**\n\n" + "\n".join(f"- {line}" for line in comparison.failed), ""]
    return "\n".join(lines)
