"""DVC stage `register`: the configuration with the best mean validation accuracy over training
seeds, its best-validation seed's weights registered as the champion."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.io import atomic_paths, write_json, write_text
from imdb_rnn.layout import Reports
from imdb_rnn.pipeline.register import markdown, register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--leaderboard", type=Path, required=True, help="leaderboard CSV")
    parser.add_argument("--json", type=Path, required=True, help="what was registered")
    parser.add_argument("--markdown", type=Path, required=True, help="the same, for readers")
    args = parser.parse_args()
    result = register(load_params(args.params), Reports(args.reports), args.models,
                      args.leaderboard)
    with atomic_paths(args.json, args.markdown) as (js, md):
        write_json(js, result)
        write_text(md, markdown(result))
    print(f"register: {result['model']} (mean validation {result['val_accuracy_mean']:.2%}; "
          f"seed {result['served_seed']}'s weights) is version {result['version']} of "
          f"{result['registered_model']}@{result['alias']}")


if __name__ == "__main__":
    stage_main(main)
