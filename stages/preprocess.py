"""DVC stage `preprocess`: archive -> one clean reviews table (parquet) and the data report."""

import argparse

from imdb_rnn.cli import stage_main
from imdb_rnn.io import atomic_paths, write_json, write_text
from imdb_rnn.config.params import load_params
from imdb_rnn.data.preprocess import (build_table, data_report, has_movies, read_archive,
                                      read_movie_list, report_markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--archive", required=True)
    parser.add_argument("--out", required=True, help="reviews table (.parquet)")
    parser.add_argument("--report-json", required=True)
    parser.add_argument("--report-md", required=True)
    args = parser.parse_args()
    params = load_params(args.params).preprocess
    raw = read_archive(args.archive)
    movie_list = None
    if params.validation == "movie" and params.movie_split_file and not has_movies(raw):
        movie_list = read_movie_list(params.movie_split_file, params.movie_split_sha256)
    table, duplicates = build_table(raw, params, movie_list)
    report = data_report(table, duplicates, params.report_maxlens)
    with atomic_paths(args.out, args.report_json, args.report_md) as (out, report_json, report_md):
        table.to_parquet(out, index=False)
        write_json(report_json, report)
        write_text(report_md, report_markdown(report, params, args.archive,
                                                     table.attrs["validation"]))
    counts = ", ".join(f"{k} {v['reviews']:,}" for k, v in report["counts"].items())
    print(f"preprocess: {len(table):,} reviews ({counts}) -> {args.out}")


if __name__ == "__main__":
    stage_main(main)
