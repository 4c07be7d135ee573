"""A study's search drawn by Optuna's own plots (``optuna.visualization.matplotlib``).

History (every trial's validation accuracy and the best so far), parallel coordinates, one
slice per parameter, and fANOVA importances only from :data:`MIN_IMPORTANCE_TRIALS` complete
trials on (with fewer, a random forest over a handful of points ranks noise). The tune stage
saves them as PNGs in the study's report folder and logs them to the study's MLflow parent run;
the report shows them on its page.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

# Complete trials a study needs before its parameter importances are computed and drawn.
MIN_IMPORTANCE_TRIALS = 10

# file name (without .png) -> title, in the order the report shows them
FIGURES = {"history": "validation accuracy per trial, best so far",
           "parallel_coordinate": "parallel coordinates",
           "slice": "validation accuracy against each parameter",
           "importances": f"fANOVA importances (from {MIN_IMPORTANCE_TRIALS} complete trials)"}


def complete_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _figure(draw: Callable[..., Any], study: optuna.Study) -> Any:
    from optuna.visualization import matplotlib as optuna_plots  # noqa: F401  (needs matplotlib)

    with warnings.catch_warnings():  # the matplotlib backend is experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # matplotlib's "identical low and high xlims" when a parameter took one value
        warnings.simplefilter("ignore", UserWarning)
        drawn = draw(study, target_name="val_accuracy")
    axes = drawn.flat[0] if hasattr(drawn, "flat") else drawn
    return axes.figure


def search_figures(study: optuna.Study) -> dict[str, Any]:
    """Optuna's figures of ``study`` (matplotlib), by file name; a plot that needs more trials
    than the study has (importances below :data:`MIN_IMPORTANCE_TRIALS`, parallel coordinates
    with one complete trial) is left out."""
    from optuna.visualization import matplotlib as optuna_plots

    complete = complete_trials(study)
    if complete == 0:
        return {}
    wanted = {"history": optuna_plots.plot_optimization_history,
              "slice": optuna_plots.plot_slice}
    if complete >= 2:
        wanted["parallel_coordinate"] = optuna_plots.plot_parallel_coordinate
    if complete >= MIN_IMPORTANCE_TRIALS:
        wanted["importances"] = optuna_plots.plot_param_importances
    out = {}
    for name in FIGURES:
        if name in wanted:
            figure = _figure(wanted[name], study)
            figure.suptitle(f"{study.study_name}: {FIGURES[name]}", fontsize=9)
            out[name] = figure
    return out


def save_figures(figures: dict[str, Any], folder: Path | None) -> list[Path]:
    """Each figure as ``folder/NAME.png`` (the folder is made; None: not saved); the figures
    are closed."""
    import matplotlib.pyplot as plt

    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        if folder is not None:
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=90, bbox_inches="tight")
            paths.append(path)
        plt.close(figure)
    return paths
