"""The MLflow UI, checked in a real browser: start the server on a store, render pages headless.

    python tools/mlflow_ui.py      # reports/mlflow_runs.png, mlflow_compare.png, mlflow_champion.png

starts ``mlflow server`` on the project's store and opens, in headless Chromium (Debian's
``chromium``), the baselines' runs table (accuracy columns shown, best test accuracy first), the
compare view of the latest runs, the registered model's page with its champion and the newest
study run with its Optuna optimization-history plot (``--study-screenshot``,
reports/mlflow_study.png); saves a screenshot of each and prints what each page shows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

from imdb_rnn.errors import PipelineError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str | None:
    """Path of a Chromium-family browser, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(store_uri: str, *, timeout: float = 90.0) -> Iterator[str]:
    """Run ``mlflow server`` on ``store_uri`` at a free localhost port; yield its base URL.

    A private server for the browser here: bound to 127.0.0.1 and answering only requests
    addressed to it (``--allowed-hosts``), for as long as the pages render; it needs no
    credentials (a tracking server shared by a team runs MLflow's basic-auth app: README)."""
    port = _free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri,
         "--host", "127.0.0.1", "--port", str(port), "--allowed-hosts", f"127.0.0.1:{port}",
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-500:]
                raise PipelineError(f"mlflow server on {store_uri} did not start: {tail}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table with the accuracy columns shown, best test accuracy first
    (the shared view every stage tags its experiment with)."""
    from imdb_rnn.tracking.runs import runs_table_link

    return f"{base}/{runs_table_link(experiment_id)}"


def registered_model_url(base: str, name: str) -> str:
    """A registered model's page: its versions and their aliases."""
    from imdb_rnn.tracking.runs import MODEL_TRAINING_VIEW

    return f"{base}/#/models/{quote(name)}?{MODEL_TRAINING_VIEW}"


def compare_url(base: str, experiment_id: str, run_ids: Sequence[str]) -> str:
    runs = quote(json.dumps(list(run_ids)))
    return f"{base}/#/compare-runs?runs={runs}&experiments={quote(json.dumps([experiment_id]))}"


def study_run_url(base: str, run_link: str, artifact: str = "optuna/history.png") -> str:
    """A study's run page (``Experiment.link``), its artifacts tab open on one of the Optuna
    figures it logged."""
    from imdb_rnn.tracking.runs import MODEL_TRAINING_VIEW

    return f"{base}/{run_link}/artifacts/{artifact}?{MODEL_TRAINING_VIEW}"


def newest_study_run(experiment) -> str | None:
    """The link of the newest study run of ``experiment`` (a tracking ``Experiment``), or None."""
    runs = experiment.runs("tags.run_kind = 'study'", max_results=1,
                           order_by=["attributes.start_time DESC"])
    return experiment.link(runs[0].info.run_id) if runs else None


def render(url: str, *, screenshot: Path | None = None, size: str = "2400,1200",
           wait_ms: int = 20000) -> str:
    """The page's visible text after the app has rendered (headless Chromium)."""
    path = browser()
    if path is None:
        raise PipelineError("no Chromium browser found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        common = [path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                  f"--window-size={size}", f"--virtual-time-budget={wait_ms}"]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True,
                             timeout=180).stdout
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True,
                           timeout=180, check=True)
    text = re.sub(r"<style[^>]*>.*?</style>|<script[^>]*>.*?</script>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def main(argv: Sequence[str] | None = None) -> None:
    from imdb_rnn.tracking import runs as tracking
    from imdb_rnn.config import load_params

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--experiment", default=None, help="default: mlflow.experiment")
    parser.add_argument("--runs", type=int, default=4, help="how many runs to compare")
    parser.add_argument("--screenshot", type=Path, default=Path("reports/mlflow_compare.png"),
                        help="the compare view")
    parser.add_argument("--runs-screenshot", type=Path, default=Path("reports/mlflow_runs.png"),
                        help="the runs table (accuracy columns, sorted)")
    parser.add_argument("--model-screenshot", type=Path,
                        default=Path("reports/mlflow_champion.png"),
                        help="the registered model's page (its champion)")
    parser.add_argument("--study-screenshot", type=Path,
                        default=Path("reports/mlflow_study.png"),
                        help="the newest study run, its Optuna history plot open")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    experiment = tracking.connect(params.mlflow, args.experiment)
    store, experiment_id = experiment.uri, experiment.id
    run_ids = experiment.finished_run_ids()[: args.runs]
    if len(run_ids) < 2:
        raise PipelineError(f"experiment {experiment_id} has fewer than two finished runs")
    pages = {"runs table": (lambda base: experiment_url(base, experiment_id),
                            args.runs_screenshot),
             "compare view": (lambda base: compare_url(base, experiment_id, run_ids),
                              args.screenshot),
             "registered model": (lambda base: registered_model_url(
                 base, params.mlflow.registered_model), args.model_screenshot)}
    study = newest_study_run(tracking.connect(params.mlflow, params.tune.experiment))
    if study is not None:
        pages["study run"] = (lambda base: study_run_url(base, study), args.study_screenshot)
    with serve(store) as base:
        for page, (url, shot) in pages.items():
            start = time.perf_counter()
            text = render(url(base), screenshot=shot)
            print(f"{page} ({url('')}) rendered in {time.perf_counter() - start:.0f} s -> "
                  f"{shot}\n  {text[:300]}")


if __name__ == "__main__":
    from imdb_rnn.cli import stage_main

    stage_main(lambda: main())
