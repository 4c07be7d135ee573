"""Compare this run's test metrics with a previous run's and fail on a regression.

    python scripts/regression_gate.py --previous previous-reports --current reports
    python scripts/regression_gate.py --previous-rev HEAD~1          # a committed run

Prints a Markdown table (and appends it to --summary, e.g. $GITHUB_STEP_SUMMARY); exits 1 when
any model's test accuracy dropped by more than ci.max_accuracy_drop (params.yaml) or
--threshold; ``--profile smoke`` takes the threshold of that profile (profiles.smoke.ci).
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.errors import PipelineError
from imdb_rnn.params import load_params
from imdb_rnn.regression import compare, markdown, accuracies_of


def committed_reports(rev: str, into: Path) -> Path:
    """The reports/evaluate/*/metrics.json of commit ``rev``, written under ``into``."""
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "reports/evaluate"],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        raise PipelineError(f"git revision {rev!r}: {listed.stderr.strip()}")
    for name in listed.stdout.split():
        if name.endswith("/metrics.json"):
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(subprocess.run(["git", "show", f"{rev}:{name}"],
                                              capture_output=True, check=True).stdout)
    return into / "reports"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", help="whose ci.max_accuracy_drop applies (default: the "
                        "params file's profile)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--previous", type=Path, help="reports/ folder of the previous run")
    source.add_argument("--previous-rev", help="a git revision whose committed reports/ to use")
    parser.add_argument("--current", type=Path, default=Path("reports"))
    parser.add_argument("--threshold", type=float, default=None,
                        help="largest allowed drop in test accuracy (default: ci.max_accuracy_drop)")
    parser.add_argument("--summary", type=Path, help="append the Markdown table to this file")
    args = parser.parse_args()
    threshold = (args.threshold if args.threshold is not None
                 else load_params(args.params, args.profile).ci.max_accuracy_drop)
    with tempfile.TemporaryDirectory() as tmp:
        previous_dir = (committed_reports(args.previous_rev, Path(tmp)) if args.previous_rev
                        else args.previous)
        label = f"commit {args.previous_rev}" if args.previous_rev else str(args.previous)
        comparison = compare(accuracies_of(previous_dir), accuracies_of(args.current),
                             threshold)
    text = markdown(comparison, label, threshold)
    print(text)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as summary:
            summary.write(text + "\n")
    if not comparison.passed:
        sys.exit(1)


if __name__ == "__main__":
    stage_main(main)
