"""DVC stage `report`: leaderboard on seed means, significance tests, figures, one HTML page."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.evaluation.leaderboard import FIGURES, METRICS, build_report
from imdb_rnn.io import move_into_place, temporary_directory

# What build_report writes into its folder -> the option that says where it goes (dvc.yaml).
OUTPUTS = {"leaderboard.md": "leaderboard_md", "leaderboard.csv": "leaderboard_csv",
           "significance.csv": "significance", "tuning.csv": "tuning", "index.html": "html",
           FIGURES: "figures", METRICS: "metrics"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--evaluation", type=Path, default=Path("evaluation"))
    parser.add_argument("--leaderboard-md", type=Path, required=True)
    parser.add_argument("--leaderboard-csv", type=Path, required=True)
    parser.add_argument("--significance", type=Path, required=True, help="McNemar, every pair")
    parser.add_argument("--tuning", type=Path, required=True,
                        help="baseline against tuned configuration per study, verdict")
    parser.add_argument("--html", type=Path, required=True, help="the whole report, one page")
    parser.add_argument("--figures", type=Path, required=True, help="folder of the PNG figures")
    parser.add_argument("--metrics", type=Path, required=True,
                        help="folder of NAME.json per model, numbers only (dvc metrics show)")
    args = parser.parse_args()
    targets = {name: getattr(args, option) for name, option in OUTPUTS.items()}
    params = load_params(args.params)
    # Everything is built in a temporary folder and moved into place only when all of it exists.
    with temporary_directory(args.leaderboard_md) as tmp:
        board = build_report(params, args.reports, args.evaluation, Path(tmp))
        for name, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            move_into_place(Path(tmp) / name, target)
    best = board.iloc[0]
    print(f"report: {len(board)} models; best {best['model']} at {best['mean_accuracy']:.2%} "
          f"(mean over seeds) -> {args.leaderboard_md}, {args.html}")


if __name__ == "__main__":
    stage_main(main)
