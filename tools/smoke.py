"""The smoke profile end to end: the whole DAG on a stratified slice, in a scratch copy.

``run_smoke`` copies the pipeline (dvc.yaml, params.yaml, stages/, src/) into a scratch folder,
selects ``profile: smoke`` there, runs ``dvc repro`` and checks what it wrote: DVC reports every
stage up to date, every metrics file parses for ``dvc metrics show``, and every report file
parses (JSON, CSV, PNG, Markdown, HTML). The workspace it was started from is never written to,
so a developer can run it beside a full-data workspace; CI runs it after the unit tests.

    python tools/smoke.py                         # scratch folder removed afterwards
    python tools/smoke.py --keep /tmp/smoke       # keep the scratch project to look at
    python tools/smoke.py --reports smoke-reports # copy the run's reports/ out (for the gate)

Never writes to this workspace (only --reports, when given). Exits 1 with one line naming the
stage or file when the run fails or an output is missing or does not parse.
"""

from __future__ import annotations

import argparse
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
PIPELINE_FOLDERS = ("stages", "src")
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
    args = parser.parse_args()
    servers = {name: value for name, value in (("MLFLOW_TRACKING_URI", args.tracking_uri),
                                               ("IMDB_TUNE_STORAGE", args.storage)) if value}
    log = open(args.log, "w", encoding="utf-8") if args.log else sys.stdout
    with tempfile.TemporaryDirectory(prefix="imdb-smoke-") as scratch:
        workdir = args.keep.resolve() if args.keep else Path(scratch) / "project"
        result = run_smoke(ROOT, workdir, log, args.profile, servers)
        if args.reports:
            shutil.copytree(workdir / "reports", args.reports, dirs_exist_ok=True)
    accuracies = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result.test_accuracy.items()))
    print(f"smoke: profile {args.profile}, dvc repro {result.seconds:.0f} s, "
          f"{len(result.checked)} report files parse; test accuracy: {accuracies}")


if __name__ == "__main__":
    stage_main(main)
