"""The full-run timer on a two-stage DVC project: every stage timed, the table of two runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import time_repro


def test_every_stage_is_timed_in_order(tmp_path: Path):
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  first:\n"
        f"    cmd: {sys.executable} -c \"import time; time.sleep(0.5); open('a', 'w')\"\n"
        "    outs: [a]\n"
        "  second:\n"
        f"    cmd: {sys.executable} -c \"open('b', 'w').write(open('a').read())\"\n"
        "    deps: [a]\n"
        "    outs: [b]\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    code, wall, stages = time_repro.timed_repro(tmp_path, sys.executable, tmp_path / "log")
    assert code == 0 and list(stages) == ["first", "second"]
    assert stages["first"] >= 0.5 and sum(stages.values()) <= wall + 0.1
    assert "Running stage 'second'" in (tmp_path / "log").read_text()


def test_a_revision_that_is_not_a_commit_is_named(tmp_path: Path):
    with pytest.raises(SystemExit, match="--rev 'no-such-rev' is not a commit"):
        time_repro.clone("no-such-rev", tmp_path / "clone")
    assert not (tmp_path / "clone").exists()


def test_the_table_has_a_column_per_run_and_a_dash_for_a_missing_stage(tmp_path: Path):
    runs = [{"rev": "old", "commit": "a" * 40, "wall_s": 100.0, "stages": {"fetch": 10.0,
                                                                           "tune": 90.0}},
            {"rev": "new", "commit": "b" * 40, "wall_s": 50.0, "stages": {"fetch": 10.0}}]
    paths = []
    for run in runs:
        paths.append(tmp_path / f"{run['rev']}.json")
        paths[-1].write_text(json.dumps(run))
    assert time_repro.main(["--table", *map(str, paths)]) == 0
    text = time_repro.table(runs)
    assert "| old (aaaaaaa) | new (bbbbbbb) |" in text
    assert "| tune | 90 | - |" in text and "| **whole run** | **100** | **50** |" in text


def test_settings_replace_the_value_at_their_dotted_key(tmp_path: Path):
    params = tmp_path / "params.yaml"
    params.write_text("tune:\n  n_trials: 8\n  studies:\n    lstm: {model: lstm, sampler: tpe}\n"
                      "  subsample: null\n")
    settings = [time_repro.parse_setting(text) for text in (
        "tune.n_trials=10", "tune.subsample=5000",
        "tune.studies={a: {model: lstm, sampler: random}, b: {model: lstm, sampler: tpe}}")]
    time_repro.apply_settings(params, settings)
    tune = yaml.safe_load(params.read_text())["tune"]
    assert tune["n_trials"] == 10 and tune["subsample"] == 5000
    assert tune["studies"] == {"a": {"model": "lstm", "sampler": "random"},
                               "b": {"model": "lstm", "sampler": "tpe"}}


@pytest.mark.parametrize(("text", "message"), [
    ("tune.n_trials", "expected KEY=VALUE"), ("tune..n_trials=3", "expected KEY=VALUE"),
    ("tune.n_trials=[1", "the value is not YAML")])
def test_a_malformed_setting_is_named(text: str, message: str):
    with pytest.raises(SystemExit, match=message):
        time_repro.parse_setting(text)


def test_a_setting_under_a_missing_section_is_named(tmp_path: Path):
    params = tmp_path / "params.yaml"
    params.write_text("tune:\n  n_trials: 8\n")
    with pytest.raises(SystemExit, match="params.yaml has no tunes"):
        time_repro.apply_settings(params, [time_repro.parse_setting("tunes.n_trials=3")])
    assert params.read_text() == "tune:\n  n_trials: 8\n"
