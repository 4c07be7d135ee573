"""Entry-point plumbing shared by the stages and commands: one-line errors, clean stops."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

# What TensorFlow's native code logs while it loads, before TF_CPP_MIN_LOG_LEVEL applies
# (TensorFlow 2.21 on CPUs where oneDNN is on: "I0000 ... port.cc:153] oneDNN custom operations
# are on ..."): absl INFO lines and absl's notice about them.
NATIVE_INFO = re.compile(r"I\d{4} |WARNING: All log messages before absl::InitializeLog\(\)")


def import_quietly(module: str) -> None:
    """Import ``module`` with the INFO lines of its native code's start-up dropped from stderr,
    so that an error of the command stays one line; every other line is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            importlib.import_module(module)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not NATIVE_INFO.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


class _QuietTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """The first ``import tensorflow`` (however deep: keras, the pipeline's modules), done by
    :func:`import_quietly`; every later import finds it in ``sys.modules`` as usual."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        import_quietly("tensorflow")
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        return sys.modules[spec.name]

    def exec_module(self, module):
        pass  # already executed


def quiet_native_startup() -> None:
    """Drop TensorFlow's start-up INFO lines from stderr when it is first imported (the stages
    import it through their pipeline modules, before :func:`stage_main` runs)."""
    if "tensorflow" not in sys.modules and not any(
            isinstance(finder, _QuietTensorFlow) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())


# Every stage imports this module first (its stage_main), then its pipeline modules.
quiet_native_startup()


# Seconds a stopped process (SIGTERM, Ctrl-C, its `dvc repro` gone) has to end cleanly (its
# MLflow run and trial ended FAILED, its temporaries removed) before it SIGKILLs itself: a
# Python handler runs only between two steps of the interpreter, and one native step (an epoch
# of a recurrent network on long reviews) can take minutes. What a SIGKILL leaves names its
# owner, and the next run cleans it up (imdb_rnn.process).
STOP_SECONDS = 10.0


class Stopped(SystemExit):
    """SIGTERM (or the end of the process that started this one), raised where the main thread
    is: like ``sys.exit(143)``, it unwinds the stack, so open MLflow runs end FAILED and
    temporary outputs are removed, instead of a run left RUNNING forever."""

    def __init__(self, signum: int, reason: str) -> None:
        super().__init__(128 + signum)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


_said = threading.Event()  # this process' error line is written: the watchdog says nothing
_reason: list[str] = []  # why the process is being stopped, when not a plain signal


def say_error(message: str) -> None:
    """Write ``error: MESSAGE`` on stderr once; a closed stderr (its reader killed) is no error."""
    if _said.is_set():
        return
    _said.set()
    try:
        print(f"error: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


_main_started = threading.Event()  # stage_main (or a worker's job) runs: stop by unwinding
_stopping: list[int] = []  # the signal being raised in the main thread, once raised
_received: list[int] = []  # every stopping signal this process took, in order (never cleared)


def stopped_by() -> int | None:
    """The signal (SIGTERM, SIGINT) that is stopping this process, or None."""
    return _received[0] if _received else None


def _stop_reason(signum: int) -> str:
    if _reason:
        return _reason[0]
    if signum == signal.SIGINT:
        return "interrupted (Ctrl-C)"
    return f"terminated ({signal.Signals(signum).name})"


def _stop(signum: int, frame: object) -> None:
    """SIGTERM or Ctrl-C. Before the stage's main starts (its imports take seconds) there is
    nothing to clean up: one line and exit. After: raise where the main thread is (Stopped, or
    KeyboardInterrupt), once; a second signal while that unwinds is ignored (a second exception
    in the clean-up could leave a run RUNNING), the watchdog bounding the time."""
    reason = _stop_reason(signum)
    if not _main_started.is_set():
        if not _is_worker():
            say_error(reason)
        os._exit(128 + signum)
    _received.append(signum)
    if _stopping:
        return
    _stopping.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum, reason)


def _unraisable(info: Any) -> None:
    """An exception that Python could not raise (from a finalizer or a weakref callback: the
    signal arrived while one ran, and Python printed "Exception ignored in" and went on): the
    signal is sent again a moment later."""
    if isinstance(info.exc_value, Stopped | KeyboardInterrupt) and _stopping:
        # A real signal a moment later, from another thread: raising it from here would be
        # swallowed the same way.
        threading.Timer(0.05, os.kill, (os.getpid(), _stopping.pop())).start()
        return
    _default_unraisable(info)


_default_unraisable = sys.unraisablehook


_exit_on_sigterm = _stop  # the handler's earlier name


def _watchdog(seconds: float, quiet: bool) -> None:
    """SIGKILL this process ``seconds`` after its first SIGTERM or SIGINT, if it is still there
    (saying so in one ``error:`` line unless ``quiet``: a worker, whose stage speaks).

    The signal is seen on a wakeup fd, written by Python's C-level handler the moment it
    arrives, whatever the main thread is doing."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            data = os.read(read, 64)
            received = [b for b in data if b in (signal.SIGTERM, signal.SIGINT)]
            if received:
                break
        time.sleep(seconds)
        name = signal.Signals(received[0]).name
        if quiet:
            _said.set()
        say_error(f"{_reason[0] if _reason else name}: still running {seconds:.0f} s after "
                  f"{name}, killed (the next run cleans up)")
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="stop-watchdog", daemon=True).start()


DVC_STAGE = "DVC_STAGE"  # set by `dvc repro` for each stage's command (dvc.env)
_launcher_names: dict[int, str] = {}  # pid -> program name, seen at the start
_installed = threading.Event()


def _launcher_ended(pid: int) -> None:
    name = _launcher_names.get(pid) or "process"
    _reason.append(f"stopped: the {name} that started it (pid {pid}) ended")
    os.kill(os.getpid(), signal.SIGTERM)


def stop_with_launcher(*, ignore_sigint: bool = False, parent: int | None = None,
                       seconds: float = STOP_SECONDS) -> None:
    """Make this process stop cleanly, and within ``seconds``, on SIGTERM, on Ctrl-C (unless
    ``ignore_sigint``: a worker, whose stage stops it) and when the process that started it
    ends: the `dvc repro` of a stage (killed with SIGTERM or SIGKILL; DVC sets ``DVC_STAGE``),
    a worker's stage (``parent``). A stage run by hand may outlive its shell (``nohup``).

    Linux ``PR_SET_PDEATHSIG`` sends SIGTERM when the parent ends; a shell between DVC and the
    stage (``/bin/sh -c CMD``) outlives DVC, so its parent is watched too
    (:func:`imdb_rnn.process.watch_launcher`). Once per process; main thread only.
    """
    from imdb_rnn.process import command_of, die_with_parent, launchers, watch_launcher

    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _main_started.set()  # a worker runs its job right away: stop it by unwinding
    if _installed.is_set():
        return
    _installed.set()
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    sys.unraisablehook = _unraisable
    _watchdog(seconds, quiet=ignore_sigint)
    if parent is None and not os.environ.get(DVC_STAGE):
        # Run by hand (`nohup python stages/train.py ... &`): it may outlive its shell.
        return
    for pid in launchers():
        _launcher_names[pid] = command_of(pid)
    die_with_parent(signal.SIGTERM, parent)
    watch_launcher(_launcher_ended)


def stage_main(main: Callable[[], None], *, stage: bool = True) -> None:
    """Run a stage's ``main``; a :class:`PipelineError` becomes ``error: ...`` and exit code 1.

    A ``stage`` first removes what killed runs left in its project (``DVC_ROOT`` under
    `dvc repro`, else the current folder when it holds ``dvc.yaml``). SIGTERM, Ctrl-C and the
    end of the `dvc repro` that started it stop it cleanly with one ``error:`` line
    (:func:`stop_with_launcher`); so does a full disk (naming the path).
    """
    from imdb_rnn.errors import PipelineError

    if threading.current_thread() is threading.main_thread():
        stop_with_launcher()
        _main_started.set()
    try:
        root = os.environ.get("DVC_ROOT") or ("." if os.path.isfile("dvc.yaml") else None)
        if stage and root:
            from imdb_rnn.io import sweep_stale_temporaries

            sweep_stale_temporaries(root)
        main()
    except PipelineError as error:
        say_error(str(error))
        sys.exit(1)
    except KeyboardInterrupt:
        say_error("interrupted (Ctrl-C)")
        sys.exit(130)
    except Stopped as stopped:
        say_error(stopped.reason)
        raise
    except Exception as error:
        if _stopping:
            # The signal was raised inside native code (TensorFlow tracing a graph), which
            # turned the KeyboardInterrupt or Stopped into its own error (SystemError, then
            # TypeError): the stop is still what happened.
            say_error(_stop_reason(_stopping[0]))
            sys.exit(128 + _stopping[0])
        # a full disk outside an atomic output (the MLflow store)
        from imdb_rnn.io import disk_full_error, disk_full_message

        if disk_full_error(error) is None:
            raise
        say_error(disk_full_message(error))
        sys.exit(1)


def _is_worker() -> bool:
    """Whether multiprocessing started this process (also while it re-imports the stage's
    script, before its parent is known: its name is set first)."""
    import multiprocessing

    return (multiprocessing.parent_process() is not None
            or multiprocessing.current_process().name != "MainProcess")


def _is_entry_point() -> bool:
    """Whether this process runs a stage script (``stages/NAME.py``) or a command of this
    package, itself (not as a worker that multiprocessing started, which re-imports it)."""
    if _is_worker() or threading.current_thread() is not threading.main_thread():
        return False
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    parent = os.path.basename(os.path.dirname(os.path.abspath(sys.argv[0]))) if script else ""
    return parent == "stages" or script in ("imdb-predict", "imdb-reproduce")


# A stage's imports (TensorFlow, Keras, MLflow) take seconds: a Ctrl-C or the end of its
# `dvc repro` then stops it with one line too, not a KeyboardInterrupt traceback from an import.
if _is_entry_point():
    stop_with_launcher()
elif _is_worker() and threading.current_thread() is threading.main_thread():
    # A worker: Ctrl-C is its stage's to handle (compute starts workers with it ignored where
    # it can; a worker that the pool's thread started gets here within its first imports).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
