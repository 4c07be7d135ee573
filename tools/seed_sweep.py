"""One model section over several training seeds, as written and with overrides: is a change real?

    python tools/seed_sweep.py --model simple_rnn --seeds 42 1 2 --set clipnorm=1.0
    python tools/seed_sweep.py --model lstm --seeds 1 2 3 --set units=128 --set dropout=0.3

Each run is the train stage's fit (same data, early stopping, word vectors) and the evaluate
stage's prediction path, for the section as ``params.yaml`` has it (``baseline``) and with each
``--set KEY=VALUE`` (YAML values) applied together (``changed``). Prints and writes a JSON of
best validation and test accuracy per seed with mean and standard deviation. Needs
``data/vectorized`` and the word vectors (``dvc repro embed``). Not a DVC stage: a measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import yaml

from imdb_rnn.cli import stage_main
from imdb_rnn.config import load_params, model_section
from imdb_rnn.data import load_sequences
from imdb_rnn.errors import PipelineError
from imdb_rnn.io import write_json
from imdb_rnn.pipeline.seeds import fit_and_test


def overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise PipelineError(f"--set {pair!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def sweep(params, name: str, data_dir: Path, seeds: list[int], changes: dict, *,
          baseline: bool = True) -> dict:
    base = model_section(params, name)
    variants = {"baseline": base} if baseline or not changes else {}
    if changes:
        variants["changed"] = type(base).model_validate(base.model_dump() | changes)
    test = load_sequences(data_dir / "test.npz")
    out = {"model": name, "changes": changes, "seeds": seeds, "variants": {}}
    for label, section in variants.items():
        runs = []
        for seed in seeds:
            result, metrics = fit_and_test(params, section, data_dir, test, seed=seed, verbose=2)
            accuracy = metrics["accuracy"]
            runs.append({"seed": seed, "best_val_accuracy": result.best["val_accuracy"],
                         "test_accuracy": accuracy, "epochs": len(result.history),
                         "train_seconds": round(result.seconds, 1)})
            print(f"{label} seed {seed}: val {runs[-1]['best_val_accuracy']:.4f} "
                  f"test {accuracy:.4f}", flush=True)
        summary = {}
        for key in ("best_val_accuracy", "test_accuracy"):
            values = [r[key] for r in runs]
            summary[key] = {"mean": statistics.fmean(values),
                            "sd": statistics.stdev(values) if len(values) > 1 else None}
        out["variants"][label] = {"runs": runs, "summary": summary}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, default=Path("data/vectorized"))
    parser.add_argument("--model", required=True, help="a key of train.models")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--set", dest="changes", action="append", default=[],
                        metavar="KEY=VALUE", help="a key of the model section and its value")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="only the changed section (the baseline was measured already)")
    parser.add_argument("--out", type=Path, help="JSON of the results")
    args = parser.parse_args()
    result = sweep(load_params(args.params), args.model, args.data, args.seeds,
                   overrides(args.changes), baseline=not args.skip_baseline)
    if args.out:
        write_json(args.out, result)
    print(json.dumps({k: v["summary"] for k, v in result["variants"].items()}, indent=1))


if __name__ == "__main__":
    stage_main(main)
