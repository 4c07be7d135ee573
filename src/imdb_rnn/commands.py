"""The console commands ``imdb-predict`` and ``imdb-reproduce`` (see pyproject.toml)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import BinaryIO

from imdb_rnn.cli import import_quietly, stage_main
from imdb_rnn.errors import PipelineError

# The project's store (params.yaml mlflow.tracking_uri), when MLFLOW_TRACKING_URI is not set.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# An MLflow model URI (models:/NAME@ALIAS, models:/ID, runs:/RUN_ID/MODEL), not a folder.
MODEL_URI_SCHEMES = ("models:/", "runs:/")

PREDICT_HELP = """Positive-class probability of raw review text for any trained model.

    imdb-predict models/lstm "A wonderful, moving film." "Two hours I will never get back."
    cat reviews.txt | imdb-predict models/cnn        # one review per line (blank lines skipped)
    imdb-predict models:/imdb-sentiment@champion "A wonderful, moving film."
    imdb-predict runs:/RUN_ID/cnn "Two hours I will never get back."

MLflow URIs resolve in MLFLOW_TRACKING_URI (default: the project's sqlite:///mlflow.db).
A review with no words (empty, whitespace or markup such as <br /> only) is refused: a network
answers it with a confident probability all the same.
"""


def predict_main(argv: Sequence[str] | None = None) -> None:
    """``imdb-predict MODEL_DIR [TEXT ...]``: one line per review: probability, label, text."""
    import argparse

    parser = argparse.ArgumentParser(prog="imdb-predict", description=PREDICT_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a trained model folder (models/lstm) or an MLflow model "
                        "URI (models:/imdb-sentiment@champion, runs:/RUN_ID/MODEL)")
    parser.add_argument("texts", nargs="*", help="reviews; none: read one per line from stdin")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability from which a review is called positive (default 0.5)")
    args = parser.parse_args(argv)  # --help answers before TensorFlow's seconds of import
    import_quietly("tensorflow")
    from imdb_rnn.modeling.predict import Predictor

    if args.texts:
        texts = _checked_reviews(_checked_arguments(args.texts), "review argument {}")
    else:
        numbered = [(n, t) for n, t in enumerate(_stdin_lines(sys.stdin.buffer) if sys.stdin
                                                  else [], start=1) if t.strip()]
        texts = _checked_reviews([t for _, t in numbered], "standard input line {}",
                                 [n for n, _ in numbered])
    if not texts:
        raise PipelineError("no review text given (pass it as arguments or on stdin)")
    if args.model.startswith(MODEL_URI_SCHEMES):
        from imdb_rnn.tracking import models  # MLflow's import only when it is needed

        uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        probabilities = models.load_text_model(args.model, uri)(texts)
    else:
        probabilities = Predictor(args.model).predict(texts)
    # Everything is computed before anything is printed: an error prints no partial result.
    lines = [f"{p:.4f}\t{'pos' if p >= args.threshold else 'neg'}\t{_shown(t)}"
             for t, p in zip(texts, probabilities, strict=True)]
    try:
        sys.stdout.buffer.write(("\n".join(lines) + "\n").encode("utf-8"))
        sys.stdout.flush()
    except BrokenPipeError:  # `imdb-predict ... | head`: the reader is gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _invalid_utf8(where: str, data: bytes, error: UnicodeDecodeError) -> str:
    return (f"{where}: not valid UTF-8 (byte 0x{data[error.start]:02x} at offset "
            f"{error.start})")


def _stdin_lines(stream: BinaryIO) -> list[str]:
    """Standard input as text lines, each checked as strict UTF-8 (named by line number)."""
    lines = []
    for number, raw in enumerate(stream, start=1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as error:
            raise PipelineError(_invalid_utf8(f"standard input line {number}", raw, error)) \
                from None
    return lines


def _checked_arguments(texts: Sequence[str]) -> list[str]:
    """Arguments that were valid UTF-8 (Python keeps invalid bytes as lone surrogates)."""
    for number, text in enumerate(texts, start=1):
        raw = os.fsencode(text)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PipelineError(_invalid_utf8(f"review argument {number}", raw, error)) from None
    return list(texts)


def _checked_reviews(texts: list[str], where: str, numbers: list[int] | None = None
                     ) -> list[str]:
    """``texts`` when each is a review (the served model's rule:
    :func:`imdb_rnn.data.text.review_problem`), else a one-line error naming the first that is
    not, by ``where`` (a format of its 1-based number)."""
    from imdb_rnn.data.text import review_problem

    for index, text in enumerate(texts):
        problem = review_problem(text)
        if problem:
            number = numbers[index] if numbers is not None else index + 1
            raise PipelineError(f"{where.format(number)} {problem}")
    return texts


def _shown(text: str, width: int = 70) -> str:
    """The start of a review on one line (tabs and line breaks as spaces)."""
    return " ".join(text.split())[:width]


def predict() -> None:
    """Console entry point ``imdb-predict``."""
    stage_main(lambda: predict_main(sys.argv[1:]), stage=False)


def reproduce() -> None:
    """Console entry point ``imdb-reproduce``."""
    from imdb_rnn.reproductions import arguments

    def run() -> None:
        # --help and a wrong argument answer at once; the presets' Keras code loads after.
        arguments.parser().parse_args(sys.argv[1:])
        from imdb_rnn.reproductions.reproduce import main

        main(sys.argv[1:])

    stage_main(run, stage=False)
