"""The `register` stage: the best network by validation accuracy becomes the champion.

Candidates are every trained network of the study (``train.models`` and the tuned models of
``tune.studies``). The one with the highest best-epoch validation accuracy (ties: the earlier
candidate; test accuracy is never looked at for the choice) becomes a version of
``mlflow.registered_model`` (its logged model; the version that already holds it is reused),
and ``mlflow.champion_alias`` moves to it. Earlier versions stay. Its test accuracy and 95%
confidence interval (from the leaderboard) become version tags.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imdb_rnn.config import Params
from imdb_rnn.errors import PipelineError
from imdb_rnn.io import read_json
from imdb_rnn.layout import RUN_FILE, Reports, tuned_name
from imdb_rnn.tracking import models
from imdb_rnn.tracking import runs as tracking


def candidates(params: Params, reports: Reports, models_dir: Path,
               leaderboard_csv: Path) -> list[dict]:
    """Every network with its validation accuracy, test accuracy and CI, logged model and run."""
    board = pd.read_csv(leaderboard_csv).set_index("model")
    names = [*params.train.models, *(tuned_name(s) for s in params.tune.studies)]
    found = []
    for name in names:
        summary = read_json(reports.train_summary(name), f"{name} training summary")
        run = read_json(models_dir / name / RUN_FILE, f"{name} training run file")
        if "model_id" not in run:
            raise PipelineError(f"{models_dir / name / RUN_FILE}: no model_id (trained before "
                                "networks were logged as MLflow Models: dvc repro -f train@NAME)")
        if name not in board.index:
            raise PipelineError(f"{leaderboard_csv}: no row for model {name}")
        row = board.loc[name]
        found.append({"model": name, "family": summary["family"],
                      "val_accuracy": float(summary["best_val_accuracy"]),
                      "test_accuracy": float(row["test_accuracy"]),
                      "test_ci": [float(row["ci_low"]), float(row["ci_high"])],
                      "model_id": run["model_id"], "run_id": run["run_id"]})
    if not found:
        raise PipelineError("no trained network to register (train.models is empty)")
    return found


def register(params: Params, reports: Reports, models_dir: Path, leaderboard_csv: Path) -> dict:
    """Register the champion; returns what the stage writes (reports/registry.json)."""
    pool = candidates(params, reports, models_dir, leaderboard_csv)
    champion = max(pool, key=lambda c: c["val_accuracy"])  # max keeps the first of ties
    experiment = tracking.connect(params.mlflow)
    name, alias = params.mlflow.registered_model, params.mlflow.champion_alias
    low, high = champion["test_ci"]
    version, created = models.register_champion(
        experiment, name, alias, model_id=champion["model_id"], run_id=champion["run_id"],
        tags={"model": champion["model"], "family": champion["family"],
              "chosen_by": "best validation accuracy",
              "val_accuracy": f"{champion['val_accuracy']:.5f}",
              "test_accuracy": f"{champion['test_accuracy']:.5f}",
              "test_accuracy_ci95": f"[{low:.5f}, {high:.5f}]",
              "git_commit": tracking.git_commit()},
        description=f"{champion['model']} ({champion['family']}): validation accuracy "
                    f"{champion['val_accuracy']:.2%}, the best of {len(pool)} networks")
    return {"registered_model": name, "alias": alias, "version": version,
            "new_version": created, "model_uri": f"models:/{name}@{alias}",
            "chosen_by": "best validation accuracy", **champion,
            "candidates": [{k: c[k] for k in ("model", "val_accuracy", "test_accuracy")}
                           for c in sorted(pool, key=lambda c: -c["val_accuracy"])]}


def markdown(result: dict) -> str:
    """reports/registry.md: the champion and why, for readers of reports/."""
    low, high = result["test_ci"]
    lines = [f"# The served model: {result['model_uri']}", "",
             f"**{result['model']}** ({result['family']}) is version {result['version']} of "
             f"`{result['registered_model']}` with alias `{result['alias']}`: the best "
             f"validation accuracy ({result['val_accuracy']:.2%}) of "
             f"{len(result['candidates'])} networks. Its test accuracy is "
             f"{result['test_accuracy']:.2%} (95% CI {low:.2%}-{high:.2%}); the test split "
             "played no part in the choice.", "",
             "Serve it (raw review text in, positive-class probability out):", "",
             "```bash",
             f"mlflow models serve -m {result['model_uri']} --env-manager local -p 5001",
             "```", "",
             "| model | validation accuracy | test accuracy |", "|---|---|---|"]
    for c in result["candidates"]:
        mark = " (champion)" if c["model"] == result["model"] else ""
        lines.append(f"| {c['model']}{mark} | {c['val_accuracy']:.2%} | "
                     f"{c['test_accuracy']:.2%} |")
    return "\n".join(lines) + "\n"
