"""Atomic outputs: all or nothing, with ordinary permissions."""

import os
import stat

import pytest

from imdb_rnn.errors import PipelineError
from imdb_rnn.io import atomic_path, atomic_paths, read_json, write_json


def test_files_move_into_place_together(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    with atomic_paths(a, b) as (ta, tb):
        ta.write_text("a")
        tb.write_text("b")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "a" and b.read_text() == "b"


def test_failure_leaves_nothing(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    with pytest.raises(RuntimeError):
        with atomic_paths(a, b) as (ta, _):
            ta.write_text("half")
            raise RuntimeError("stage failed")
    assert list(tmp_path.iterdir()) == []


def test_directory_replaces_the_old_one(tmp_path):
    """The old folder is moved aside under a temporary's name, then removed: nothing is left
    beside the new one."""
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with atomic_path(target, directory=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_outputs_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_path(tmp_path / "d", directory=True):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_read_json_errors_are_one_line(tmp_path):
    with pytest.raises(PipelineError, match="run file not found"):
        read_json(tmp_path / "run.json", "run file")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PipelineError, match="bad.json: run file is not valid JSON"):
        read_json(tmp_path / "bad.json", "run file")


def test_json_never_holds_nan(tmp_path):
    import json
    import math

    import numpy as np

    path = tmp_path / "x.json"
    write_json(path, {"a": math.nan, "b": [1.0, np.float64("inf")], "c": {"d": 0.5, "e": None}})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [1.0, None], "c": {"d": 0.5, "e": None}}
