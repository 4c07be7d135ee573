"""Rerun the whole pipeline of one commit with the numerics another CPU would give.

A CPU of another kind changes the last bits of two computations, and through them which epoch
early stopping picks (issue 32): the word vectors (gensim's BLAS calls run OpenBLAS' kernel for
the CPU) and TensorFlow's oneDNN kernels (AVX-512 or not). This tool clones ``--rev`` into a
scratch folder beside this repository (so ``../shared/data`` is found), changes both there and runs
``dvc repro`` (tools/time_repro.py, stage by stage timed), then copies the run's ``reports/`` and
``dvc.lock`` to ``--out`` for ``tools/compare_runs.py``:

- TensorFlow: ``ONEDNN_MAX_CPU_ISA=AVX2`` (``--onednn-isa``), oneDNN's kernels as on a CPU
  without AVX-512;
- word vectors: OpenBLAS' ``Sandybridge`` kernel (``--blas-coretype``; AVX without FMA): the
  embed stage pins its own kernel (``embed.blas_coretype``, default Prescott), so that param is
  set to it in the clone's params.yaml, and ``OPENBLAS_CORETYPE`` is set for every other stage.

``--numerics default`` changes neither: the baseline of the same commit on the same machine.
Either way the variables of ``NUMERICS_VARIABLES`` are dropped from the environment the run
inherits, so a shell's own settings do not leak into it.

    python tools/numerics_rerun.py --rev HEAD --numerics default --out ../numerics/default
    python tools/numerics_rerun.py --rev HEAD --out ../numerics/changed
    python tools/compare_runs.py ../numerics/default ../numerics/changed --out reports/numerics.md

``--profile smoke`` runs the smoke profile (minutes, to try the tool); ``--set KEY=VALUE`` changes
params.yaml in the clone as in tools/time_repro.py. A full run takes as long as ``dvc repro``
(over an hour on 2 cores). Uses the running interpreter's packages (``--python``). Never writes to
this workspace (only ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import yaml

from smoke import OUTSIDE_PATHS
from time_repro import apply_settings, clone, cpu_model, parse_setting, table, timed_repro

ROOT = Path(__file__).resolve().parents[1]
# Variables that change numerics, dropped from the environment the run inherits so that each
# run has exactly the numerics its --numerics says.
NUMERICS_VARIABLES = ("OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS",
                      "NPY_DISABLE_CPU_FEATURES")
# Where the embed stage says which OpenBLAS kernel it pins (src/imdb_rnn/data/embed.py).
EMBED_MODULE = Path("src/imdb_rnn/data/embed.py")


def embed_pins_kernel(folder: Path) -> bool:
    """Whether the clone's embed stage pins an OpenBLAS kernel (embed.blas_coretype)."""
    module = folder / EMBED_MODULE
    return module.is_file() and "blas_coretype" in module.read_text(encoding="utf-8")


def numerics_changes(numerics: str, params: dict, embed_pins: bool, blas_coretype: str,
                     onednn_isa: str) -> tuple[dict[str, str], list[tuple[list[str], object]]]:
    """(variables to add to dvc repro's environment, params.yaml settings) for ``numerics``.

    ``params`` is the clone's params.yaml as parsed YAML; ``embed_pins`` whether its embed stage
    pins its own OpenBLAS kernel, in which case only ``embed.blas_coretype`` can change it.
    """
    if numerics == "default":
        return {}, []
    if numerics != "changed":
        raise SystemExit(f"error: --numerics {numerics!r}: expected 'changed' or 'default'")
    for name, value in (("--blas-coretype", blas_coretype), ("--onednn-isa", onednn_isa)):
        if not re.fullmatch(r"[A-Za-z0-9_]+", value):
            raise SystemExit(f"error: {name} {value!r}: expected a kernel name such as "
                             f"Sandybridge or AVX2")
    env = {"ONEDNN_MAX_CPU_ISA": onednn_isa, "OPENBLAS_CORETYPE": blas_coretype}
    embed = params.get("embed")
    if isinstance(embed, dict) and "blas_coretype" in embed:
        return env, [(["embed", "blas_coretype"], blas_coretype)]
    if embed_pins:
        raise SystemExit("error: params.yaml: the embed stage pins its OpenBLAS kernel but "
                         "embed.blas_coretype is not in params.yaml, so the word vectors "
                         "cannot be changed; add it (reports/sweeps/word_vectors_numerics.md)")
    return env, []  # an embed stage without a pin takes OPENBLAS_CORETYPE as it is


def outside_paths_absolute(params: dict, folder: Path | None = None
                           ) -> list[tuple[list[str], object]]:
    """Settings that make the params naming files outside the project absolute (resolved from
    this workspace), so a clone anywhere finds the same offline archives. A path that already
    names the same file from the clone's ``folder`` (a clone beside this repository) is left
    as written, so the run's dvc.lock records the params as params.yaml has them."""
    settings: list[tuple[list[str], object]] = []
    for section, key in OUTSIDE_PATHS:
        value = (params.get(section) or {}).get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            here = (ROOT / value).resolve()
            if folder is None or (folder / value).resolve() != here:
                settings.append(([section, key], str(here)))
    return settings


def profile_setting(profile: str, params: dict) -> list[tuple[list[str], object]]:
    """The setting that selects ``profile`` (none for full); an unknown profile is named."""
    if profile == "full":
        return [] if params.get("profile", "full") == "full" else [(["profile"], "full")]
    if profile not in (params.get("profiles") or {}):
        raise SystemExit(f"error: --profile {profile!r}: params.yaml has no profiles.{profile}")
    return [(["profile"], profile)]


def copy_results(folder: Path, out: Path) -> None:
    """The run's reports/ and dvc.lock into ``out`` (what compare_runs reads)."""
    if (folder / "reports").is_dir():
        shutil.copytree(folder / "reports", out / "reports", dirs_exist_ok=True)
    if (folder / "dvc.lock").is_file():
        shutil.copy(folder / "dvc.lock", out / "dvc.lock")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for the run's reports/, dvc.lock, run.json and repro.log")
    parser.add_argument("--numerics", choices=("changed", "default"), default="changed")
    parser.add_argument("--blas-coretype", default="Sandybridge",
                        help="OpenBLAS kernel for the word vectors and NumPy (changed numerics)")
    parser.add_argument("--onednn-isa", default="AVX2",
                        help="ONEDNN_MAX_CPU_ISA for TensorFlow (changed numerics)")
    parser.add_argument("--profile", choices=("full", "smoke"), default="full")
    parser.add_argument("--workdir", type=Path,
                        help="where to clone (default: beside this repository)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change params.yaml in the clone (as dvc exp run -S); repeatable")
    args = parser.parse_args(argv)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise SystemExit(f"error: --out {args.out}: exists and is not an empty folder")
    user_settings = [parse_setting(text) for text in args.set]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", args.rev)
    folder = args.workdir or ROOT.parent / f"numerics-{name}-{args.numerics}"
    sha = clone(args.rev, folder)
    try:
        params = yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8"))
        env, settings = numerics_changes(args.numerics, params, embed_pins_kernel(folder),
                                         args.blas_coretype, args.onednn_isa)
        settings = (profile_setting(args.profile, params) + outside_paths_absolute(params, folder)
                    + settings + user_settings)
        apply_settings(folder / "params.yaml", settings)
        args.out.mkdir(parents=True, exist_ok=True)
        print(f"numerics_rerun: {args.rev} ({sha[:7]}), {args.numerics} numerics, profile "
              f"{args.profile}, env {env or 'unchanged'}, in {folder}", flush=True)
        for variable in NUMERICS_VARIABLES:
            os.environ.pop(variable, None)
        code, wall, stages = timed_repro(folder, args.python, args.out / "repro.log", env)
        copy_results(folder, args.out)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    result = {"rev": args.rev, "commit": sha, "numerics": args.numerics, "env": env,
              "set": {".".join(keys): value for keys, value in settings},
              "profile": args.profile, "returncode": code, "wall_s": wall, "stages": stages,
              "cpu": cpu_model(), "cores": os.cpu_count(),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (args.out / "run.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table([result]))
    if code != 0:
        print(f"error: dvc repro exited {code}; its output is in {args.out / 'repro.log'}",
              file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
