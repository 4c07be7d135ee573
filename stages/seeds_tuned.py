"""DVC stage `seeds_tuned@STUDY`: study STUDY's best configuration retrained with the seeds of
report.seeds (the baseline's seed runs reused when that configuration is the baseline's own)."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.pipeline.seeds_tuned import replicate_tuned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--study", required=True, help="a key of tune.studies")
    parser.add_argument("--data", required=True, type=Path, help="vectorized data folder")
    parser.add_argument("--best", required=True, type=Path,
                        help="the study's summary (tune@STUDY): best params, best_is_baseline")
    parser.add_argument("--tuned-train", required=True, type=Path,
                        help="the tuned model's training summary (tune@STUDY)")
    parser.add_argument("--tuned-test", required=True, type=Path,
                        help="the tuned model's test metrics (tune@STUDY)")
    parser.add_argument("--baseline-seeds", required=True, type=Path,
                        help="the baseline's seed summary (seeds@MODEL), reused when the "
                             "baseline won its study")
    parser.add_argument("--out", required=True, type=Path, help="summary JSON (metrics)")
    parser.add_argument("--model-out", required=True, type=Path,
                        help="folder for the best-validation replicate's model (and seed.json)")
    args = parser.parse_args()
    summary = replicate_tuned(load_params(args.params), args.study, args.data, args.best,
                              args.tuned_train, args.tuned_test, args.baseline_seeds, args.out,
                              args.model_out)
    reused = f" (reused from {summary['reused_from']})" if summary.get("reused_from") else ""
    std = summary["test_accuracy_std"]
    spread = f" ± {std:.4f}" if std is not None else ""
    print(f"seeds_tuned@{args.study}: test accuracy {summary['test_accuracy_mean']:.4f}{spread} "
          f"over seeds {summary['seeds']}{reused}; best on validation: seed "
          f"{summary['best_val_seed']}")


if __name__ == "__main__":
    stage_main(main)
