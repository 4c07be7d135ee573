"""Matplotlib figures for people: learning curves and confusion matrices (headless, Agg)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd


def learning_curves(history: list[dict[str, float]], title: str) -> Figure:
    """Loss and accuracy per epoch, train beside validation."""
    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, [row[metric] for row in history], "o-", label="train")
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def confusion_matrix(confusion: dict[str, int], title: str) -> Figure:
    """2x2 confusion matrix with counts; rows are true labels."""
    cells = [[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]]
    figure, ax = plt.subplots(figsize=(4, 3.5))
    ax.imshow(cells, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{cells[i][j]:,}", ha="center", va="center",
                    color="white" if cells[i][j] > sum(map(sum, cells)) / 3 else "black")
    ax.set_xticks([0, 1], ["neg", "pos"])
    ax.set_yticks([0, 1], ["neg", "pos"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def close(figure: Figure) -> None:
    plt.close(figure)


# --- report figures ------------------------------------------------------------------------------

def learning_curves_grid(histories: dict[str, pd.DataFrame]) -> Figure:
    """Validation accuracy and loss per epoch of every trained model, one line each."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, history in histories.items():
        for ax, metric in zip(axes, ("val_accuracy", "val_loss"), strict=True):
            ax.plot(history["epoch"], history[metric], "o-", label=name)
    for ax, metric in zip(axes, ("validation accuracy", "validation loss"), strict=True):
        ax.set(xlabel="epoch", ylabel=metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle("Learning curves (validation split)")
    figure.tight_layout()
    return figure


def roc_overlay(curves: dict[str, pd.DataFrame], aucs: dict[str, float]) -> Figure:
    figure, ax = plt.subplots(figsize=(5.5, 5))
    for name, curve in curves.items():
        ax.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {aucs[name]:.3f})")
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test split")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def confusion_grid(confusions: dict[str, dict[str, int]]) -> Figure:
    names = list(confusions)
    cols = min(len(names), 5)
    rows = (len(names) + cols - 1) // cols
    figure, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):
        c = confusions[name]
        cells = [[c["tn"], c["fp"]], [c["fn"], c["tp"]]]
        ax.imshow(cells, cmap="Blues", vmin=0, vmax=sum(map(sum, cells)) / 2)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{cells[i][j]:,}", ha="center", va="center", fontsize=8)
        ax.set_xticks([0, 1], ["neg", "pos"], fontsize=7)
        ax.set_yticks([0, 1], ["neg", "pos"], fontsize=7)
        ax.set_title(name, fontsize=8)
    figure.supxlabel("predicted")
    figure.supylabel("true")
    figure.tight_layout()
    return figure


def accuracy_vs_time(board: pd.DataFrame) -> Figure:
    """Mean test accuracy over training seeds (with its 95% interval, the leaderboard's)
    against the train.seed run's training seconds."""
    timed = board[board["train_seconds"].fillna(0) > 0]  # the null model trains in no time
    figure, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.errorbar(timed["train_seconds"], timed["mean_accuracy"],
                yerr=[timed["mean_accuracy"] - timed["mean_ci_low"],
                      timed["mean_ci_high"] - timed["mean_accuracy"]], fmt="o", capsize=3)
    for row in timed.itertuples():
        ax.annotate(row.model, (row.train_seconds, row.mean_accuracy), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set(xscale="log", xlabel="training seconds (log scale)",
           ylabel="mean test accuracy over seeds",
           title="Accuracy against training time (bars: 95% interval)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def expected_max_curves(curves: dict[str, list[float]]) -> Figure:
    """Expected best validation accuracy against the number of trials (Dodge et al. 2019)."""
    figure, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, "o-", label=name)
    ax.set(xlabel="trials (hyperparameter assignments)",
           ylabel="expected best validation accuracy", title="Expected validation performance")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


