"""DVC stage `tune@STUDY`: Optuna study tune.studies.STUDY, then its best config retrained and tested.

Extra workers on the same study (this machine or others sharing the storage):
    python stages/tune.py --study STUDY --worker
A worker only runs trials; the DVC stage writes the results.
"""

import argparse
from pathlib import Path

from imdb_rnn.artifacts import describe
from imdb_rnn.cli import stage_main
from imdb_rnn.evaluation import EvaluationPaths
from imdb_rnn.params import load_params
from imdb_rnn.tune import TunePaths, tune, tuned_name, work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--study", required=True, help="a key of tune.studies")
    parser.add_argument("--data", type=Path, default=Path("data/vectorized"))
    parser.add_argument("--worker", action="store_true",
                        help="only run trials of the study (an extra worker); write nothing")
    args = parser.parse_args()
    params = load_params(args.params)
    if args.worker:
        study, _, _, loop = work(params, args.study, args.data, worker=True)
        print(f"tune@{args.study} worker: ran {loop.ran} trial(s) in {loop.seconds:.0f} s; "
              f"study {study.study_name} stopped by {loop.stopped_by}")
        return
    name = tuned_name(args.study)
    paths = TunePaths(
        data_dir=args.data,
        best_json=Path(f"reports/tune/{args.study}/best.json"),
        trials_csv=Path(f"reports/tune/{args.study}/trials.csv"),
        model_dir=Path(f"models/{name}"),
        train_reports=Path(f"reports/train/{name}"),
        evaluation=EvaluationPaths(Path(f"reports/evaluate/{name}/metrics.json"),
                                   Path(f"reports/evaluate/{name}/roc.csv"),
                                   Path(f"evaluation/{name}/predictions.csv")))
    summary = tune(params, args.study, paths)
    print(f"tune@{args.study}: {describe(summary)}")


if __name__ == "__main__":
    stage_main(main)
