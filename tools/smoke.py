"""The smoke profile end to end: the whole DAG on a stratified slice, in a scratch copy.

``run_smoke`` copies the pipeline (dvc.yaml, params.yaml, stages/, src/) into a scratch folder,
selects ``profile: smoke`` there, runs ``dvc repro`` and checks what it wrote: DVC reports every
stage up to date, every metrics file parses for ``dvc metrics show``, and every report file
parses (JSON, CSV, PNG, Markdown, HTML). The workspace it was started from is never written to,
so a developer can run it beside a full-data workspace; CI runs it after the unit tests.

    python tools/smoke.py                         # scratch folder removed afterwards
    python tools/smoke.py --keep /tmp/smoke       # keep the scratch project to look at
    python tools/smoke.py --reports smoke-reports # copy the run's reports/ out (for the gate)
    python tools/smoke.py --servers               # on a scratch PostgreSQL + mlflow server

With --servers (Debian's postgresql needed) the DAG keeps its studies on a PostgreSQL server of
its own and logs over HTTP to ``mlflow server`` (PostgreSQL backend store, proxied artifacts),
both started on localhost and removed afterwards (tools/servers.py); ``check_served`` then
checks what reached the server: no run left RUNNING, every artifact stored through it, each
model's test accuracy on its run and its logged model, and the champion downloaded back
through the server predicting raw text with ``imdb-predict``.

Never writes to this workspace (only --reports, when given). Exits 1 with one line naming the
stage or file when the run fails or an output is missing or does not parse.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from imdb_rnn.cli import stage_main
from imdb_rnn.config import parse_params
from imdb_rnn.errors import PipelineError
from imdb_rnn.layout import Reports

PIPELINE_FILES = ("dvc.yaml", "params.yaml", ".dvcignore")
PIPELINE_FOLDERS = ("stages", "src", "splits")
# Params that name files outside the project, relative to the project root: made absolute in
# the scratch copy so it finds the same offline archives.
OUTSIDE_PATHS = (("fetch", "local_archive"), ("embed", "unlabeled_archive"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class SmokeResult:
    """What a smoke run did: wall time, the files it checked, the models it evaluated."""

    seconds: float
    workdir: Path
    checked: list[str] = field(default_factory=list)
    test_accuracy: dict[str, float] = field(default_factory=dict)


def prepare_workdir(root: Path, workdir: Path, profile: str = "smoke") -> None:
    """Copy the pipeline of ``root`` into ``workdir`` with ``profile`` selected."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        if (root / name).exists():
            shutil.copy(root / name, workdir / name)
    for folder in PIPELINE_FOLDERS:
        shutil.copytree(root / folder, workdir / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    parse_params(params, str(root / "params.yaml"), profile)  # a bad profile or key fails now
    params["profile"] = profile
    for section, key in OUTSIDE_PATHS:
        value = params.get(section, {}).get(key)
        if value is not None and not Path(value).is_absolute():
            params[section][key] = str((root / value).resolve())
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False),
                                         encoding="utf-8")


def tool_env(servers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for dvc/git in a scratch project: this interpreter's tools first on PATH,
    and no shared MLflow store or Optuna storage (the scratch run keeps its own), unless
    ``servers`` names them (MLFLOW_TRACKING_URI, IMDB_TUNE_STORAGE)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "IMDB_TUNE_STORAGE"):
        env.pop(name, None)
    return env | dict(servers or {})


def _run(args: list[str], cwd: Path, log, servers: Mapping[str, str] | None = None) -> None:
    """Run ``args`` in ``cwd``, streaming its output to ``log``."""
    lines: deque[str] = deque(maxlen=20)
    with subprocess.Popen(args, cwd=cwd, env=tool_env(servers), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            lines.append(line)
            log.write(line)
            log.flush()
    if process.returncode != 0:
        # DVC's last line names the stage that failed ("failed to reproduce 'train@lstm'")
        last = next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")
        raise PipelineError(f"`{' '.join(args)}` failed in {cwd} (exit {process.returncode}): "
                            f"{last}")


def _json(args: list[str], cwd: Path, log) -> object:
    """The JSON a DVC command prints on stdout (its warnings on stderr go to ``log``)."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=tool_env())
    log.write(result.stderr)
    if result.returncode != 0:
        raise PipelineError(f"`{' '.join(args)}` failed in {cwd}: {result.stderr.strip()}")
    return json.loads(result.stdout or "{}")


def check_report_file(path: Path) -> None:
    """Parse one report file by its kind; a file that does not parse raises PipelineError."""
    try:
        if path.stat().st_size == 0:
            raise ValueError("empty file")
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".csv":
            if pd.read_csv(path).empty:
                raise ValueError("no rows")
        elif path.suffix == ".png":
            if path.read_bytes()[:8] != PNG_SIGNATURE:
                raise ValueError("not a PNG image")
        elif path.suffix in (".md", ".html"):
            path.read_text(encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise PipelineError(f"{path}: does not parse ({error})") from None


def check_outputs(workdir: Path, log) -> SmokeResult:
    """Everything the DAG declares exists, DVC sees it up to date, and every report parses."""
    result = SmokeResult(seconds=0.0, workdir=workdir)
    status = _json(["dvc", "status", "--json"], workdir, log)
    if status:
        raise PipelineError(f"dvc status after dvc repro is not clean: "
                            f"{', '.join(sorted(status))}")
    metrics = _json(["dvc", "metrics", "show", "--json"], workdir, log)
    for source in metrics.values():
        for file, entry in source.get("data", {}).items():
            if "error" in entry:
                raise PipelineError(f"dvc metrics show cannot read {file}: {entry['error']}")
    for path in sorted((workdir / "reports").rglob("*")):
        if path.is_file():
            check_report_file(path)
            result.checked.append(str(path.relative_to(workdir)))
    layout = Reports(workdir / "reports")
    for name in layout.evaluated_models():
        result.test_accuracy[name] = json.loads(layout.test_metrics(name).read_text())["accuracy"]
    if not result.test_accuracy:
        raise PipelineError(f"{workdir / 'reports/evaluate'}: no model was evaluated")
    return result


def scratch_project(root: Path, workdir: Path, log, profile: str = "smoke") -> None:
    """A git + DVC project in ``workdir``: the pipeline of ``root`` with ``profile`` selected."""
    prepare_workdir(root, workdir, profile)
    _run(["git", "init", "-q"], workdir, log)
    _run(["dvc", "init", "-q"], workdir, log)


def run_smoke(root: Path, workdir: Path, log, profile: str = "smoke",
              servers: Mapping[str, str] | None = None) -> SmokeResult:
    """Run the whole DAG with ``profile`` in ``workdir`` (a copy of ``root``) and check it;
    ``servers``: environment naming a tracking server and a study storage to use instead of
    the scratch project's own files."""
    start = time.perf_counter()
    scratch_project(root, workdir, log, profile)
    _run(["dvc", "repro"], workdir, log, servers)
    seconds = time.perf_counter() - start
    result = check_outputs(workdir, log)
    result.seconds = seconds
    return result


def check_served(workdir: Path, tracking_uri: str, artifacts: Path) -> list[str]:
    """What a DAG run in ``workdir`` left on the tracking server at ``tracking_uri`` (artifact
    destination ``artifacts``); one line per check that holds, PipelineError at the first that
    does not."""
    from mlflow.tracking import MlflowClient

    from imdb_rnn.config.params import load_params

    def require(holds: bool, what: str) -> None:
        if not holds:
            raise PipelineError(f"tracking server {tracking_uri}: {what}")

    params = load_params(workdir / "params.yaml")
    client = MlflowClient(tracking_uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    runs = client.search_runs(list(experiments.values()), max_results=5000)
    running = [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    require(bool(runs), "no run was logged")
    require(not running, f"runs left RUNNING: {', '.join(running)}")
    local = [r.info.run_name for r in runs if not r.info.artifact_uri.startswith("mlflow-artifacts:")]
    require(not local, f"runs whose artifacts bypass the server: {', '.join(local)}")
    require(any(artifacts.rglob("MLmodel")), f"no model stored in {artifacts}")
    finished: dict = {}
    for r in runs:  # newest first: each name's latest FINISHED run
        if r.info.status == "FINISHED":
            finished.setdefault(r.info.run_name, r)
    for name in params.train.models:
        accuracy = finished.get(name) and finished[name].data.metrics.get("test_accuracy")
        require(accuracy is not None and 0.0 <= accuracy <= 1.0,
                f"no FINISHED run {name!r} with test_accuracy")
    logged = client.search_logged_models([experiments[params.mlflow.experiment]],
                                         max_results=1000)
    with_accuracy = {m.tags.get("model") for m in logged
                     if any(x.key == "test_accuracy" for x in m.metrics or [])}
    missing = sorted(set(params.train.models) - with_accuracy)
    require(not missing, f"logged models without test_accuracy: {', '.join(missing)}")
    # The champion downloads back through the server and predicts raw text.
    uri = f"models:/{params.mlflow.registered_model}@{params.mlflow.champion_alias}"
    try:
        out = subprocess.run([str(Path(sys.executable).parent / "imdb-predict"), uri,
                              "A wonderful, moving film.", "Dull and far too long."],
                             capture_output=True, text=True, cwd=workdir, timeout=300,
                             env=tool_env({"MLFLOW_TRACKING_URI": tracking_uri}))
    except subprocess.TimeoutExpired:
        raise PipelineError(f"imdb-predict {uri}: no answer in 300 s") from None
    last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
    require(out.returncode == 0, f"imdb-predict {uri} failed: {last}")
    require(len(out.stdout.strip().splitlines()) == 2, f"imdb-predict {uri}: {out.stdout!r}")
    return [f"{len(runs)} runs in {len(experiments)} experiments, none RUNNING, artifacts "
            "through the server", f"{len(params.train.models)} model(s) with test_accuracy "
            "(runs and logged models)", f"{uri} predicts through the server"]


def run_served(root: Path, workdir: Path, log, profile: str = "smoke"
               ) -> tuple[SmokeResult, list[str]]:
    """``run_smoke`` on a scratch PostgreSQL server and a tracking server on it (both removed
    afterwards), then ``check_served``."""
    from servers import postgres_bin, scratch_servers

    if postgres_bin() is None:
        raise PipelineError("--servers: PostgreSQL server not installed (Debian: apt-get "
                            "install postgresql)")
    import psycopg2
    from mlflow.exceptions import MlflowException

    with contextlib.ExitStack() as stack:
        try:
            postgres, server = stack.enter_context(scratch_servers())
            studies = postgres.url("studies")
        except (RuntimeError, OSError, LookupError, subprocess.SubprocessError,
                psycopg2.Error) as error:  # initdb, pg_ctl, the database or mlflow server
            detail = getattr(error, "stderr", None) or str(error)
            last = (detail.strip().splitlines() or [type(error).__name__])[-1][:200]
            raise PipelineError(f"--servers: the scratch servers did not start: {last}") from None
        servers = {"MLFLOW_TRACKING_URI": server.uri, "IMDB_TUNE_STORAGE": studies}
        result = run_smoke(root, workdir, log, profile, servers)
        try:
            return result, check_served(workdir, server.uri, server.artifacts)
        except MlflowException as error:
            first = str(error).strip().splitlines()[0][:200]
            raise PipelineError(f"tracking server {server.uri}: {first}") from None


ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke", help="a key of profiles in params.yaml")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--reports", type=Path, help="copy the run's reports/ folder here")
    parser.add_argument("--log", type=Path, help="write the dvc output here (default: stdout)")
    parser.add_argument("--tracking-uri", help="log to this MLflow tracking server "
                        "(default: the scratch project's own mlflow.db)")
    parser.add_argument("--storage", help="keep the studies here, an Optuna storage URL such "
                        "as postgresql://... (default: the scratch project's journal file)")
    parser.add_argument("--servers", action="store_true",
                        help="start a scratch PostgreSQL server and an MLflow tracking server "
                        "on it, run there and check what reached them")
    args = parser.parse_args()
    if args.servers and (args.tracking_uri or args.storage):
        parser.error("--servers starts its own servers: not with --tracking-uri or --storage")
    servers = {name: value for name, value in (("MLFLOW_TRACKING_URI", args.tracking_uri),
                                               ("IMDB_TUNE_STORAGE", args.storage)) if value}
    log = open(args.log, "w", encoding="utf-8") if args.log else sys.stdout
    with tempfile.TemporaryDirectory(prefix="imdb-smoke-") as scratch:
        workdir = args.keep.resolve() if args.keep else Path(scratch) / "project"
        if args.servers:
            result, served = run_served(ROOT, workdir, log, args.profile)
        else:
            result, served = run_smoke(ROOT, workdir, log, args.profile, servers), []
        if args.reports:
            shutil.copytree(workdir / "reports", args.reports, dirs_exist_ok=True)
    accuracies = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result.test_accuracy.items()))
    print(f"smoke: profile {args.profile}, dvc repro {result.seconds:.0f} s, "
          f"{len(result.checked)} report files parse; test accuracy: {accuracies}")
    for line in served:
        print(f"smoke: served: {line}")


if __name__ == "__main__":
    stage_main(main)
