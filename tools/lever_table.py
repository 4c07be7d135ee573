"""The table of levers (issue 35): each change to a family's section, measured over training
seeds, beside the section before it, from the measurements' own JSON files.

    python tools/lever_table.py reports/sweeps/levers.yaml --out reports/sweeps/levers.md

``levers.yaml`` lists one row per lever::

    - model: feedforward                 # the train.models section
      change: ngram_buckets 1048576      # what was changed (as given to --set)
      before: feedforward_bigrams.json#baseline
      after: feedforward_bigrams.json#changed
      kept: false                        # or a few words ("pays; not the default yet")
      note: ...                          # optional, one sentence

``before`` and ``after`` name a JSON beside the YAML: a ``tools/seed_sweep.py`` output with
``#baseline`` or ``#changed``, or a seeds file of a full run (``reports/seeds/NAME.json``).
Every number in the table is read from them (best validation and test accuracy per seed, mean
and sample sd, seconds per training where recorded); nothing is typed in by hand. Exits 1 with
one line naming the row and file when a file is missing or the two sides' seeds differ.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Side:
    seeds: tuple[int, ...]
    val: tuple[float, ...]
    test: tuple[float, ...]
    seconds: float | None  # mean seconds per training, where the file records it


def read_side(folder: Path, spec: str) -> Side:
    """One side of a row: ``FILE#VARIANT`` (a seed_sweep output) or ``FILE`` (a seeds file)."""
    name, _, variant = spec.partition("#")
    path = folder / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    if variant:
        if variant not in data.get("variants", {}):
            raise ValueError(f"{path}: no variant {variant!r} "
                             f"(has {', '.join(data.get('variants', {})) or 'none'})")
        runs = data["variants"][variant]["runs"]
        val = tuple(r["best_val_accuracy"] for r in runs)
        seconds = statistics.fmean(r["train_seconds"] for r in runs)
    else:
        runs = data["runs"]
        val = tuple(r["val_accuracy"] for r in runs)
        seconds = None
    return Side(tuple(r["seed"] for r in runs), val, tuple(r["test_accuracy"] for r in runs),
                seconds)


def mean_sd(values: tuple[float, ...]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{100 * statistics.fmean(values):.2f} ± {100 * sd:.2f}"


def per_seed(values: tuple[float, ...]) -> str:
    return ", ".join(f"{100 * v:.2f}" for v in values)


def render(rows: list[dict], folder: Path) -> str:
    lines = [
        "| model | change | seeds | validation before | validation after | test before "
        "| test after (per seed) | test change | s per training before / after | kept |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for i, row in enumerate(rows, 1):
        try:
            before, after = read_side(folder, row["before"]), read_side(folder, row["after"])
        except ValueError as error:
            raise SystemExit(f"error: row {i} ({row.get('model')}, {row.get('change')}): {error}")
        if before.seeds != after.seeds:
            raise SystemExit(f"error: row {i} ({row['model']}, {row['change']}): seeds "
                             f"{list(before.seeds)} before, {list(after.seeds)} after")
        change = 100 * (statistics.fmean(after.test) - statistics.fmean(before.test))
        seconds = " / ".join("-" if s is None else f"{s:.0f}" for s in (before.seconds,
                                                                         after.seconds))
        kept = row["kept"] if isinstance(row["kept"], str) else (
            "**yes**" if row["kept"] else "no")
        lines.append(
            f"| {row['model']} | {row['change']} | {', '.join(map(str, before.seeds))} "
            f"| {mean_sd(before.val)} | {mean_sd(after.val)} | {mean_sd(before.test)} "
            f"| {mean_sd(after.test)} ({per_seed(after.test)}) | {change:+.2f} | {seconds} "
            f"| {kept} |")
        if row.get("note"):
            notes.append(f"- {row['model']}, {row['change']}: {row['note']}")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("levers", type=Path, help="the YAML list of levers")
    parser.add_argument("--out", type=Path, help="Markdown file (default: print)")
    parser.add_argument("--header", type=Path,
                        help="Markdown put above the table (how it was measured)")
    args = parser.parse_args(argv)
    try:
        rows = yaml.safe_load(args.levers.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as error:
        raise SystemExit(f"error: {args.levers}: {error}")
    text = render(rows, args.levers.parent)
    if args.header:
        text = args.header.read_text(encoding="utf-8").rstrip() + "\n\n" + text
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
