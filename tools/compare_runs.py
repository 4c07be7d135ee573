"""Do the study's conclusions survive another run? Two runs' reports side by side, in Markdown.

Reads each run's ``reports/`` (a workspace, or the ``--out`` folder of tools/numerics_rerun.py):
``seeds/*.json`` (test accuracy per training seed), ``registry.json`` (the champion),
``tuning.csv`` (the "Did tuning pay?" verdicts), and when present ``evaluate/*/metrics.json``,
``leaderboard.csv``, the ``dvc.lock`` beside ``reports/`` (the word vectors' md5) and the
``run.json`` of numerics_rerun. It checks four conclusions:

- every model's seed mean: B's within ``max(0.5 points, 2 SE)`` of A's, where SE is the standard
  error of the difference of the two means (sample sd over seeds, sqrt(sd_a²/n_a + sd_b²/n_b));
- the ranking by seed mean: the same order for every pair whose means differ by more than twice
  the larger of their two seed sds (on either side);
- the champion family (registry.json);
- the tuning verdicts (tuning.csv), study by study.

    python tools/compare_runs.py ../numerics/default ../numerics/changed --out reports/numerics.md
    python tools/compare_runs.py . ../numerics/changed --labels committed changed --check

Writes the Markdown to ``--out`` (else prints it) and one summary line; ``--check`` exits 1 when
a conclusion differs. Single runs, the leaderboard's order and the word vectors are shown, not
judged. A missing or unreadable report file is one line naming it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from imdb_rnn.evaluation.leaderboard import tuning_answer

MIN_TOLERANCE_POINTS = 0.5
SE_MULTIPLE = 2.0
VECTORS = "data/embeddings/word2vec.txt"


def fail(message: str) -> SystemExit:
    return SystemExit(f"error: {message}")


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; missing or malformed is one line naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise fail(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise fail(f"{path}: expected a JSON object")
    return data


def read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file that must have the ``required`` columns."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except FileNotFoundError:
        raise fail(f"{path}: not found") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise fail(f"{path}: no column {', '.join(missing)}")
    return rows


@dataclass(frozen=True)
class SeedRuns:
    """One model's test accuracies over its training seeds (reports/seeds/MODEL.json)."""

    model: str
    family: str
    accuracies: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / self.n

    @property
    def sd(self) -> float:
        """Sample standard deviation (0 for a single seed)."""
        if self.n < 2:
            return 0.0
        mean = self.mean
        return math.sqrt(sum((a - mean) ** 2 for a in self.accuracies) / (self.n - 1))


@dataclass
class Run:
    """What one run's reports say."""

    label: str
    folder: Path
    seeds: dict[str, SeedRuns]
    champion: dict
    verdicts: dict[str, str]
    single: dict[str, float] = field(default_factory=dict)
    leaderboard: list[str] = field(default_factory=list)
    vectors_md5: str | None = None
    info: dict | None = None


def reports_folder(path: Path) -> Path:
    """``path/reports`` when it exists (a workspace), else ``path`` itself (a reports folder)."""
    if not path.is_dir():
        raise fail(f"{path}: not a folder")
    return path / "reports" if (path / "reports").is_dir() else path


def read_seeds(reports: Path) -> dict[str, SeedRuns]:
    """Every reports/seeds/*.json, by model."""
    files = sorted((reports / "seeds").glob("*.json"))
    if not files:
        raise fail(f"{reports / 'seeds'}: no seed reports (*.json)")
    seeds = {}
    for path in files:
        data = read_json(path)
        try:
            accuracies = tuple(float(run["test_accuracy"]) for run in data["runs"])
        except (KeyError, TypeError, ValueError):
            raise fail(f"{path}: expected runs with a test_accuracy each") from None
        if not accuracies:
            raise fail(f"{path}: no runs")
        model = str(data.get("model", path.stem))
        seeds[model] = SeedRuns(model, str(data.get("family", model)), accuracies)
    return seeds


def vectors_md5(folder: Path) -> str | None:
    """The md5 of the word vectors that the dvc.lock beside reports/ records, if any."""
    lock = folder / "dvc.lock"
    if not lock.is_file():
        return None
    try:
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    except yaml.YAMLError:
        raise fail(f"{lock}: not YAML") from None
    for out in (stages.get("embed") or {}).get("outs", []):
        if isinstance(out, dict) and out.get("path") == VECTORS:
            return out.get("md5")
    return None


def load_run(path: Path, label: str) -> Run:
    """Read one run's reports (``path``: a workspace or its reports folder)."""
    reports = reports_folder(path)
    registry = read_json(reports / "registry.json")
    if "family" not in registry and "model" not in registry:
        raise fail(f"{reports / 'registry.json'}: no family or model of the champion")
    verdicts = {row["study"]: row["verdict"]
                for row in read_csv(reports / "tuning.csv", ("study", "verdict"))}
    single = {}
    for metrics in sorted(reports.glob("evaluate/*/metrics.json")):
        accuracy = read_json(metrics).get("accuracy")
        if isinstance(accuracy, (int, float)):
            single[metrics.parent.name] = float(accuracy)
    leaderboard = []
    if (reports / "leaderboard.csv").is_file():
        leaderboard = [row["model"] for row in read_csv(reports / "leaderboard.csv", ("model",))]
    base = reports.parent if reports.name == "reports" else reports
    info = read_json(base / "run.json") if (base / "run.json").is_file() else None
    return Run(label, path, read_seeds(reports), registry, verdicts, single, leaderboard,
               vectors_md5(base), info)


@dataclass(frozen=True)
class FamilyRow:
    """One model's seed mean on both sides and whether B's is within tolerance of A's."""

    model: str
    family: str
    a: SeedRuns | None
    b: SeedRuns | None
    two_se: float | None
    tolerance: float | None

    @property
    def difference(self) -> float | None:
        return None if self.a is None or self.b is None else self.b.mean - self.a.mean

    @property
    def within(self) -> bool:
        return self.difference is not None and abs(self.difference) <= self.tolerance + 1e-12


def compare_families(a: dict[str, SeedRuns], b: dict[str, SeedRuns],
                     min_tolerance: float = MIN_TOLERANCE_POINTS / 100,
                     se_multiple: float = SE_MULTIPLE) -> list[FamilyRow]:
    """Every model of either side; tolerance max(min_tolerance, se_multiple * SE of the
    difference of the means)."""
    rows = []
    for model in sorted(set(a) | set(b), key=lambda m: (m not in a, -(a.get(m) or b[m]).mean, m)):
        left, right = a.get(model), b.get(model)
        two_se = tolerance = None
        if left is not None and right is not None:
            two_se = se_multiple * math.sqrt(left.sd ** 2 / left.n + right.sd ** 2 / right.n)
            tolerance = max(min_tolerance, two_se)
        rows.append(FamilyRow(model, (left or right).family, left, right, two_se, tolerance))
    return rows


def ranking(seeds: dict[str, SeedRuns]) -> list[str]:
    """Models by seed mean, best first (equal means by name)."""
    return sorted(seeds, key=lambda m: (-seeds[m].mean, m))


def ranking_line(seeds: dict[str, SeedRuns]) -> str:
    """``a > b = c``: the ranking, with equal means shown equal."""
    order = ranking(seeds)
    text = order[0]
    for before, model in zip(order, order[1:]):
        text += f" {'=' if seeds[model].mean == seeds[before].mean else '>'} {model}"
    return text


def separated(first: SeedRuns, second: SeedRuns) -> bool:
    """Whether two means differ by more than twice the larger of their seed sds."""
    return abs(first.mean - second.mean) > 2 * max(first.sd, second.sd)


def reordered_pairs(a: dict[str, SeedRuns], b: dict[str, SeedRuns]
                    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pairs separated on either side, those of them in another order on the other side);
    each pair as (A's better, A's worse)."""
    common = [m for m in ranking(a) if m in b]
    checked, reordered = [], []
    for i, first in enumerate(common):
        for second in common[i + 1:]:
            if not (separated(a[first], a[second]) or separated(b[first], b[second])):
                continue
            checked.append((first, second))
            if (a[first].mean > a[second].mean) != (b[first].mean > b[second].mean):
                reordered.append((first, second))
    return checked, reordered


def champion_family(run: Run) -> str:
    return str(run.champion.get("family", run.champion.get("model")))


@dataclass
class Comparison:
    """The four checks, and in words what differs."""

    a: Run
    b: Run
    rows: list[FamilyRow]
    checked_pairs: list[tuple[str, str]]
    reordered: list[tuple[str, str]]
    verdicts: list[tuple[str, str | None, str | None]]
    min_tolerance: float = MIN_TOLERANCE_POINTS / 100

    @property
    def problems(self) -> list[str]:
        found = []
        for row in self.rows:
            if row.a is None or row.b is None:
                side = self.a.label if row.b is None else self.b.label
                found.append(f"{row.model}: seed runs only in {side}")
            elif not row.within:
                found.append(f"{row.model}: seed mean moved {100 * row.difference:+.2f} points, "
                             f"beyond {100 * row.tolerance:.2f}")
        for first, second in self.reordered:
            found.append(f"ranking: {first} and {second} change places")
        if champion_family(self.a) != champion_family(self.b):
            found.append(f"champion: {champion_family(self.a)} -> {champion_family(self.b)}")
        for study, left, right in self.verdicts:
            if _answer(left) != _answer(right):
                found.append(f"tuning verdict of {study}: {left or 'none'!r} -> {right or 'none'!r}")
        return found


def _answer(verdict: str | None) -> str | None:
    """The verdict's answer (tuning helped / hurt / no real difference); its reason may differ."""
    return None if verdict is None else tuning_answer(verdict)


def compare(a: Run, b: Run, min_tolerance: float = MIN_TOLERANCE_POINTS / 100) -> Comparison:
    """Compare run B against run A."""
    checked, reordered = reordered_pairs(a.seeds, b.seeds)
    studies = list(a.verdicts) + [s for s in b.verdicts if s not in a.verdicts]
    verdicts = [(s, a.verdicts.get(s), b.verdicts.get(s)) for s in studies]
    return Comparison(a, b, compare_families(a.seeds, b.seeds, min_tolerance), checked,
                      reordered, verdicts, min_tolerance)


def _points(value: float | None, sign: bool = False) -> str:
    return "-" if value is None else f"{100 * value:{'+' if sign else ''}.2f}"


def _seed_cell(runs: SeedRuns | None) -> str:
    return "-" if runs is None else f"{100 * runs.mean:.2f}% ± {100 * runs.sd:.2f} ({runs.n})"


def _describe(run: Run) -> str:
    text = f"**{run.label}**: `{run.folder}`"
    if run.info:
        env = ", ".join(f"{k}={v}" for k, v in (run.info.get("env") or {}).items()) or "unchanged"
        text += (f", commit {str(run.info.get('commit', '?'))[:7]}, numerics "
                 f"{run.info.get('numerics', '?')} (environment: {env}), profile "
                 f"{run.info.get('profile', '?')}, on {run.info.get('cpu', '?')}")
    return text


def render(comparison: Comparison) -> str:
    """The comparison as a Markdown page."""
    a, b = comparison.a, comparison.b
    problems = comparison.problems
    lines = [f"# Conclusions of two runs: {a.label} against {b.label}", "",
             f"- A, {_describe(a)}", f"- B, {_describe(b)}", ""]
    if problems:
        lines += [f"**{len(problems)} conclusion(s) differ:**", ""] + [f"- {p}" for p in problems]
    else:
        lines.append("**The conclusions hold**: every seed mean within tolerance, the same order "
                     "of the separated pairs, the same champion family, the same answer to "
                     "\"did tuning pay?\" for every study.")
    lines += ["", "## Seed means", "",
              f"Test accuracy over training seeds (mean ± sample sd (seeds)); tolerance "
              f"max({100 * comparison.min_tolerance:g} points, 2 SE of the difference of the "
              f"means).", "",
              f"| model | family | {a.label} | {b.label} | B − A (points) | 2 SE | tolerance | "
              f"within |", "|---|---|---|---|---:|---:|---:|---|"]
    for row in comparison.rows:
        within = "-" if row.difference is None else ("yes" if row.within else "**no**")
        lines.append(f"| {row.model} | {row.family} | {_seed_cell(row.a)} | {_seed_cell(row.b)} "
                     f"| {_points(row.difference, True)} | {_points(row.two_se)} | "
                     f"{_points(row.tolerance)} | {within} |")
    lines += ["", "## Ranking by seed mean", "",
              f"- {a.label}: {ranking_line(a.seeds)}",
              f"- {b.label}: {ranking_line(b.seeds)}", "",
              f"Pairs whose means differ by more than twice the larger seed sd on either side: "
              f"{len(comparison.checked_pairs)}"
              + (f" ({', '.join(f'{x} > {y}' for x, y in comparison.checked_pairs)})"
                 if comparison.checked_pairs else "") + "; in the other order on the other side: "
              + (", ".join(f"{x} / {y}" for x, y in comparison.reordered) or "none") + "."]
    if any(runs.n < 2 for run in (a, b) for runs in run.seeds.values()):
        lines += ["", "A model with a single seed run has no spread (sd 0): any difference of "
                  "its mean counts as separated, and its tolerance is the floor alone."]
    lines += ["", "## Champion", "", f"| | {a.label} | {b.label} |", "|---|---|---|"]
    for key in ("family", "model", "val_accuracy", "test_accuracy"):
        cells = [a.champion.get(key), b.champion.get(key)]
        shown = [f"{100 * c:.2f}%" if isinstance(c, float) else str(c if c is not None else "-")
                 for c in cells]
        lines.append(f"| {key} | {shown[0]} | {shown[1]} |")
    lines += ["", "## Did tuning pay?", "", f"| study | {a.label} | {b.label} | same answer |",
              "|---|---|---|---|"]
    for study, left, right in comparison.verdicts:
        lines.append(f"| {study} | {left or '-'} | {right or '-'} | "
                     f"{'yes' if _answer(left) == _answer(right) else '**no**'} |")
    lines += ["", "## Single runs (test accuracy; shown, not judged)", "",
              f"| model | {a.label} | {b.label} | B − A (points) |", "|---|---:|---:|---:|"]
    for model in list(a.single) + [m for m in b.single if m not in a.single]:
        left, right = a.single.get(model), b.single.get(model)
        diff = None if left is None or right is None else right - left
        cells = ["-" if v is None else f"{100 * v:.2f}%" for v in (left, right)]
        lines.append(f"| {model} | {cells[0]} | {cells[1]} | {_points(diff, True)} |")
    if a.leaderboard or b.leaderboard:
        lines += ["", f"Leaderboard order, {a.label}: {', '.join(a.leaderboard) or '-'}",
                  "", f"Leaderboard order, {b.label}: {', '.join(b.leaderboard) or '-'}"]
    lines += ["", "## Word vectors", ""]
    if a.vectors_md5 is None or b.vectors_md5 is None:
        lines.append("Not known on both sides (no dvc.lock beside reports/).")
    else:
        same = a.vectors_md5 == b.vectors_md5
        lines.append(f"`{VECTORS}` md5: {a.vectors_md5} ({a.label}), {b.vectors_md5} "
                     f"({b.label}): {'the same' if same else 'different'}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="run A: a workspace or a reports folder")
    parser.add_argument("b", type=Path, help="run B, compared against A")
    parser.add_argument("--labels", nargs=2, metavar=("A", "B"), help="names in the report")
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: print it)")
    parser.add_argument("--tolerance", type=float, default=MIN_TOLERANCE_POINTS,
                        help="the smallest tolerance on a seed mean, in points (default 0.5)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a conclusion differs")
    args = parser.parse_args(argv)
    if not args.tolerance >= 0:
        parser.error(f"--tolerance {args.tolerance}: expected points >= 0")
    labels = args.labels or [str(args.a), str(args.b)]
    comparison = compare(load_run(args.a, labels[0]), load_run(args.b, labels[1]),
                         args.tolerance / 100)
    page = render(comparison)
    if args.out is None:
        print(page, end="")
    else:
        args.out.write_text(page, encoding="utf-8")
    problems = comparison.problems
    print(f"compare_runs: {len(problems)} conclusion(s) differ" if problems
          else "compare_runs: the conclusions hold", file=sys.stderr)
    return 1 if problems and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
