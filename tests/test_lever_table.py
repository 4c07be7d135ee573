"""tools/lever_table.py: the levers' table is read from the measurements' files."""

from __future__ import annotations

import json

import pytest
import yaml

import lever_table


def _sweep(path, variants):
    path.write_text(json.dumps({"variants": {
        name: {"runs": [{"seed": s, "best_val_accuracy": v, "test_accuracy": t,
                         "train_seconds": sec} for s, v, t, sec in runs]}
        for name, runs in variants.items()}}))


def test_rows_come_from_the_files_with_mean_sd_and_change(tmp_path):
    _sweep(tmp_path / "ff.json", {
        "baseline": [(42, 0.87, 0.88, 30), (1, 0.88, 0.89, 32)],
        "changed": [(42, 0.89, 0.90, 60), (1, 0.90, 0.91, 62)]})
    (tmp_path / "gru_seeds.json").write_text(json.dumps({"runs": [
        {"seed": 42, "val_accuracy": 0.86, "test_accuracy": 0.87},
        {"seed": 1, "val_accuracy": 0.86, "test_accuracy": 0.87}]}))
    _sweep(tmp_path / "gru.json", {"changed": [(42, 0.85, 0.86, 200), (1, 0.85, 0.86, 210)]})
    rows = [{"model": "feedforward", "change": "ngram_buckets 64", "before": "ff.json#baseline",
             "after": "ff.json#changed", "kept": True, "note": "bigrams pay"},
            {"model": "gru", "change": "pooling concat", "before": "gru_seeds.json",
             "after": "gru.json#changed", "kept": False}]
    (tmp_path / "levers.yaml").write_text(yaml.safe_dump(rows))
    lever_table.main([str(tmp_path / "levers.yaml"), "--out", str(tmp_path / "levers.md")])
    table = (tmp_path / "levers.md").read_text()
    first, second = [line for line in table.splitlines() if line.startswith("| feedforward")
                     or line.startswith("| gru")]
    assert "| 87.50 ± 0.71 | 89.50 ± 0.71 | 88.50 ± 0.71 | 90.50 ± 0.71 (90.00, 91.00) |" in first
    assert "| +2.00 | 31 / 61 | **yes** |" in first
    assert "| -1.00 | - / 205 | no |" in second
    assert "- feedforward, ngram_buckets 64: bigrams pay" in table


def test_sides_of_other_seeds_are_refused_naming_the_row(tmp_path):
    _sweep(tmp_path / "a.json", {"baseline": [(42, 0.8, 0.8, 1)], "changed": [(1, 0.8, 0.8, 1)]})
    (tmp_path / "levers.yaml").write_text(yaml.safe_dump([
        {"model": "cnn", "change": "x", "before": "a.json#baseline", "after": "a.json#changed",
         "kept": False}]))
    with pytest.raises(SystemExit, match=r"row 1 \(cnn, x\): seeds \[42\] before, \[1\] after"):
        lever_table.main([str(tmp_path / "levers.yaml")])
    (tmp_path / "levers.yaml").write_text(yaml.safe_dump([
        {"model": "cnn", "change": "x", "before": "missing.json", "after": "a.json#changed",
         "kept": False}]))
    with pytest.raises(SystemExit, match=r"row 1 \(cnn, x\): .*missing.json"):
        lever_table.main([str(tmp_path / "levers.yaml")])
