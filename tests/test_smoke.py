"""The smoke runner: its scratch copy selects the profile and finds the archives; checks bite."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import ROOT

from imdb_rnn.errors import PipelineError
from imdb_rnn.config.params import load_params
from smoke import PNG_SIGNATURE, check_report_file, prepare_workdir


def test_the_scratch_copy_selects_the_profile_and_finds_the_archives(tmp_path):
    prepare_workdir(ROOT, tmp_path / "copy")
    copy = tmp_path / "copy"
    assert (copy / "dvc.yaml").read_text() == (ROOT / "dvc.yaml").read_text()
    assert (copy / "stages" / "train.py").is_file() and (copy / "src" / "imdb_rnn").is_dir()
    raw = yaml.safe_load((copy / "params.yaml").read_text())
    assert raw["profile"] == "smoke"
    original = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw["fetch"]["local_archive"] == str((ROOT / original["fetch"]["local_archive"]).resolve())
    params = load_params(copy / "params.yaml")
    assert params.preprocess.per_label == original["profiles"]["smoke"]["preprocess"]["per_label"]
    assert params.ci.max_accuracy_drop == original["profiles"]["smoke"]["ci"]["max_accuracy_drop"]
    # the workspace itself is untouched
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == original


def test_an_unknown_profile_is_named(tmp_path):
    with pytest.raises(PipelineError, match="profile: 'tiny' is not 'full' or a key of profiles"):
        prepare_workdir(ROOT, tmp_path / "copy", "tiny")


@pytest.mark.parametrize("name, content, problem", [
    ("metrics.json", b'{"accuracy": 0.9', "does not parse"),
    ("history.csv", b"epoch,accuracy\n", "no rows"),
    ("roc.png", b"GIF89a...", "not a PNG image"),
    ("leaderboard.md", b"", "empty file"),
])
def test_a_report_file_that_does_not_parse_is_named(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PipelineError, match=problem) as error:
        check_report_file(path)
    assert str(path) in str(error.value)


def test_good_report_files_pass(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"accuracy": 0.9}))
    (tmp_path / "h.csv").write_text("epoch,accuracy\n1,0.5\n")
    (tmp_path / "f.png").write_bytes(PNG_SIGNATURE + b"rest")
    for path in tmp_path.iterdir():
        check_report_file(path)


def test_check_served_names_what_did_not_reach_the_server(tmp_path):
    """An empty store, a run left RUNNING, a run whose artifacts are stored beside the server
    instead of through it: each is named (sqlite store, local artifact folder)."""
    from mlflow.tracking import MlflowClient

    from smoke import check_served

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    with pytest.raises(PipelineError, match="no run was logged"):
        check_served(tmp_path, uri, tmp_path / "artifacts")
    experiment = client.create_experiment("imdb-baselines",
                                          artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment, run_name="lstm")
    with pytest.raises(PipelineError, match="runs left RUNNING: lstm$"):
        check_served(tmp_path, uri, tmp_path / "artifacts")
    client.set_terminated(run.info.run_id)
    with pytest.raises(PipelineError, match=f"{uri}: runs whose artifacts bypass the server: lstm"):
        check_served(tmp_path, uri, tmp_path / "artifacts")
