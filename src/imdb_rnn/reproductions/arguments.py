"""The command line of ``imdb-reproduce``, apart from the presets' Keras code, so that
``--help`` and a mistyped argument answer before TensorFlow's seconds of import."""

from __future__ import annotations

import argparse
from pathlib import Path

# The keys of presets.PRESETS, and the Elman XOR reproduction (tests check they agree).
PRESET_NAMES = ("nlpia_simplernn", "nlpia_bidirectional", "chollet_simplernn", "lstm_5k",
                "small_vocab_four")
XOR = "elman_xor"

DESCRIPTION = """\
Run a classic preset the classic way, over a few seeds, beside its published number.

    imdb-reproduce small_vocab_four                  # seeds 1 2 3, data from data/vectorized
    imdb-reproduce nlpia_simplernn --vectors GoogleNews-vectors.txt
    imdb-reproduce nlpia_simplernn --word2vec      # 300-d word2vec trained here, as embed does
    imdb-reproduce elman_xor

The classic way: every review cut and padded at the front to ``maxlen`` as one NumPy array,
``model.fit`` with Keras' defaults (shuffled batches, ``validation_data`` held out of the
training reviews). Each variant and seed is one MLflow run (experiment ``imdb-reproductions``);
``reports/reproductions/PRESET.json`` keeps the results and ``reports/reproductions.md`` is
rebuilt from every preset's file.
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imdb-reproduce", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", help=f"one of: {', '.join([*PRESET_NAMES, XOR])}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, default=Path("data/vectorized"),
                        help="vectorized data (dvc repro vectorize)")
    parser.add_argument("--vectors", type=Path, help="word2vec/GloVe text file (NLPIA presets)")
    parser.add_argument("--word2vec", action="store_true",
                        help="train word2vec vectors of the preset's size on the training "
                             "and unlabeled reviews, as the embed stage does, and use them")
    parser.add_argument("--trainable", action="store_true", help="fine-tune the --vectors")
    parser.add_argument("--archive", type=Path, default=Path("data/raw/aclImdb.tar.gz"),
                        help="fetched archive, for --word2vec's unlabeled reviews")
    parser.add_argument("--reviews", type=Path, default=Path("data/prepared/reviews.parquet"),
                        help="preprocessed reviews table, for --word2vec")
    parser.add_argument("--out", type=Path, default=Path("reports/reproductions"))
    parser.add_argument("--table", type=Path, default=Path("reports/reproductions.md"))
    parser.add_argument("--replace", action="store_true",
                        help="replace a saved row even if it has more seeds than this run")
    return parser
