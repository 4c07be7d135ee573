"""The search per model: baseline against best trial on validation, progress, pruning; and, where
two studies search one model with different samplers, which came near the best first."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imdb_rnn.errors import PipelineError
from imdb_rnn.io import read_json

# "Near the best": within this much validation accuracy (0.5 points) of the best any sampler of
# the same model found.
NEAR_BEST = 0.005


def load_study(folder: Path) -> tuple[dict, pd.DataFrame]:
    """A tune stage's best.json and trials.csv."""
    best = read_json(folder / "best.json", "tune summary")
    try:
        trials = pd.read_csv(folder / "trials.csv")
    except FileNotFoundError:
        raise PipelineError(f"{folder / 'trials.csv'}: trials table not found "
                            "(run the tune stage)") from None
    return best, trials


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    """Complete and pruned trials in number order, with their running count."""
    done = trials[trials["state"].isin(["COMPLETE", "PRUNED"])].sort_values("trial")
    return done.assign(finished=range(1, len(done) + 1))


def compare(studies: dict[str, tuple[dict, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per study, the best-so-far curves in long form: model, sampler, finished, value)."""
    rows, curves = [], []
    best_by_model: dict[str, float] = {}
    for best, _ in studies.values():
        best_by_model[best["model"]] = max(best_by_model.get(best["model"], 0.0),
                                           best["best_val_accuracy"])
    for name, (best, trials) in studies.items():
        done = finished(trials)
        target = best_by_model[best["model"]] - NEAR_BEST
        near = done[done["best_so_far"].fillna(0.0) >= target]
        first = near.iloc[0] if len(near) else None
        rows.append({
            "study": name, "model": best["model"], "sampler": best["sampler"],
            "trials": len(done), "pruned": int((done["state"] == "PRUNED").sum()),
            "baseline_val_accuracy": best.get("baseline_val_accuracy"),
            "best_val_accuracy": best["best_val_accuracy"],
            "best_is_baseline": best.get("best_is_baseline"),
            "test_accuracy": best.get("test_accuracy"),
            "trials_to_near_best": int(first["finished"]) if first is not None else None,
            "seconds_to_near_best": float(first["elapsed_seconds"]) if first is not None else None,
            "trial_seconds": best["trial_seconds"],
            "epochs_run": best["epochs_run"], "epochs_budget": best["epochs_budget"],
            "epochs_saved_by_pruning": best["epochs_saved_by_pruning"],
        })
        curves.append(done[["finished", "best_so_far"]].assign(
            study=name, model=best["model"], sampler=best["sampler"]))
    table = pd.DataFrame(rows).sort_values(["model", "sampler"])
    return table, pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()


def markdown(table: pd.DataFrame) -> str:
    lines = ["# The search, per model", "",
             "Every study starts from its model's baseline (trial 0, the hand-set configuration, "
             "never pruned) and trains every trial with the baseline's seed and data, so the best "
             "trial's validation accuracy is never below the baseline's. *Near best* = the first "
             "finished trial whose best-so-far is within "
             f"{NEAR_BEST * 100:.1f} points of the best any study of that model found, and the "
             "training seconds spent until then. Test accuracy is the best configuration "
             "trained as the baseline was (the best trial's weights at the baseline's fidelity, "
             "else retrained; the leaderboard sets it beside its baseline). The "
             "sampler verdict, with repeated studies, is in `reports/samplers/comparison.md`.", "",
             "| model | sampler | trials (pruned) | baseline val acc | best val acc | gain | "
             "test acc (tuned) | trials to near best | seconds to near best | "
             "epochs run / budget | epochs saved by pruning |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        test = f"{r.test_accuracy:.4f}" if pd.notna(r.test_accuracy) else "-"
        near_t = int(r.trials_to_near_best) if pd.notna(r.trials_to_near_best) else "never"
        near_s = f"{r.seconds_to_near_best:.0f}" if pd.notna(r.seconds_to_near_best) else "-"
        has_base = r.baseline_val_accuracy is not None and pd.notna(r.baseline_val_accuracy)
        base = f"{r.baseline_val_accuracy:.4f}" if has_base else "-"
        gain = ("the baseline" if r.best_is_baseline is True
                else f"{(r.best_val_accuracy - r.baseline_val_accuracy) * 100:+.2f} pts"
                if has_base else "-")
        lines.append(f"| {r.model} | {r.sampler} | {r.trials} ({r.pruned}) | {base} | "
                     f"{r.best_val_accuracy:.4f} | {gain} | {test} | {near_t} | {near_s} | "
                     f"{r.epochs_run} / {r.epochs_budget} | {r.epochs_saved_by_pruning} |")
    for model, group in table.groupby("model"):
        reached = group.dropna(subset=["trials_to_near_best"])
        if len(reached) < 2:
            continue
        first = reached["trials_to_near_best"].min()
        winners = reached[reached["trials_to_near_best"] == first]
        if len(winners) == 1:
            w = winners.iloc[0]
            lines += ["", f"{model}: {w['sampler']} came within {NEAR_BEST * 100:.1f} points of "
                          f"the best first (trial {int(first)}, {w['seconds_to_near_best']:.0f} s "
                          "of training)."]
        else:
            lines += ["", f"{model}: a tie: {' and '.join(winners['sampler'])} came within "
                          f"{NEAR_BEST * 100:.1f} points of the best at the same trial "
                          f"({int(first)}) (trial 0 is the baseline in every study)."]
    lines += ["", "![best-so-far validation accuracy](search_progress.png)", ""]
    return "\n".join(lines)


def progress_figure(curves: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted(curves["model"].unique()) if len(curves) else []
    figure, axes = plt.subplots(1, max(len(models), 1), figsize=(5.5 * max(len(models), 1), 4),
                                squeeze=False)
    for ax, model in zip(axes[0], models, strict=False):
        for sampler, curve in curves[curves["model"] == model].groupby("sampler"):
            ax.step(curve["finished"], curve["best_so_far"], where="post", marker="o",
                    label=sampler)
        ax.set(title=f"{model}: best-so-far", xlabel="finished trials",
               ylabel="validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    return figure
