"""Worker processes and thread plans (src/imdb_rnn/compute.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from imdb_rnn import compute
from imdb_rnn.config.params import ComputeParams
from imdb_rnn.errors import PipelineError


def test_auto_is_one_worker_per_core_sharing_the_threads(monkeypatch):
    monkeypatch.setattr(compute, "available_cores", lambda: 8)
    assert compute.plan(ComputeParams()) == compute.Plan(8, 1)
    assert compute.plan(ComputeParams(), tasks=2) == compute.Plan(2, 4)  # never more than tasks
    assert compute.plan(ComputeParams(), tasks=0) == compute.Plan(1, 8)
    assert compute.plan(ComputeParams(workers=3)) == compute.Plan(3, 2)
    assert compute.plan(ComputeParams(workers=2, threads=6)) == compute.Plan(2, 6)
    monkeypatch.setattr(compute, "available_cores", lambda: 1)
    assert compute.plan(ComputeParams()) == compute.Plan(1, 1)


def test_cores_follow_the_affinity_mask():
    assert compute.available_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", [0, -1, "all", True, 1.5])
def test_bad_compute_values_are_one_line_naming_the_key(tmp_path, value):
    from conftest import ROOT
    from imdb_rnn.config.params import load_params

    text = (ROOT / "params.yaml").read_text().replace("compute:\n  workers: auto",
                                                       f"compute:\n  workers: {value}")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(PipelineError) as error:
        load_params(tmp_path / "params.yaml")
    assert str(error.value).startswith(f"{tmp_path / 'params.yaml'}: compute.workers: must be a "
                                       "whole number of at least 1, or auto (got ")


def _square_in_worker(x: int) -> tuple[int, int, int]:
    import tensorflow as tf

    return x * x, os.getpid(), tf.config.threading.get_intra_op_parallelism_threads()


def _fail(x: int) -> None:
    raise PipelineError(f"job {x} failed")


def _die(x: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_jobs_run_in_worker_processes_with_their_threads_results_in_order():
    results = compute.run_parallel(_square_in_worker, [(1,), (2,), (3,)], compute.Plan(2, 1),
                                   "squares")
    assert [r[0] for r in results] == [1, 4, 9]
    assert os.getpid() not in {r[1] for r in results}
    assert len({r[1] for r in results}) == 3  # a fresh process per job (no state carried over)
    assert {r[2] for r in results} == {1}


def test_a_failing_job_raises_its_error_and_a_killed_worker_is_one_line():
    with pytest.raises(PipelineError, match="job 2 failed"):
        compute.run_parallel(_fail, [(2,), (3,)], compute.Plan(2, 1), "jobs")
    with pytest.raises(PipelineError, match="^replicates: a worker process died"):
        compute.run_parallel(_die, [(1,), (2,)], compute.Plan(2, 1), "replicates")


def _fail_first_finish_second(x: int) -> int:
    import time

    time.sleep({0: 0.3, 1: 0.6}.get(x, 3.0))
    if x == 0:
        raise PipelineError("job 0 failed")
    return x


def test_a_failed_job_stops_the_pool_without_a_traceback_from_its_threads(monkeypatch):
    """Job 0 fails while job 1 is about to finish (its worker then replaced): stopping the pool
    must not leave its manager thread to die with a traceback (CPython 3.11's
    shutdown(wait=False) cleared the pool under it: TypeError in _adjust_process_count)."""
    import threading

    died = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_type))
    for _ in range(3):
        with pytest.raises(PipelineError, match="job 0 failed"):
            compute.run_parallel(_fail_first_finish_second, [(0,), (1,), (2,), (3,)],
                                 compute.Plan(2, 1), "jobs")
    assert not died, died
    assert not [p for p in psutil.Process().children(recursive=True) if p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in
                " ".join(p.cmdline())]


def test_workers_die_with_the_process_that_started_them(tmp_path):
    """SIGKILL of a stage takes its worker processes with it (no trainer left orphaned)."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import time
        from imdb_rnn import compute
        def sleep(): time.sleep(600)
        if __name__ == "__main__":
            compute.start_process(sleep, (), 1)
            print("started", flush=True)
            time.sleep(600)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "started"
        children = psutil.Process(parent.pid).children(recursive=True)
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        assert workers
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive
    finally:
        parent.kill()
        for child in psutil.Process().children(recursive=True):
            if child.pid != parent.pid:
                child.kill()


def test_a_stopped_worker_is_quiet_when_a_library_rewraps_the_stop(tmp_path):
    """SIGTERM to a worker while a library turns the stop into an error of its own (TensorFlow
    tracing a function did, on CI): the worker exits 143 with no traceback, since the stop is
    not a failure of its job. An error that is not a stop still shows its traceback."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from imdb_rnn import compute
        def rewrap():
            try:
                time.sleep(600)
            except BaseException as stop:
                raise RuntimeError("a library's own error") from stop
        def fail():
            raise RuntimeError("a real failure")
        if __name__ == "__main__":
            worker = compute.start_process(rewrap if sys.argv[1] == "stop" else fail, (), 1)
            if sys.argv[1] == "stop":
                time.sleep(8)  # the worker's imports and signal handlers
                worker.terminate()
            worker.join(60)
            print("exit", worker.exitcode, flush=True)
    """))
    stopped = subprocess.run([sys.executable, str(script), "stop"], capture_output=True,
                             text=True, timeout=120)
    assert "exit 143" in stopped.stdout, stopped.stdout + stopped.stderr
    assert "Traceback" not in stopped.stderr, stopped.stderr
    failed = subprocess.run([sys.executable, str(script), "fail"], capture_output=True,
                            text=True, timeout=120)
    assert "exit 1" in failed.stdout and "a real failure" in failed.stderr, failed.stderr
