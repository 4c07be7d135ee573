"""Entry-point plumbing shared by the stages: one-line errors and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable


def stage_main(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a :class:`PipelineError` becomes ``error: ...`` and exit code 1."""
    from imdb_rnn.errors import PipelineError

    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
