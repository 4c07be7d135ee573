"""tools/sweep.py: the configurations it draws, the params it refuses, the report it writes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import sweep  # noqa: E402

from imdb_rnn.config.params import load_params  # noqa: E402


def test_drawn_configurations_are_seeded_and_inside_the_space():
    params = load_params(ROOT / "params.yaml")
    draw = lambda seed: sweep.configurations(  # noqa: E731
        params, "feedforward", argparse.Namespace(configs=4, config_seed=seed))
    assert draw(3) == draw(3) and draw(3) != draw(4)
    space = params.tune.space["feedforward"]
    for values in draw(3):
        assert 100 <= values["maxlen"] <= 600
        assert values["pooling"] in space["pooling"].choices
    assert sweep.configurations(params, "feedforward",
                                argparse.Namespace(configs=0, config_seed=0)) == [None]


def test_data_params_are_refused_with_one_line(tmp_path):
    args = argparse.Namespace(workspace=str(tmp_path), set=["embed.dim=32"], params="params.yaml",
                              label="x", models=None, seeds=[1], out=str(tmp_path), configs=0,
                              config_seed=0)
    with pytest.raises(SystemExit, match=r"--set embed.dim: the sweep trains on the workspace"):
        sweep.run(args)


def _run(model, seed, val, test):
    pick = {"epoch": 2, "val_accuracy": val, "test_accuracy": test}
    return {"model": model, "family": model, "seed": seed, "values": {}, "epochs": 3,
            "seconds": 10.0, "selections": {s: pick for s in sweep.SELECTIONS},
            "kept": "val_loss"}


def test_the_report_gives_mean_sd_and_the_validation_gap(tmp_path, capsys):
    runs = [_run("a", 1, 0.90, 0.88), _run("a", 2, 0.92, 0.90),
            _run("b", 1, 0.80, 0.79), _run("b", 2, 0.82, 0.81),
            _run("c", 1, 0.70, 0.69), _run("c", 2, 0.72, 0.71)]
    (tmp_path / "r.json").write_text(json.dumps({"label": "r", "runs": runs}))
    sweep.report(argparse.Namespace(folder=str(tmp_path), out=str(tmp_path / "r.md")))
    text = (tmp_path / "r.md").read_text()
    assert "| r | a | 1: 88.00%, 2: 90.00% | 2/3, 2/3 | 89.00% ± 1.41% | 91.00% ± 1.41% | +2.00 pt" \
        in text
    assert "over the families' means: +1.00 over 3" in text
