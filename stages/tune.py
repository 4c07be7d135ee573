"""DVC stage `tune@STUDY`: Optuna study tune.studies.STUDY, then its best config as a model, tested.

Extra workers on the same study (this machine or others sharing the storage):
    python stages/tune.py --study STUDY --worker
A worker only runs trials; the DVC stage writes the results.
"""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.evaluation.metrics import EvaluationPaths
from imdb_rnn.config.params import load_params
from imdb_rnn.pipeline.tune import BaselinePaths, TunePaths, tune, work

OUTPUTS = ("best", "trials", "model_dir", "history", "train_metrics", "metrics", "roc",
           "predictions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--study", required=True, help="a key of tune.studies")
    parser.add_argument("--data", type=Path, default=Path("data/vectorized"))
    # The stage's outputs, as dvc.yaml declares them (not needed with --worker).
    for flag, what in (("--best", "best params and counts (JSON)"),
                       ("--trials", "every trial (CSV)"),
                       ("--model-dir", "the retrained best model"),
                       ("--history", "its per-epoch history (CSV)"),
                       ("--train-metrics", "its training summary (JSON)"),
                       ("--metrics", "its test metrics (JSON)"), ("--roc", "its ROC points (CSV)"),
                       ("--predictions", "its per-review test predictions (CSV)"),
                       ("--figures", "folder of Optuna's plots of the study (PNG)")):
        parser.add_argument(flag, type=Path, help=what)
    parser.add_argument("--checkpoints", type=Path, default=Path("studies/checkpoints"),
                        help="where trials keep their weights when they train at full fidelity "
                             "(the best becomes the tuned model without a retrain)")
    parser.add_argument("--baseline-model", type=Path,
                        help="the base model's folder from its train stage (models/MODEL)")
    parser.add_argument("--baseline-history", type=Path,
                        help="its per-epoch history (reports/train/MODEL/history.csv)")
    parser.add_argument("--baseline-metrics", type=Path,
                        help="its training summary (reports/train/MODEL/train.json); with the "
                             "two above, trial 0 replays that training instead of repeating it")
    parser.add_argument("--worker", action="store_true",
                        help="only run trials of the study (an extra worker); write nothing")
    args = parser.parse_args()
    params = load_params(args.params)
    given = [args.baseline_model, args.baseline_history, args.baseline_metrics]
    if any(given) and not all(given):
        parser.error("--baseline-model, --baseline-history and --baseline-metrics go together")
    baseline = BaselinePaths(*given) if all(given) else None
    if args.worker:
        study, _, _, loop = work(params, args.study, args.data, worker=True,
                                 checkpoints=args.checkpoints, baseline=baseline)
        print(f"tune@{args.study} worker: ran {loop.ran} trial(s) in {loop.seconds:.0f} s; "
              f"study {study.study_name} stopped by {loop.stopped_by}")
        return
    missing = [f"--{k.replace('_', '-')}" for k in OUTPUTS if getattr(args, k) is None]
    if missing:
        parser.error(f"the stage needs its outputs: {' '.join(missing)}")
    paths = TunePaths(args.data, args.best, args.trials, args.model_dir, args.history,
                      args.train_metrics,
                      EvaluationPaths(args.metrics, args.roc, args.predictions),
                      args.checkpoints, baseline, args.figures)
    summary = tune(params, args.study, paths)
    best = ("the baseline" if summary["best_is_baseline"]
            else f"trial {summary['best_trial']}")
    print(f"tune@{args.study}: {summary['trials_complete']} trials complete, "
          f"{summary['trials_pruned']} pruned in {summary['wall_seconds']:.0f} s; best {best} "
          f"(validation accuracy {summary['best_val_accuracy']:.2%}), test accuracy "
          f"{summary['test_accuracy']:.2%}")


if __name__ == "__main__":
    stage_main(main)
