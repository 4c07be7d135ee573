"""Entry-point plumbing shared by the stages and commands: one-line errors, clean kills."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Sequence


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds the stack, so open MLflow runs end FAILED and temporary outputs are
    # removed, instead of a run left RUNNING forever.
    raise SystemExit(128 + signum)


def stage_main(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a :class:`PipelineError` becomes ``error: ...`` and exit code 1."""
    from imdb_rnn.errors import PipelineError

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
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


PREDICT_HELP = """Positive-class probability of raw review text for any trained model.

    imdb-predict models/lstm "A wonderful, moving film." "Two hours I will never get back."
    cat reviews.txt | imdb-predict models/cnn        # one review per line
"""


def predict_main(argv: Sequence[str] | None = None) -> None:
    """``imdb-predict MODEL_DIR [TEXT ...]``: one line per review: probability, label, text."""
    import argparse

    from imdb_rnn.errors import PipelineError
    from imdb_rnn.modeling.predict import Predictor

    parser = argparse.ArgumentParser(prog="imdb-predict", description=PREDICT_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a trained model folder, e.g. models/lstm")
    parser.add_argument("texts", nargs="*", help="reviews; none: read one per line from stdin")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability from which a review is called positive (default 0.5)")
    args = parser.parse_args(argv)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise PipelineError("no review text given (pass it as arguments or on stdin)")
    for text, probability in zip(texts, Predictor(args.model_dir).predict(texts), strict=True):
        label = "pos" if probability >= args.threshold else "neg"
        print(f"{probability:.4f}\t{label}\t{text[:70]}")


def predict() -> None:
    """Console entry point ``imdb-predict``."""
    stage_main(lambda: predict_main(sys.argv[1:]))


def reproduce() -> None:
    """Console entry point ``imdb-reproduce``."""
    from imdb_rnn.reproductions.reproduce import main

    stage_main(lambda: main(sys.argv[1:]))
