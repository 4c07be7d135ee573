"""The CI regression gate: fails on a drop beyond the threshold or a vanished model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

from imdb_rnn.errors import PipelineError
from regression_gate import compare, markdown, accuracies_of


def reports(root: Path, accuracies: dict[str, float]) -> Path:
    for name, accuracy in accuracies.items():
        folder = root / "evaluate" / name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
    return root


def test_a_drop_beyond_the_threshold_fails_and_is_named():
    result = compare({"lstm": 0.88, "cnn": 0.87, "gru": 0.86},
                     {"lstm": 0.865, "cnn": 0.866, "gru": 0.87, "new": 0.5}, threshold=0.01)
    assert result.failed == ["lstm: test accuracy 0.8800 -> 0.8650 (-1.50 points, threshold -1.00)"]
    statuses = {r["model"]: r["status"] for r in result.rows}
    assert statuses == {"lstm": "regression", "cnn": "ok", "gru": "ok", "new": "new"}
    assert "**Gate: FAILED**" in markdown(result, "previous", 0.01)


def test_a_missing_model_fails_and_equal_runs_pass():
    assert compare({"a": 0.8}, {}, 0.01).failed == ["a: evaluated in the previous run, missing now"]
    same = compare({"a": 0.8}, {"a": 0.8}, 0.01)
    assert same.passed and "**Gate: passed**" in markdown(same, "x", 0.01)


def test_a_model_the_params_no_longer_define_is_removed_not_missing():
    """A renamed study: its old tuned model is gone on purpose; a defined one must still be
    there."""
    result = compare({"lstm": 0.88, "tuned_lstm_random": 0.86, "gru": 0.87},
                     {"lstm": 0.88, "tuned_lstm": 0.885}, 0.01,
                     defined={"lstm", "gru", "tuned_lstm"})
    statuses = {r["model"]: r["status"] for r in result.rows}
    assert statuses == {"lstm": "ok", "tuned_lstm_random": "removed", "gru": "missing",
                        "tuned_lstm": "new"}
    assert result.failed == ["gru: evaluated in the previous run, missing now"]
    assert "| tuned_lstm_random | 86.00% | - | - | removed from params.yaml |" in markdown(
        result, "x", 0.01)


def test_not_a_reports_folder_is_one_line(tmp_path):
    with pytest.raises(PipelineError, match="no evaluate folder"):
        accuracies_of(tmp_path)


@pytest.mark.parametrize("drop, code", [(0.02, 1), (0.0, 0)])
def test_the_gate_script_exit_code_and_summary(tmp_path, drop, code):
    previous = reports(tmp_path / "previous", {"lstm": 0.88, "cnn": 0.87})
    current = reports(tmp_path / "current", {"lstm": 0.88 - drop, "cnn": 0.87})
    summary = tmp_path / "summary.md"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "regression_gate.py"),
                             "--params", str(ROOT / "params.yaml"), "--previous", str(previous),
                             "--current", str(current), "--summary", str(summary)],
                            capture_output=True, text=True)
    assert result.returncode == code, result.stderr
    assert summary.read_text() in result.stdout
    assert ("regression" in result.stdout) == bool(code)


@pytest.mark.parametrize("profile, code", [("full", 1), ("smoke", 0)])
def test_the_smoke_profile_has_its_own_threshold(tmp_path, profile, code):
    # a 3-point drop: beyond the full run's 1 point, within the smoke run's 5
    previous = reports(tmp_path / "previous", {"lstm": 0.70})
    current = reports(tmp_path / "current", {"lstm": 0.67})
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "regression_gate.py"),
                             "--params", str(ROOT / "params.yaml"), "--profile", profile,
                             "--previous", str(previous), "--current", str(current)],
                            capture_output=True, text=True)
    assert result.returncode == code, result.stderr
