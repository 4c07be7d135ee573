"""DVC stage `reference`: TF-IDF + logistic regression and a majority-class null model."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.pipeline.reference import reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--table", required=True, type=Path, help="reviews table")
    parser.add_argument("--reports", required=True, type=Path,
                        help="folder for NAME/metrics.json and NAME/roc.csv")
    parser.add_argument("--predictions", required=True, type=Path,
                        help="folder for NAME/predictions.csv")
    args = parser.parse_args()
    results = reference(load_params(args.params), args.table, args.reports, args.predictions)
    for name, result in results.items():
        print(f"reference/{name}: test accuracy {result['accuracy']:.2%}, ROC AUC "
              f"{result['roc_auc']:.4f} on {result['reviews']:,} reviews")


if __name__ == "__main__":
    stage_main(main)
