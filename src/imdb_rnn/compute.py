"""Using every core: training processes side by side, each with its share of TensorFlow threads.

One TensorFlow process training a small recurrent network uses several cores poorly (its steps
are many small operations in sequence), so independent trainings (the seed replicates of a
baseline, the trials of a study) run as separate processes side by side. How much that pays
depends on the CPU and the model (reports/benchmarks.md: on one 2-core machine 1.97x for a
SimpleRNN, 0.89x for the LSTM, whose single process gained more from its second thread). The
``compute`` params say how many (``workers``) and with how many TensorFlow threads each
(``threads``); ``auto`` derives both from the cores this process may use.

Worker processes are started with ``spawn`` (TensorFlow is not fork-safe) and stop with the
process that started them (Linux ``PR_SET_PDEATHSIG``: SIGTERM, then SIGKILL after a few
seconds), so a killed stage leaves no trainer running on its own; what a SIGKILL leaves behind
(an MLflow run RUNNING, an Optuna trial RUNNING) names its owner and is cleaned up by the next
run. Ctrl-C stops the stage, which stops its workers: they ignore it from their start (a
Ctrl-C during a worker's start printed a KeyboardInterrupt traceback).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from imdb_rnn.cli import stop_with_launcher, stopped_by
from imdb_rnn.config.params import ComputeParams
from imdb_rnn.errors import PipelineError

T = TypeVar("T")
# Seconds a worker has to end its trial and run FAILED once stopped, before it is SIGKILLed
# (by itself, or by its stage: stop_processes); less than the stage's own (cli.STOP_SECONDS).
WORKER_STOP_SECONDS = 5.0


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, and a cgroup v2 CPU quota)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


@dataclass(frozen=True)
class Plan:
    """How many training processes run side by side, and TensorFlow threads for each."""

    workers: int
    threads: int

    def describe(self) -> str:
        return (f"{self.workers} worker process{'es' if self.workers > 1 else ''} x "
                f"{self.threads} thread{'s' if self.threads > 1 else ''}")


def plan(compute: ComputeParams, tasks: int | None = None) -> Plan:
    """The plan for ``tasks`` independent trainings (None: as many as there are workers)."""
    cores = available_cores()
    workers = cores if compute.workers == "auto" else compute.workers
    if tasks is not None:
        workers = max(1, min(workers, tasks))
    threads = max(1, cores // workers) if compute.threads == "auto" else compute.threads
    return Plan(workers, threads)


def set_threads(threads: int) -> None:
    """TensorFlow's intra- and inter-op threads for this process. Must come before the first
    TensorFlow operation; later, an unequal request is a warning and changes nothing."""
    import tensorflow as tf

    config = tf.config.threading
    if (config.get_intra_op_parallelism_threads() == threads
            and config.get_inter_op_parallelism_threads() == max(2, threads)):
        return
    try:
        config.set_intra_op_parallelism_threads(threads)
        # At least two inter-op threads: a tf.data generator feed needs one of its own.
        config.set_inter_op_parallelism_threads(max(2, threads))
    except RuntimeError:  # TensorFlow is running already: its thread pools exist
        print(f"warning: TensorFlow already started; {threads} thread(s) not applied",
              file=sys.stderr)


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Processes started meanwhile begin with Ctrl-C ignored: a Ctrl-C during a worker's
    start-up (its imports, before its own handlers) raised KeyboardInterrupt there, with a
    traceback. An ignored signal stays ignored through exec, and Python keeps it so (a blocked
    one does not: the child's mask is reset). This process ignores Ctrl-C for the moment of the
    start (milliseconds); the stage stops its workers itself. The disposition is the main
    thread's to change: elsewhere (the pool's manager thread, which replaces finished workers)
    nothing is changed, and the child ignores Ctrl-C from its import of imdb_rnn.cli on."""
    handler = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or handler is None:
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)


def _start_worker(threads: int, parent: int) -> None:
    # Ctrl-C: ignored (the parent stops its workers); SIGTERM, or the parent's end: the trial
    # and run end FAILED, within WORKER_STOP_SECONDS.
    stop_with_launcher(ignore_sigint=True, parent=parent, seconds=WORKER_STOP_SECONDS)
    set_threads(threads)


def run_parallel(function: Callable[..., T], jobs: Sequence[tuple[Any, ...]], the_plan: Plan,
                 what: str) -> list[T]:
    """``[function(*args) for args in jobs]``, ``the_plan.workers`` at a time in worker
    processes (in this process when one worker is planned); results in the order of ``jobs``.

    ``function`` and its arguments must be picklable (a module-level function). A job that
    raises stops the rest; its error is raised here. A worker process that dies (killed, out of
    memory) is a one-line error naming ``what``.
    """
    if the_plan.workers <= 1 or len(jobs) <= 1:
        set_threads(the_plan.threads)
        return [function(*args) for args in jobs]
    context = multiprocessing.get_context("spawn")
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with _sigint_ignored_by_children():
        pool = ProcessPoolExecutor(the_plan.workers, mp_context=context,
                                   initializer=_start_worker,
                                   initargs=(the_plan.threads, os.getpid()), max_tasks_per_child=1)
    futures: list[Any] = []
    try:
        with _sigint_ignored_by_children():
            futures.extend(pool.submit(function, *args) for args in jobs)
        results = [future.result() for future in futures]
    except BrokenProcessPool:
        _stop(pool, futures)
        raise PipelineError(f"{what}: a worker process died (killed, or out of memory?)") from None
    except BaseException:  # a job's error, SIGTERM (SystemExit), Ctrl-C: stop the others now
        _stop(pool, futures)
        raise
    pool.shutdown()
    return results


def _pool_processes(pool: Any) -> list[multiprocessing.process.BaseProcess]:
    try:  # the pool's worker processes: no public API lists them
        return list(dict(getattr(pool, "_processes", None) or {}).values())  # noqa: SLF001
    except RuntimeError:  # changed while copied: the next look gets them
        return []


def _stop(pool: Any, futures: Sequence[Any]) -> None:
    """Cancel the jobs not started and end the running ones (:func:`stop_processes`).

    The pool is shut down with ``wait=True`` in a thread while its workers are stopped:
    ``shutdown(wait=False)`` clears the pool's internals while its manager thread may still be
    replacing a worker that has just finished its job, and CPython 3.11's manager thread then
    dies with a ``TypeError`` traceback on stderr after the stage's one error line."""
    for future in futures:
        future.cancel()  # a job not yet handed to a worker never starts
    closer = threading.Thread(target=pool.shutdown, kwargs={"cancel_futures": True},
                              daemon=True, name="pool-shutdown")
    closer.start()
    deadline = time.monotonic() + WORKER_STOP_SECONDS + 5
    while closer.is_alive() and time.monotonic() < deadline:
        stop_processes(_pool_processes(pool))  # a replacement the manager started, too
        closer.join(timeout=0.5)


def start_process(function: Callable[..., Any], args: tuple, threads: int
                  ) -> multiprocessing.process.BaseProcess:
    """``function(*args)`` in a new worker process with ``threads`` TensorFlow threads, started
    now; the caller joins it and reads its ``exitcode``."""
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_run_in_worker, args=(function, args, threads, os.getpid()),
                              daemon=True)
    with _sigint_ignored_by_children():
        process.start()
    return process


def stop_processes(processes: Sequence[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM to each (its MLflow run and trial end failed), then SIGKILL what is still there
    after WORKER_STOP_SECONDS (and a second: each kills itself then)."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + WORKER_STOP_SECONDS + 1
    for process in processes:
        process.join(timeout=max(deadline - time.monotonic(), 0.1))
        if process.is_alive():
            process.kill()
            process.join()


def _run_in_worker(function: Callable[..., Any], args: tuple, threads: int, parent: int) -> None:
    _start_worker(threads, parent)
    from imdb_rnn.errors import PipelineError as Error

    try:
        function(*args)
    except Error as error:
        # Not an "error:" line: the stage that started this process reports its failure (a
        # store that failed for both, or "a worker process failed"), in its one error line.
        print(f"worker process {os.getpid()}: {error}", file=sys.stderr)
        sys.exit(1)
    except BaseException:
        # Stopped mid-job: the stop unwound the job (its trial and run ended FAILED), but a
        # library may hand it on as an error of its own (TensorFlow, stopped while it traces a
        # function). That is the stop, not a failure to report: the stage says the one line.
        signum = stopped_by()
        if signum is None:
            raise
        sys.exit(128 + signum)
