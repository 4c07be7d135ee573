"""Run the smoke profile (the whole DAG on a stratified slice) in a scratch copy and check it.

    python scripts/smoke.py                         # scratch folder removed afterwards
    python scripts/smoke.py --keep /tmp/smoke       # keep the scratch project to look at
    python scripts/smoke.py --reports smoke-reports # copy the run's reports/ out (for the gate)

Never writes to this workspace (only --reports, when given). Exits 1 with one line naming the
stage or file when the run fails or an output is missing or does not parse.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.smoke import run_smoke

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke", help="a key of profiles in params.yaml")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--reports", type=Path, help="copy the run's reports/ folder here")
    parser.add_argument("--log", type=Path, help="write the dvc output here (default: stdout)")
    args = parser.parse_args()
    log = open(args.log, "w", encoding="utf-8") if args.log else sys.stdout
    with tempfile.TemporaryDirectory(prefix="imdb-smoke-") as scratch:
        workdir = args.keep.resolve() if args.keep else Path(scratch) / "project"
        result = run_smoke(ROOT, workdir, log, args.profile)
        if args.reports:
            shutil.copytree(workdir / "reports", args.reports, dirs_exist_ok=True)
    accuracies = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result.test_accuracy.items()))
    print(f"smoke: profile {args.profile}, dvc repro {result.seconds:.0f} s, "
          f"{len(result.checked)} report files parse; test accuracy: {accuracies}")


if __name__ == "__main__":
    stage_main(main)
