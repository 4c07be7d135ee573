"""The `register` stage: the configuration with the best mean validation accuracy over training
seeds becomes the champion, served with the weights of its best-validation seed.

Candidates are every trained network configuration of the study (``train.models`` and the tuned
configurations of ``tune.studies``), each trained with train.seed and the seeds of
``report.seeds`` (stages seeds@NAME and seeds_tuned@STUDY). One run's validation accuracy moves
with its training seed, so the choice is made on the mean over those runs: the highest mean
validation accuracy wins (ties: the earlier candidate; test accuracy is never looked at). Its
seed run with the best validation accuracy gives the served weights: the train.seed run's
model folder (``models/NAME``), or the replicate the seeds stage kept (``models/seeds/NAME``).
That run's logged model becomes a version of ``mlflow.registered_model`` (the version that
already holds it is reused) and ``mlflow.champion_alias`` moves to it. Earlier versions stay.
The mean test accuracy with its interval (from the leaderboard) and the served weights' own
test accuracy become version tags.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imdb_rnn.config import Params
from imdb_rnn.errors import PipelineError
from imdb_rnn.io import read_json
from imdb_rnn.layout import RUN_FILE, Reports, best_val_model_dir, tuned_name
from imdb_rnn.tracking import models
from imdb_rnn.tracking import runs as tracking

CHOSEN_BY = "best mean validation accuracy over training seeds"


def candidates(params: Params, reports: Reports, models_dir: Path,
               leaderboard_csv: Path) -> list[dict]:
    """Every network configuration with its seed means (validation; test with its interval),
    its best-validation seed run and that run's model folder, logged model and MLflow run."""
    board = pd.read_csv(leaderboard_csv).set_index("model")
    names = [*params.train.models, *(tuned_name(s) for s in params.tune.studies)]
    found = []
    for name in names:
        path = reports.seeds(name)
        summary = read_json(path, f"{name} seed summary")
        if "best_val_seed" not in summary:
            raise PipelineError(f"{path}: no best_val_seed (written before the seeds stages "
                                "kept the best seed's model: dvc repro -f the seeds stages)")
        best = next((r for r in summary["runs"] if r["seed"] == summary["best_val_seed"]), None)
        if best is None:
            raise PipelineError(f"{name} seed summary: best_val_seed {summary['best_val_seed']} "
                                "is not among its runs (dvc repro -f seeds@NAME)")
        folder = best_val_model_dir(models_dir, summary)
        run = read_json(folder / RUN_FILE, f"{name} seed {best['seed']} run file")
        if "model_id" not in run:
            raise PipelineError(f"{folder / RUN_FILE}: no model_id (trained before "
                                "networks were logged as MLflow Models: dvc repro -f train@NAME)")
        if name not in board.index:
            raise PipelineError(f"{leaderboard_csv}: no row for model {name}")
        row = board.loc[name]
        found.append({"model": name, "family": summary["family"], "seeds": summary["seeds"],
                      "val_accuracy_mean": float(summary["val_accuracy_mean"]),
                      "test_accuracy_mean": float(row["mean_accuracy"]),
                      "test_interval": [float(row["mean_ci_low"]), float(row["mean_ci_high"])],
                      "served_seed": best["seed"], "val_accuracy": float(best["val_accuracy"]),
                      "test_accuracy": float(best["test_accuracy"]),
                      "model_dir": str(folder), "model_id": run["model_id"],
                      "run_id": run["run_id"]})
    if not found:
        raise PipelineError("no trained network to register (train.models is empty)")
    return found


def register(params: Params, reports: Reports, models_dir: Path, leaderboard_csv: Path) -> dict:
    """Register the champion; returns what the stage writes (reports/registry.json)."""
    pool = candidates(params, reports, models_dir, leaderboard_csv)
    champion = max(pool, key=lambda c: c["val_accuracy_mean"])  # max keeps the first of ties
    experiment = tracking.connect(params.mlflow)
    name, alias = params.mlflow.registered_model, params.mlflow.champion_alias
    low, high = champion["test_interval"]
    seeds = len(champion["seeds"])
    version, created = models.register_champion(
        experiment, name, alias, model_id=champion["model_id"],
        tags={"model": champion["model"], "family": champion["family"],
              "chosen_by": CHOSEN_BY,
              "val_accuracy_mean": f"{champion['val_accuracy_mean']:.5f}",
              "seeds": " ".join(map(str, champion["seeds"])),
              "served_seed": str(champion["served_seed"]),
              "val_accuracy": f"{champion['val_accuracy']:.5f}",
              "test_accuracy": f"{champion['test_accuracy']:.5f}",
              "test_accuracy_mean": f"{champion['test_accuracy_mean']:.5f}",
              "test_accuracy_mean_ci95": f"[{low:.5f}, {high:.5f}]",
              "git_commit": tracking.git_commit()},
        description=f"{champion['model']} ({champion['family']}): mean validation accuracy "
                    f"{champion['val_accuracy_mean']:.2%} over {seeds} training seed(s), the "
                    f"best of {len(pool)} configurations; the weights of seed "
                    f"{champion['served_seed']} (validation {champion['val_accuracy']:.2%})")
    return {"registered_model": name, "alias": alias, "version": version,
            "new_version": created, "model_uri": f"models:/{name}@{alias}",
            "chosen_by": CHOSEN_BY, **champion,
            "candidates": [{k: c[k] for k in ("model", "seeds", "val_accuracy_mean",
                                              "test_accuracy_mean")}
                           for c in sorted(pool, key=lambda c: -c["val_accuracy_mean"])]}


def markdown(result: dict) -> str:
    """reports/registry.md: the champion and why, for readers of reports/."""
    low, high = result["test_interval"]
    seeds = result["seeds"]
    lines = [f"# The served model: {result['model_uri']}", "",
             f"**{result['model']}** ({result['family']}) is version {result['version']} of "
             f"`{result['registered_model']}` with alias `{result['alias']}`: of "
             f"{len(result['candidates'])} network configurations (baselines and tuned), the "
             f"one with the best mean validation accuracy over training seeds "
             f"({result['val_accuracy_mean']:.2%} over {len(seeds)} seed(s): "
             f"{', '.join(map(str, seeds))}). One run's validation accuracy moves with its "
             "training seed, so the choice is made on the mean, never on test.", "",
             f"Served are the weights of its best seed on validation, seed "
             f"{result['served_seed']} (validation {result['val_accuracy']:.2%}, test "
             f"{result['test_accuracy']:.2%}), model folder `{result['model_dir']}`. The "
             f"configuration's mean test accuracy over the seeds is "
             f"{result['test_accuracy_mean']:.2%} (95% interval {low:.2%}-{high:.2%}, seeds "
             "and test set, as in `reports/leaderboard.md`); the test split played no part in "
             "the choice.", "",
             "Serve it (raw review text in, positive-class probability out):", "",
             "```bash",
             f"mlflow models serve -m {result['model_uri']} --env-manager local -p 5001",
             "```", "",
             "| configuration | seeds | mean validation accuracy | mean test accuracy |",
             "|---|---|---|---|"]
    for c in result["candidates"]:
        mark = " (champion)" if c["model"] == result["model"] else ""
        lines.append(f"| {c['model']}{mark} | {len(c['seeds'])} | "
                     f"{c['val_accuracy_mean']:.2%} | {c['test_accuracy_mean']:.2%} |")
    return "\n".join(lines) + "\n"
