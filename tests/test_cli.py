"""Stage entry points: a killed stage closes its MLflow run and leaves no output."""

import subprocess
import sys
import textwrap

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
