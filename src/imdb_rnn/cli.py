"""Entry-point plumbing shared by the stages and commands: one-line errors, clean kills."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable

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


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds the stack, so open MLflow runs end FAILED and temporary outputs are
    # removed, instead of a run left RUNNING forever.
    raise SystemExit(128 + signum)


def stage_main(main: Callable[[], None], *, stage: bool = True) -> None:
    """Run a stage's ``main``; a :class:`PipelineError` becomes ``error: ...`` and exit code 1.

    A ``stage`` first removes what killed runs left in its project (``DVC_ROOT`` under
    `dvc repro`, else the current folder when it holds ``dvc.yaml``).
    """
    from imdb_rnn.errors import PipelineError

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        root = os.environ.get("DVC_ROOT") or ("." if os.path.isfile("dvc.yaml") else None)
        if stage and root:
            from imdb_rnn.io import sweep_stale_temporaries

            sweep_stale_temporaries(root)
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


def describe(result: dict) -> str:
    """One line of a result for the terminal."""
    return json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                       for k, v in result.items() if not isinstance(v, dict)})
