"""DVC stage `report`: leaderboard with confidence intervals, McNemar tests, figures, one HTML page."""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.evaluation.leaderboard import FIGURES, build_report

OUTPUTS = ("leaderboard.md", "leaderboard.csv", "significance.csv", "index.html", FIGURES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--evaluation", type=Path, default=Path("evaluation"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()
    params = load_params(args.params)
    args.out.mkdir(parents=True, exist_ok=True)
    # Everything is built in a temporary folder and moved into place only when all of it exists.
    with tempfile.TemporaryDirectory(prefix=".report-", dir=args.out) as tmp:
        board = build_report(params, args.reports, args.evaluation, Path(tmp))
        for name in OUTPUTS:
            target = args.out / name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(Path(tmp) / name, target)
    best = board.iloc[0]
    print(f"report: {len(board)} models; best {best['model']} at {best['test_accuracy']:.2%} "
          f"-> {args.out / 'leaderboard.md'}, {args.out / 'index.html'}")


if __name__ == "__main__":
    stage_main(main)
