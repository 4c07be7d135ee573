"""Entry-point plumbing shared by the stages and commands: one-line errors, clean kills."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable


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
