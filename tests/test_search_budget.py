"""tools/search_budget.py: variants are parsed strictly and the table is read from the runs."""

from __future__ import annotations

import json

import pytest

import search_budget


def test_a_variant_is_a_name_with_optional_dotted_settings():
    assert search_budget.parse_variant("hyperband") == ("hyperband", [])
    name, settings = search_budget.parse_variant("median:tune.pruner=median,tune.n_trials=12")
    assert name == "median"
    assert settings == [(["tune", "pruner"], "median"), (["tune", "n_trials"], 12)]
    for bad in (":tune.pruner=none", "a b:tune.pruner=none"):
        with pytest.raises(SystemExit, match="--variant"):
            search_budget.parse_variant(bad)


def _run(seed, best, trial, complete, pruned, epochs, seconds, baseline=0.87):
    return {"seed": seed, "best_value": best, "best_trial": trial, "baseline_value": baseline,
            "complete": complete, "pruned": pruned, "epochs": epochs, "seconds": seconds}


def test_the_table_gives_each_variants_mean_sd_and_cost(tmp_path):
    runs = {"hyperband": [_run(1, 0.88, 3, 3, 5, 20, 100), _run(2, 0.90, 5, 2, 6, 18, 90)],
            "none": [_run(1, 0.89, 2, 8, 0, 48, 400), _run(2, 0.89, 7, 8, 0, 46, 380)]}
    result = {"study": "feedforward", "seeds": [1, 2], "n_trials": 8, "cpu": "a CPU (2 cores)",
              "command": "python tools/search_budget.py ...", "finished": "now",
              "variants": {name: {"settings": {} if name == "hyperband"
                                  else {"tune.pruner": "none"},
                                  "runs": r, "summary": search_budget.summary(r)}
                           for name, r in runs.items()}}
    (tmp_path / "budget.json").write_text(json.dumps(result))
    search_budget.main(["--report", str(tmp_path / "budget.json"),
                        "--markdown", str(tmp_path / "budget.md")])
    table = (tmp_path / "budget.md").read_text()
    assert ("| hyperband | params.yaml | 1, 2 | 89.00 ± 1.41 | 88.00 (#3), 90.00 (#5) | 2.5 | 5.5 "
            "| 19 | 95 |") in table
    assert "| none | tune.pruner=none | 1, 2 | 89.00 ± 0.00 | 89.00 (#2), 89.00 (#7) | 8.0 | 0.0 " in table
    assert "Baseline (trial 0) validation: 87.00%." in table


@pytest.mark.parametrize("earlier, problem", [
    ({"study": "cnn", "variants": {}}, "holds study 'cnn'"),
    ({"study": "feedforward", "params_sha256": "0" * 64, "variants": {}},
     "measured with another params.yaml"),
    ({"study": "feedforward", "variants": {"hyperband": {
        "settings": {"tune.pruner": "median"}, "runs": [], "summary": None}}},
     "--variant hyperband: --out holds it with other settings"),
])
def test_a_resume_that_would_mix_measurements_is_refused(tmp_path, monkeypatch, earlier,
                                                         problem):
    monkeypatch.chdir(search_budget.ROOT)
    out = tmp_path / "budget.json"
    out.write_text(json.dumps(earlier))
    with pytest.raises(SystemExit, match=problem):
        search_budget.main(["--study", "feedforward", "--variant", "hyperband",
                            "--out", str(out)])
    assert json.loads(out.read_text()) == earlier  # nothing was written
