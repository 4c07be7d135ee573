"""DVC stage `vectorize`: vocabulary from the train split, ragged token ids for every split."""

import argparse

from imdb_rnn.data.preprocess import read_table
from imdb_rnn.cli import stage_main
from imdb_rnn.io import atomic_path, write_json
from imdb_rnn.config.params import load_params
from imdb_rnn.data.vectorize import vectorize_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--table", required=True, help="reviews table from preprocess")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--summary", required=True, help="vocabulary summary (JSON metrics)")
    args = parser.parse_args()
    params = load_params(args.params).vectorize
    table = read_table(args.table, ["review", "split", "label", "text"])
    with atomic_path(args.out, directory=True) as tmp, atomic_path(args.summary) as summary_tmp:
        summary = vectorize_table(table, params.max_features, tmp)
        write_json(summary_tmp, summary)
    print(f"vectorize: vocabulary of {summary['vocab_size']:,} -> {args.out}")


if __name__ == "__main__":
    stage_main(main)
