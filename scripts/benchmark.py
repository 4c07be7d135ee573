"""Training speed benchmark: classic Keras recipe against the pipeline, per family, side by side.

    python scripts/benchmark.py                         # every family, 2 epochs, all sections
    python scripts/benchmark.py --models lstm gru --epochs 1 --skip-data --skip-pruning
    python scripts/benchmark.py --models simple_rnn --repeats 3 --update --skip-pruning
                                        # one family again (median of three), into the report

Needs the vectorized data and word vectors of this workspace (`dvc repro embed`); the no-op
repro needs the whole workspace up to date. Writes reports/benchmarks.md and .json. Not a test
and not a DVC stage: run it on a quiet machine.
"""

import argparse
import sys
from pathlib import Path

from imdb_rnn.benchmark import (compare_family, data_stage_seconds, machine, markdown,
                                median_repeat, noop_repro_seconds, pruning_comparison)
from imdb_rnn.cli import stage_main
from imdb_rnn.io import read_json, write_json, write_text
from imdb_rnn.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, default=Path("data/vectorized"))
    parser.add_argument("--models", nargs="+", help="keys of train.models (default: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--study", default="lstm_tpe", help="tune.studies key for pruning")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1,
                        help="comparisons per family; the table shows the median speed-up")
    parser.add_argument("--update", action="store_true",
                        help="keep the families and sections of the existing report that this "
                             "run does not measure")
    parser.add_argument("--skip-data", action="store_true")
    parser.add_argument("--skip-pruning", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks.md"))
    args = parser.parse_args()
    params = load_params(args.params)
    command = " ".join(["python scripts/benchmark.py", *sys.argv[1:]])
    report = {"command": command, "machine": machine(), "families": []}
    previous = args.out.with_suffix(".json")
    if args.update and previous.is_file():  # keep what this run does not measure again
        report = {**read_json(previous, "benchmark report"), "machine": report["machine"]}
        report["command"] = f"{report['command']}`, then `{command}"
        again = set(args.models or params.train.models)
        report["families"] = [f for f in report["families"] if f["model"] not in again]
    for name in args.models or list(params.train.models):
        repeats = []
        for _ in range(args.repeats):
            repeats.append(compare_family(params, name, args.data, args.epochs))
            print(f"benchmark {name}: {repeats[-1]['speedup']:.2f}x, val accuracy "
                  f"{repeats[-1]['val_accuracy_difference'] * 100:+.2f} pts", flush=True)
        report["families"].append(median_repeat(repeats))
    order = list(params.train.models)
    report["families"].sort(key=lambda f: order.index(f["model"]) if f["model"] in order else 99)
    if not args.skip_data:
        report["data_stages"] = data_stage_seconds(ROOT)
        report["noop_repro_seconds"] = noop_repro_seconds(ROOT)
    if not args.skip_pruning:
        report["pruning_study"] = f"{args.study}, {args.trials} trials"
        report["pruning"] = pruning_comparison(params, args.study, args.data, args.trials)
    write_json(args.out.with_suffix(".json"), report)
    write_text(args.out, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    stage_main(main)
