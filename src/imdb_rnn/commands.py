"""The console commands ``imdb-predict`` and ``imdb-reproduce`` (see pyproject.toml)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from imdb_rnn.cli import stage_main

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
