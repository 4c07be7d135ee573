"""DVC stage `evaluate@NAME`: metrics, ROC points and per-review predictions on the test split."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.pipeline.evaluate import evaluate
from imdb_rnn.evaluation.metrics import EvaluationPaths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--name", required=True, help="a key of train.models")
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path, help="vectorized data folder")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--roc", required=True, type=Path)
    parser.add_argument("--predictions", required=True, type=Path)
    args = parser.parse_args()
    params = load_params(args.params)
    result = evaluate(params, args.name, args.model_dir, args.data,
                      EvaluationPaths(args.metrics, args.roc, args.predictions))
    print(f"evaluate@{args.name}: test accuracy {result['accuracy']:.2%}, ROC AUC "
          f"{result['roc_auc']:.4f} on {result['reviews']:,} reviews "
          f"({result['reviews_per_second']:,.0f} reviews/s)")


if __name__ == "__main__":
    stage_main(main)
