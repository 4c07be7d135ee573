"""DVC stage `tune_report`: the search of every model, baseline against best trial, side by side."""

import argparse
from pathlib import Path

from imdb_rnn.cli import stage_main
from imdb_rnn.io import atomic_paths, write_json, write_text
from imdb_rnn.config.params import load_params
from imdb_rnn.search.comparison import compare, load_study, markdown, progress_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--studies", type=Path, default=Path("reports/tune"),
                        help="folder of the tune stages' results (STUDY/best.json, trials.csv)")
    parser.add_argument("--markdown", type=Path, required=True, help="the comparison table")
    parser.add_argument("--json", type=Path, required=True, help="the same, as a DVC metric")
    parser.add_argument("--progress", type=Path, required=True,
                        help="best-so-far per trial and study (CSV)")
    parser.add_argument("--figure", type=Path, required=True, help="the progress plot (PNG)")
    args = parser.parse_args()
    params = load_params(args.params)
    studies = {name: load_study(args.studies / name) for name in params.tune.studies}
    table, curves = compare(studies)
    with atomic_paths(args.markdown, args.json, args.progress, args.figure) as (md, js, csv, png):
        write_text(md, markdown(table))
        # None, not NaN, where a study lacks a value (NaN is not JSON)
        rows = table.astype(object).where(table.notna(), None).to_dict(orient="records")
        write_json(js, {"studies": rows})
        curves.to_csv(csv, index=False, float_format="%.5f")
        figure = progress_figure(curves)
        figure.savefig(png, dpi=110, format="png")
    print(f"tune_report: {len(table)} studies -> {args.markdown}")


if __name__ == "__main__":
    stage_main(main)
