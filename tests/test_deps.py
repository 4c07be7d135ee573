"""DVC deps that cannot go stale: every project module a stage runs is among the stage's deps.

For each stage of ``dvc.yaml`` the import closure of its script (every ``imdb_rnn`` module it
imports, directly or through other modules, at top level or inside functions, with the
packages' ``__init__`` files) must be covered by its ``deps``: a file listed itself or a folder
above it. Otherwise a change to that module would leave ``dvc repro`` keeping stale results.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    """The file of module or package ``name`` under src/, or None when it is not the project's."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Names of the project modules ``path`` imports (any depth of the tree, any scope)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    here = module_name(path).split(".") if path.is_relative_to(SRC) else []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                anchor = here if is_package else here[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # submodules by name
    return {name for name in found if name.split(".")[0] == "imdb_rnn" and module_file(name)}


def import_closure(script: Path) -> set[Path]:
    """Every project file that running ``script`` may execute, packages' __init__ included."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                file = module_file(".".join(parts[:i]))
                if file is not None and file not in seen:
                    todo.append(file)
    return seen


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT)
    return any(rel == Path(dep) or Path(dep) in rel.parents for dep in deps)


def stages() -> list[tuple[str, Path, list[str]]]:
    """(stage, script, deps) of every stage in dvc.yaml (foreach stages by their template)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    out = []
    for name, stage in spec.items():
        body = stage.get("do", stage)
        script = next(w for w in body["cmd"].split() if w.startswith("stages/"))
        out.append((name, ROOT / script, [str(d) for d in body.get("deps", [])]))
    return out


def uncovered(script: Path, deps: list[str]) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in import_closure(script) if not covered(p, deps))


@pytest.mark.parametrize("stage, script, deps", stages(), ids=[s[0] for s in stages()])
def test_every_module_a_stage_runs_is_among_its_deps(stage, script, deps):
    assert script.is_file(), f"{stage}: {script} does not exist"
    assert covered(script, deps), f"{stage}: its own script is not a dep"
    missing = uncovered(script, deps)
    assert not missing, f"{stage}: imports modules its deps do not cover: {missing}"


def test_a_removed_dep_is_caught():
    """The check can fail: take one module out of a stage's deps and it is reported."""
    name, script, deps = next(s for s in stages() if s[0] == "train")
    closure = sorted(import_closure(script))
    fit = SRC / "imdb_rnn" / "modeling" / "fit.py"
    assert fit in closure  # the train stage runs the one fit path
    reduced = [d for d in deps if not covered(fit, [d])]
    # Listing the package's other files but not fit.py must be caught.
    reduced += [str(p.relative_to(ROOT)) for p in (SRC / "imdb_rnn" / "modeling").glob("*.py")
                if p != fit]
    assert uncovered(script, reduced) == ["src/imdb_rnn/modeling/fit.py"]


def _path_options(cmd: str) -> dict[str, str]:
    """A stage command's ``--option path`` pairs (values with a folder in them)."""
    words = cmd.split()
    return {w: v for w, v in zip(words, words[1:]) if w.startswith("--") and "/" in v}


@pytest.mark.parametrize("stage", ["seeds", "seeds_tuned"])
def test_every_file_a_seeds_stage_names_is_a_dep_or_an_output(stage):
    """The seed stages read their train.seed run, the study's best.json and the baseline's seed
    runs (reused when the baseline won its study) from their command line: each must be a dep,
    or a change would not rerun them; what they write must be declared."""
    body = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage]
    body = body.get("do", body)
    deps = [str(d) for d in body["deps"]]
    outs = {str(p) for section in ("outs", "metrics") for entry in body.get(section, [])
            for p in (entry if isinstance(entry, dict) else {entry: None})}
    written = {"--out", "--model-out"}
    options = _path_options(body["cmd"])
    assert written <= set(options)
    for option, path in options.items():
        if option in written:
            assert path in outs, f"{stage}: {option} {path} is not among its outs"
        else:
            assert covered(ROOT / path, deps), f"{stage}: {option} {path} is not among its deps"


def test_only_the_tuned_seeds_stage_runs_the_search_package():
    """seeds_tuned rebuilds the tuned section with the search package; seeds@NAME must not
    import it, or every change to the search would retrain all six baselines' seeds."""
    study = SRC / "imdb_rnn" / "search" / "study.py"
    seeds = SRC / "imdb_rnn" / "pipeline" / "seeds.py"
    assert study not in import_closure(ROOT / "stages" / "seeds.py")
    tuned = import_closure(ROOT / "stages" / "seeds_tuned.py")
    assert {study, seeds} <= tuned
    name, script, deps = next(s for s in stages() if s[0] == "seeds_tuned")
    assert uncovered(script, [d for d in deps if d != "src/imdb_rnn/search"]) == sorted(
        str(p.relative_to(ROOT)) for p in tuned if SRC / "imdb_rnn" / "search" in p.parents)


def test_the_closure_follows_imports_inside_functions(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("def main():\n    from imdb_rnn.evaluation import leaderboard\n")
    closure = {str(p.relative_to(ROOT)) for p in import_closure(script) if p != script}
    assert {"src/imdb_rnn/__init__.py", "src/imdb_rnn/evaluation/__init__.py",
            "src/imdb_rnn/evaluation/leaderboard.py"} <= closure
    # leaderboard imports the search comparison inside a function: followed too.
    assert "src/imdb_rnn/search/comparison.py" in closure


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split("==", 1)
            pins[name.split("[")[0]] = version.strip()
    return pins


def test_the_gpu_lock_is_the_cpu_lock_with_the_cuda_build_of_tensorflow():
    """README's GPU install: every package as in requirements.lock, but TensorFlow's CUDA build
    (same version) and the CUDA/cuDNN wheels it needs."""
    cpu, gpu = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-gpu.lock")
    assert gpu.pop("tensorflow") == cpu.pop("tensorflow-cpu")
    cuda = {name for name in gpu if name.startswith("nvidia-")}
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= cuda
    assert {k: v for k, v in gpu.items() if k not in cuda} == cpu
    assert "tensorflow[and-cuda]==" + cpu_tf(ROOT) in (ROOT / "requirements-gpu.in").read_text()


def cpu_tf(root: Path) -> str:
    return _pins(root / "requirements.lock")["tensorflow-cpu"]
