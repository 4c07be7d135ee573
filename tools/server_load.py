"""Load on real servers: worker processes sharing one Optuna study on PostgreSQL, and processes
logging to one MLflow tracking server at once. Starts its own PostgreSQL and ``mlflow server``
on localhost (tools/servers.py) and removes them afterwards.

    python tools/server_load.py                      # 2 and 4 workers, 4 loggers
    python tools/server_load.py --workers 2 4 8 --trials 80 --trial-seconds 0.5

Study: every worker runs the pipeline's own trial loop (imdb_rnn.search.study.run_trials: the
TPE sampler seeded per trial, the claim of the n_trials budget, heartbeats) over the LSTM
search space of params.yaml, with a short stand-in objective (a sleep) so that the storage,
not TensorFlow, is what is measured. Reported: trials per minute, and that exactly n_trials
finished with no configuration twice, none lost or left RUNNING. Tracking: every process logs
one run's metrics step by step through the pipeline's tracking module; every point is read
back from the server.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from servers import Postgres, TrackingServer

ROOT = Path(__file__).resolve().parents[1]


def _study(storage_url: str, name: str) -> tuple[optuna.Study, optuna.storages.BaseStorage, dict,
                                                 object]:
    from imdb_rnn.config.params import load_params, model_section
    from imdb_rnn.search import study as tuning

    params = load_params(ROOT / "params.yaml")
    spec = params.tune.studies["lstm"]
    base = model_section(params, spec.model)
    storage = tuning.open_storage(storage_url)
    study = tuning.open_study(name, storage, spec.sampler, params.tune,
                              seed=tuning.study_seed(params.tune.seed, name),
                              max_epochs=params.tune.trial_epochs(base))
    return study, storage, params.tune.space[spec.model], base


def study_worker(storage_url: str, name: str, n_trials: int, seconds: float) -> None:
    """One worker process: the pipeline's trial loop with a stand-in objective."""
    from imdb_rnn.search import study as tuning

    study, storage, space, base = _study(storage_url, name)

    def objective(trial: optuna.Trial) -> float:
        values = tuning.suggest(trial, space, base)
        time.sleep(seconds)
        return -sum(abs(float(v)) for v in values.values() if isinstance(v, int | float))

    tuning.run_trials(study, objective, n_trials=n_trials, timeout=None,
                      before_trial=lambda: tuning.recover_dead_trials(study, storage),
                      storage=storage)


def run_study(postgres: Postgres, workers: int, n_trials: int, seconds: float) -> dict:
    url = postgres.url(f"load_{workers}")
    name = f"load-{workers}-workers"
    start = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, __file__, "--study-worker", url, name,
                                   str(n_trials), str(seconds)], stdout=subprocess.DEVNULL)
                 for _ in range(workers)]
    codes = [p.wait() for p in processes]
    wall = time.perf_counter() - start
    study, _, _, _ = _study(url, name)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    configs = {json.dumps(t.params, sort_keys=True) for t in finished}
    # From the first trial's start to the last one's end: the processes' start-up left out.
    span = (max(t.datetime_complete for t in finished)
            - min(t.datetime_start for t in finished)).total_seconds() if finished else math.nan
    return {"workers": workers, "n_trials": n_trials, "trial_seconds": seconds,
            "exit_codes": codes, "wall_seconds": round(wall, 1),
            "trials_seconds": round(span, 1),
            "trials_per_minute": round(len(finished) / span * 60, 1),
            "ideal_trials_per_minute": round(60 / seconds * workers, 1),
            "finished": len(finished), "distinct_configurations": len(configs),
            "left_running_or_waiting": sum(t.state in (TrialState.RUNNING, TrialState.WAITING)
                                           for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "workers_that_ran_trials": len({t.user_attrs.get("worker") for t in finished})}


METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def tracking_logger(uri: str, index: int, steps: int) -> None:
    """One process: a run of its own, every metric at every step, one request per step."""
    from imdb_rnn.config.params import load_params
    from imdb_rnn.tracking import runs as tracking

    params = load_params(ROOT / "params.yaml")
    experiment = tracking.connect(params.mlflow.model_copy(update={"tracking_uri": uri}),
                                  "imdb-load")
    with experiment.run(f"logger-{index}") as run:
        for step in range(steps):
            run.log_metrics({m: math.sin(step + i) for i, m in enumerate(METRICS)}, step=step)
        run.set_tags({"load_index": str(index)})


def run_tracking(server: TrackingServer, processes: int, steps: int) -> dict:
    from mlflow.tracking import MlflowClient

    start = time.perf_counter()
    children = [subprocess.Popen([sys.executable, __file__, "--tracking-logger", server.uri,
                                  str(i), str(steps)], stdout=subprocess.DEVNULL)
                for i in range(processes)]
    codes = [p.wait() for p in children]
    wall = time.perf_counter() - start
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("imdb-load")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    points = {r.info.run_name: {m: len(client.get_metric_history(r.info.run_id, m))
                                for m in METRICS} for r in runs}
    expected = processes * steps * len(METRICS)
    span = ((max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
            if runs else math.nan)
    found = sum(sum(v.values()) for v in points.values())
    return {"processes": processes, "steps": steps, "exit_codes": codes,
            "wall_seconds": round(wall, 1), "runs": len(runs),
            "finished": sum(r.info.status == "FINISHED" for r in runs),
            "points_expected": expected, "points_found": found,
            "logging_seconds": round(span, 1),
            "points_per_second": round(found / span, 1) if span else math.nan}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--trials", type=int, default=60, help="n_trials of each study")
    parser.add_argument("--trial-seconds", type=float, default=1.0)
    parser.add_argument("--loggers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    parser.add_argument("--study-worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--tracking-logger", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.study_worker:
        url, name, n, seconds = args.study_worker
        study_worker(url, name, int(n), float(seconds))
        return
    if args.tracking_logger:
        uri, index, steps = args.tracking_logger
        tracking_logger(uri, int(index), int(steps))
        return
    postgres = Postgres.scratch()
    try:
        results = {"studies": [run_study(postgres, w, args.trials, args.trial_seconds)
                               for w in args.workers]}
        server = TrackingServer(postgres.url("mlflow"), postgres.root / "artifacts",
                                postgres.root / "mlflow.log")
        server.start()
        try:
            with server.authenticated():  # the loggers inherit the credentials
                results["tracking"] = run_tracking(server, args.loggers, args.steps)
        finally:
            server.stop()
    finally:
        postgres.remove()
    for row in results["studies"]:
        print(f"{row['workers']} workers: {row['finished']}/{row['n_trials']} trials finished, "
              f"{row['distinct_configurations']} distinct, {row['left_running_or_waiting']} left "
              f"running, {row['failed']} failed; {row['trials_per_minute']} trials/min "
              f"(ideal {row['ideal_trials_per_minute']}) in {row['wall_seconds']} s")
    t = results["tracking"]
    print(f"{t['processes']} loggers x {t['steps']} steps: {t['points_found']}/"
          f"{t['points_expected']} metric points on the server, {t['finished']}/{t['runs']} runs "
          f"FINISHED, exit codes {t['exit_codes']}, {t['points_per_second']} points/s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
