"""DVC stage `samplers`: random against TPE search at equal budget, repeated with several seeds."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.config.params import load_params
from imdb_rnn.io import atomic_paths, write_json, write_text
from imdb_rnn.pipeline.samplers import compare, verdict_pair
from imdb_rnn.search import samplers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", required=True, type=Path, help="vectorized data folder")
    parser.add_argument("--markdown", required=True, type=Path, help="the report")
    parser.add_argument("--json", required=True, type=Path,
                        help="curves, shares and verdict (a DVC metric)")
    parser.add_argument("--trials", required=True, type=Path, help="every trial (CSV)")
    parser.add_argument("--figure", required=True, type=Path, help="the curves (PNG)")
    args = parser.parse_args()
    params = load_params(args.params)
    trials, settings = compare(params, args.data)
    samplers.check_trials(trials)
    a, b = verdict_pair(params)
    summary = {"settings": settings, "verdict": samplers.verdict(trials, a, b),
               "curves": samplers.curves(trials).to_dict(orient="records"),
               "shares": samplers.pairwise(trials, (a, b)).to_dict(orient="records")}
    with atomic_paths(args.markdown, args.json, args.trials, args.figure) as (md, js, csv, png):
        write_text(md, samplers.markdown(trials, settings, a, b, args.figure.name))
        write_json(js, summary)
        trials.to_csv(csv, index=False, float_format="%.5f")
        samplers.figure(trials).savefig(png, dpi=110, format="png")
    print(f"samplers: {summary['verdict']}")


if __name__ == "__main__":
    stage_main(main)
