"""DVC stage `seeds@NAME`: baseline NAME retrained with the seeds of report.seeds (seed variance)."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.pipeline.seeds import replicate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--name", required=True, help="a key of train.models")
    parser.add_argument("--data", required=True, type=Path, help="vectorized data folder")
    parser.add_argument("--baseline-train", required=True, type=Path,
                        help="the baseline's training summary (train@NAME)")
    parser.add_argument("--baseline-test", required=True, type=Path,
                        help="the baseline's test metrics (evaluate@NAME)")
    parser.add_argument("--out", required=True, type=Path, help="summary JSON (metrics)")
    parser.add_argument("--model-out", required=True, type=Path,
                        help="folder for the best-validation replicate's model (and seed.json)")
    args = parser.parse_args()
    summary = replicate(load_params(args.params), args.name, args.data, args.baseline_train,
                        args.baseline_test, args.out, args.model_out)
    std = summary["test_accuracy_std"]
    spread = f" ± {std:.4f}" if std is not None else ""
    print(f"seeds@{args.name}: test accuracy {summary['test_accuracy_mean']:.4f}{spread} over "
          f"seeds {summary['seeds']}; best on validation: seed {summary['best_val_seed']}")


if __name__ == "__main__":
    stage_main(main)
