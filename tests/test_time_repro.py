"""The full-run timer on a two-stage DVC project: every stage timed, the table of two runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
