"""DVC stage `embed`: word2vec vectors for the vocabulary, from training and unlabeled reviews."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.data.embed import (blas_coretype, build_embeddings, loaded_blas_kernels,
                                 pin_blas_kernel)
from imdb_rnn.io import write_json
from imdb_rnn.config.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--archive", required=True, type=Path, help="the fetched aclImdb archive")
    parser.add_argument("--table", required=True, type=Path, help="reviews table from preprocess")
    parser.add_argument("--vocab", required=True, type=Path, help="vocabulary from vectorize")
    parser.add_argument("--out", required=True, type=Path, help="vectors, word2vec text format")
    parser.add_argument("--summary", required=True, type=Path, help="summary JSON (metrics)")
    args = parser.parse_args()
    params = load_params(args.params)
    # Re-executes this script when OpenBLAS was loaded with another kernel (before any work).
    pinned = pin_blas_kernel(blas_coretype(params.embed))
    summary = build_embeddings(args.archive, args.table, args.vocab, params.preprocess,
                               params.embed, args.out) | {"blas_coretype": pinned,
                                                          "blas_kernels_loaded": loaded_blas_kernels()}
    write_json(args.summary, summary)
    print(f"embed: {summary['vocabulary_with_vector']:,} of {summary['vocabulary']:,} words "
          f"get {summary['dim']}-dim vectors from {summary['tokens']:,} tokens in "
          f"{summary['seconds']:.0f} s -> {args.out}")


if __name__ == "__main__":
    stage_main(main)
