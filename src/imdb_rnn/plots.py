"""Matplotlib figures for people: learning curves and confusion matrices (headless, Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


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
