"""DVC stage `train@NAME`: train model train.models.NAME, save it, log the run to MLflow."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.pipeline.train import TrainPaths, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--name", required=True, help="a key of train.models")
    parser.add_argument("--data", required=True, type=Path, help="vectorized data folder")
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--history", required=True, type=Path, help="per-epoch CSV (DVC plots)")
    parser.add_argument("--metrics", required=True, type=Path, help="training summary JSON")
    args = parser.parse_args()
    params = load_params(args.params)
    summary = train(params, args.name,
                    TrainPaths(args.data, args.model_dir, args.history, args.metrics))
    print(f"train@{args.name}: {summary['epochs']} epochs in {summary['train_seconds']:.0f} s, "
          f"kept epoch {summary['best_epoch']} (validation accuracy "
          f"{summary['best_val_accuracy']:.2%}) -> {args.model_dir}")


if __name__ == "__main__":
    stage_main(main)
