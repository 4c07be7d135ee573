"""DVC stage `fetch`: put the verified aclImdb archive at --out (download or local copy)."""

import argparse

from imdb_rnn.cli import stage_main
from imdb_rnn.data.fetch import fetch_archive
from imdb_rnn.config.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="where the archive is written")
    args = parser.parse_args()
    params = load_params(args.params)
    source = fetch_archive(params.fetch, args.out)
    print(f"fetch: {args.out} verified, from {source}")


if __name__ == "__main__":
    stage_main(main)
