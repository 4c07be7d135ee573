"""Wall time of the full default ``dvc repro`` of one commit, in a fresh clone, stage by stage.

Clones this repository at ``--rev`` into a folder beside it (so ``../shared/data``, the default
offline archive, is found as from a fresh clone), runs ``dvc repro`` there with that commit's own
code on the import path, and writes the wall time of the whole run and of every stage (from the
moment DVC starts a stage to the moment it starts the next one or ends) to a JSON file. Before
and after figures of a speed change are two runs of this, back to back, on one quiet machine:

    python tools/time_repro.py --rev 4e51426 --out /tmp/before.json
    python tools/time_repro.py --rev HEAD --out /tmp/after.json
    python tools/time_repro.py --table /tmp/before.json /tmp/after.json   # the Markdown table

``--set KEY=VALUE`` changes ``params.yaml`` in the clone before the run, as ``dvc exp run -S``
would (dotted key, YAML value, the whole value at that key replaced), so a new commit can be
timed at an older commit's amount of work, for example its two LSTM studies:

    python tools/time_repro.py --rev HEAD --out /tmp/equal.json \
        --set 'tune.studies={lstm_random: {model: lstm, sampler: random}, lstm_tpe: {model: lstm, sampler: tpe}}' \
        --set tune.n_trials=10 --set tune.epochs=3 --set tune.subsample=5000

Uses the packages of the running interpreter (``requirements.lock``); a commit whose lock differs
needs its own environment (``--python``). Not a test and not a DVC stage: a full run takes an
hour or more on 2 cores. Never writes to this workspace (only ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


def clone(rev: str, folder: Path) -> str:
    """A fresh clone of this repository at ``rev``; returns the full commit hash."""
    if folder.exists():
        raise SystemExit(f"error: {folder} exists; remove it or pass another --workdir")
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT,
                            capture_output=True, text=True)
    if commit.returncode != 0:
        raise SystemExit(f"error: --rev {rev!r} is not a commit of {ROOT}")
    sha = commit.stdout.strip()
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(folder)], check=True)
    subprocess.run(["git", "checkout", "-q", "--detach", sha], cwd=folder, check=True)
    return sha


def parse_setting(text: str) -> tuple[list[str], object]:
    """``a.b.c=YAML`` -> (["a", "b", "c"], the parsed value)."""
    key, sep, value = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise SystemExit(f"error: --set {text!r}: expected KEY=VALUE with a dotted KEY")
    try:
        return key.split("."), yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise SystemExit(f"error: --set {text!r}: the value is not YAML ({error})") from None


def apply_settings(params_file: Path, settings: list[tuple[list[str], object]]) -> None:
    """Replace the value at each dotted key of ``params_file`` (which must exist up to its
    parent), keeping the file otherwise as parsed YAML."""
    params = yaml.safe_load(params_file.read_text())
    for keys, value in settings:
        node = params
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node, dict) or key not in node:
                raise SystemExit(f"error: --set {'.'.join(keys)}: params.yaml has no "
                                 f"{'.'.join(keys[:depth + 1])}")
            node = node[key]
        if not isinstance(node, dict):
            raise SystemExit(f"error: --set {'.'.join(keys)}: {'.'.join(keys[:-1])} is not a "
                             f"mapping")
        node[keys[-1]] = value
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def timed_repro(folder: Path, python: str, log: Path, extra_env: dict[str, str] | None = None
                ) -> tuple[int, float, dict[str, float]]:
    """Run ``dvc repro`` in ``folder``; (exit code, wall seconds, seconds per stage in order).

    ``extra_env`` is added to the environment of the run (tools/numerics_rerun.py)."""
    env = {**os.environ, "PYTHONPATH": str(folder / "src"),
           "PATH": f"{Path(python).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("IMDB_TUNE_STORAGE", None)
    env |= extra_env or {}
    starts: list[tuple[str, float]] = []
    start = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen([python, "-m", "dvc", "repro"], cwd=folder, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            out.flush()
            if match := STAGE_LINE.match(line):
                starts.append((match.group(1), time.monotonic()))
        code = process.wait()
    end = time.monotonic()
    stages = {name: round((starts[i + 1][1] if i + 1 < len(starts) else end) - began, 1)
              for i, (name, began) in enumerate(starts)}
    return code, round(end - start, 1), stages


def cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(runs: list[dict]) -> str:
    """Stages as rows, runs as columns (seconds), then the whole run."""
    names: list[str] = []
    for run in runs:
        names += [n for n in run["stages"] if n not in names]
    head = "| stage | " + " | ".join(f"{r['rev']} ({r['commit'][:7]})" for r in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for name in names:
        cells = [f"{r['stages'][name]:,.0f}" if name in r["stages"] else "-" for r in runs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **whole run** | " + " | ".join(f"**{r['wall_s']:,.0f}**" for r in runs) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workdir", type=Path,
                        help="where to clone (default: beside this repository, time-<rev>)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change params.yaml in the clone (as dvc exp run -S); repeatable")
    parser.add_argument("--table", nargs="+", type=Path, metavar="JSON",
                        help="print the Markdown table of earlier runs and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table([json.loads(p.read_text()) for p in args.table]))
        return 0
    if args.out is None:
        parser.error("--out is required unless --table is given")
    folder = args.workdir or ROOT.parent / f"time-{re.sub(r'[^A-Za-z0-9._-]', '_', args.rev)}"
    settings = [parse_setting(text) for text in args.set]
    sha = clone(args.rev, folder)
    if settings:
        apply_settings(folder / "params.yaml", settings)
    log = args.out.with_suffix(".log")
    try:
        code, wall, stages = timed_repro(folder, args.python, log)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    result = {"rev": args.rev, "commit": sha, "set": args.set, "returncode": code, "wall_s": wall,
              "stages": stages, "cpu": cpu_model(),
              "cores": os.cpu_count(), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime())}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table([result]))
    if code != 0:
        print(f"error: dvc repro exited {code}; its output is in {log}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
