"""Stage entry points: a killed stage closes its MLflow run and leaves no output."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlflow.tracking import MlflowClient

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from imdb_rnn.tracking import runs as tracking
    from imdb_rnn.cli import stage_main
    from imdb_rnn.io import atomic_path
    from imdb_rnn.config.params import MlflowParams

    def main():
        experiment = tracking.connect(MlflowParams(tracking_uri=sys.argv[1], experiment="e"))
        with experiment.run("killed") as run, atomic_path(sys.argv[2]) as tmp:
            print(run.id, flush=True)
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)

    stage_main(main)
""")


def test_sigterm_fails_the_run_and_removes_temporaries(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = subprocess.run([sys.executable, "-c", SCRIPT, uri, str(tmp_path / "out.txt")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 143
    run_id = result.stdout.split()[0]
    assert MlflowClient(uri).get_run(run_id).info.status == "FAILED"
    assert not (tmp_path / "out.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.txt")]


NATIVE = textwrap.dedent("""
    import os, signal, sys, time
    # Ctrl-C as a terminal's process gets it (a pytest-xdist worker's children inherit it ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from imdb_rnn.cli import stage_main

    def main():
        try:
            os.kill(os.getpid(), signal.SIGNAL)
            time.sleep(60)
        except BaseException as error:  # what TensorFlow's C code did to a KeyboardInterrupt
            raise TypeError("Exception encountered when calling a layer") from error

    stage_main(main)
""")


@pytest.mark.parametrize("name, code, line", [
    ("SIGINT", 130, "error: interrupted (Ctrl-C)"),
    ("SIGTERM", 143, "error: terminated (SIGTERM)"),
])
def test_a_signal_that_native_code_turned_into_another_error_is_still_the_stop(
        tmp_path, name, code, line):
    result = subprocess.run([sys.executable, "-c", NATIVE.replace("SIGNAL", name)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert result.stderr.strip().splitlines() == [line]


# --- imdb-predict: bad input is one line, exit 1, nothing printed on stdout ----------------------

def _predict(*args, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    script = str(Path(sys.executable).parent / "imdb-predict")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([script, *args], input=stdin, capture_output=True, timeout=300,
                          cwd=cwd, env=env)


def _model_folder(tmp_path, model: bytes = b"not a zip file") -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.keras").write_bytes(model)
    (folder / "vocab.txt").write_text("<pad>\n<oov>\ngood\n")
    (folder / "preprocessing.json").write_text(json.dumps(
        {"lowercase": True, "punctuation": "strip", "maxlen": 10, "padding": "post",
         "truncating": "pre", "fixed_length": False}))
    return folder


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result
    assert result.stdout == b""  # nothing half printed
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_predict_names_the_stdin_line_that_is_not_utf8(tmp_path):
    line = _one_line_error(_predict(str(_model_folder(tmp_path)),
                                    stdin=b"a fine film\nbad \xff byte\nok\n"))
    assert "standard input line 2: not valid UTF-8 (byte 0xff at offset 4)" in line


def test_predict_names_the_argument_that_is_not_utf8(tmp_path):
    line = _one_line_error(_predict(str(_model_folder(tmp_path)), "fine", b"caf\xe9"))
    assert "review argument 2: not valid UTF-8 (byte 0xe9 at offset 3)" in line


@pytest.mark.parametrize("text", ["", "   \t ", "<br /><br />", "<BR/>  <br>"])
def test_predict_refuses_a_review_without_words_before_loading_the_model(tmp_path, text):
    """A network answers "" with a confident probability (the LSTM said 1.0000): refused with
    the argument named, before the model is read (this folder's model.keras is not one)."""
    line = _one_line_error(_predict(str(_model_folder(tmp_path)), "a fine film", text))
    assert line == ("error: review argument 2 has no words (empty, whitespace or markup only)")


def test_predict_skips_blank_stdin_lines_and_names_a_markup_only_one(tmp_path):
    line = _one_line_error(_predict(str(_model_folder(tmp_path)),
                                    stdin=b"a fine film\n\n  \n<br />\n"))
    assert line == "error: standard input line 4 has no words (empty, whitespace or markup only)"


@pytest.mark.parametrize(("damage", "culprit"), [
    (lambda f: (f / "model.keras").write_bytes(b"PK\x03\x04 truncated"), "model.keras"),
    (lambda f: (f / "preprocessing.json").write_text("{not json"), "preprocessing.json"),
    (lambda f: (f / "preprocessing.json").write_text("{}"), "preprocessing.json"),
    (lambda f: (f / "vocab.txt").unlink(), "vocab.txt"),
    (lambda f: (f / "model.keras").unlink(), "no model.keras here"),
])
def test_a_corrupt_model_folder_is_one_line_naming_the_file(tmp_path, damage, culprit):
    from imdb_rnn.errors import PipelineError
    from imdb_rnn.modeling.predict import Predictor

    folder = _model_folder(tmp_path)
    damage(folder)
    with pytest.raises(PipelineError) as error:
        Predictor(folder)
    assert culprit in str(error.value) and "\n" not in str(error.value), error.value


def test_predict_with_a_corrupt_model_exits_1_and_prints_nothing(tmp_path):
    line = _one_line_error(_predict(str(_model_folder(tmp_path)), "a fine film"))
    assert "model.keras: not a readable Keras model" in line


@pytest.mark.parametrize("uri", ["models:/imdb-sentiment@champion", "runs:/0123abc/model"])
def test_a_model_uri_without_a_store_is_one_line_and_creates_none(tmp_path, uri):
    line = _one_line_error(_predict(uri, "a fine film", cwd=tmp_path))
    assert f"{uri}: no MLflow store at sqlite:///mlflow.db" in line
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_registered_model_is_one_line(tmp_path):
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()  # an empty store
    line = _one_line_error(_predict("models:/nothing@champion", "a fine film", cwd=tmp_path))
    assert "models:/nothing@champion: cannot load the model from sqlite:///mlflow.db" in line


@pytest.mark.parametrize("entry", ["predict", "reproduce"])
def test_help_answers_without_importing_tensorflow(entry):
    """``imdb-predict --help`` and ``imdb-reproduce --help`` answer before TensorFlow loads
    (its import takes seconds); the full help is printed."""
    code = textwrap.dedent(f"""
        import sys
        from imdb_rnn import commands
        sys.argv = ["imdb-{entry}", "--help"]
        try:
            commands.{entry}()
        except SystemExit as stop:
            assert stop.code == 0, stop.code
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        print("checked", file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "checked" in done.stderr, done.stderr
    assert f"usage: imdb-{entry}" in done.stdout


def test_imdb_reproduces_preset_names_are_the_presets():
    from imdb_rnn.reproductions.arguments import PRESET_NAMES
    from imdb_rnn.reproductions.presets import PRESETS

    assert PRESET_NAMES == tuple(PRESETS)
