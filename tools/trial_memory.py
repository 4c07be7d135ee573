"""Memory of one process running many trials: RSS after each trial, from the trials table.

Runs ``--trials`` trials of study ``--study`` in this one process (as an extra worker would), on
``--data``, with a scratch Optuna journal and MLflow store, so the project's own are untouched;
prints the trials table's RSS column and writes it to ``--out`` (CSV).

    python tools/trial_memory.py --study lstm --trials 20 --out /tmp/rss.csv

Growth is the least-squares trend of RSS over the trials after the first ``--warmup``
(TensorFlow's first graphs and caches), times their number: a leak adds memory every trial,
while one large configuration only raises RSS for a while (the allocator keeps its peak).
``--tolerance-mb`` is the growth the loop may show (exit 1 above it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.errors import PipelineError


def rss_growth(rss: list[float], warmup: int) -> float:
    """MB the trend of RSS gains from the trial after ``warmup`` to the last one."""
    if len(rss) < warmup + 2:
        raise PipelineError(f"{len(rss)} trials with RSS: need two more than the {warmup} "
                            "warm-up")
    after = np.asarray(rss[warmup:], dtype=float)
    slope = np.polyfit(np.arange(len(after)), after, 1)[0]
    return float(slope * (len(after) - 1))


def measure(params_path: Path, study: str, trials: int, data: Path, scratch: Path):
    """The trials table of ``trials`` trials run here (scratch storage and store)."""
    from imdb_rnn.pipeline.tune import trials_table, work
    from imdb_rnn.search.study import STORAGE_ENV

    os.environ[STORAGE_ENV] = f"journal:{scratch / 'journal.log'}"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'mlflow.db'}"
    params = load_params(params_path)
    params = params.model_copy(update={"tune": params.tune.model_copy(
        update={"n_trials": trials, "timeout": None})})
    found, _, _, _ = work(params, study, data, worker=True)
    return trials_table(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--study", required=True, help="a key of tune.studies")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--data", type=Path, default=Path("data/vectorized"))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tolerance-mb", type=float, default=100.0)
    parser.add_argument("--out", type=Path, help="the RSS table (CSV)")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imdb-memory-") as scratch:
        table = measure(args.params, args.study, args.trials, args.data, Path(scratch))
    columns = ["trial", "state", "value", "epochs_run", "seconds", "rss_mb"]
    print(table[columns].to_string(index=False))
    if args.out:
        table[columns].to_csv(args.out, index=False)
    rss = table["rss_mb"].dropna().tolist()
    growth = rss_growth(rss, args.warmup)
    print(f"{len(table)} trials in {time.perf_counter() - start:.0f} s; RSS {rss[0]:.0f} MB after "
          f"the first, {rss[args.warmup]:.0f} after trial {args.warmup}, {rss[-1]:.0f} after the "
          f"last, {min(rss):.0f}-{max(rss):.0f} in all; trend after warm-up {growth:+.1f} MB "
          f"(tolerance {args.tolerance_mb:.0f} MB)")
    if growth > args.tolerance_mb:
        sys.exit(1)


if __name__ == "__main__":
    stage_main(main)
