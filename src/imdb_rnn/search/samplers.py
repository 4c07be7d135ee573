"""The sampler verdict: random against TPE (and GP) at equal budget, over repeated studies.

Each sampler runs ``repeats`` independent studies (own sampler seeds) of ``n_trials`` trials on
the same model and data. For every budget n = 1..n_trials this module gives, per sampler, the
best validation accuracy found in the first n trials: its mean over the repetitions with a band
(Dodge et al. 2019, "Show Your Work": expected best validation accuracy against the number of
trials, here measured over repeated studies rather than resampled, since TPE's trials are not
independent draws), the share of (A, B) study pairs in which A's best beats B's (ties count
half), and one sentence of verdict. Pure pandas/NumPy: no Optuna, no Keras.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

# A sampler is "better" when its best beats the other's in at least this share of study pairs
# at the full budget; below 1 - this it is worse; in between: no clear difference.
CLEAR_SHARE = 0.75


def best_so_far(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` (sampler, repeat, trial, value) with ``best_so_far`` and the 1-based budget
    ``n``, per study in trial order."""
    trials = trials.sort_values(["sampler", "repeat", "trial"], ignore_index=True)
    trials["n"] = trials.groupby(["sampler", "repeat"]).cumcount() + 1
    trials["best_so_far"] = trials.groupby(["sampler", "repeat"])["value"].cummax()
    return trials


def curves(trials: pd.DataFrame) -> pd.DataFrame:
    """Per sampler and budget n: mean, sd, min and max of the best-so-far over repetitions."""
    table = best_so_far(trials)
    grouped = table.groupby(["sampler", "n"])["best_so_far"]
    return grouped.agg(mean="mean", sd="std", low="min", high="max",
                       repeats="count").reset_index()


def win_share(trials: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per budget n: the share of (study of ``a``, study of ``b``) pairs in which ``a``'s best so
    far is higher (ties count half)."""
    table = best_so_far(trials)
    rows = []
    for n, at_n in table.groupby("n"):
        va = at_n.loc[at_n["sampler"] == a, "best_so_far"].to_numpy()
        vb = at_n.loc[at_n["sampler"] == b, "best_so_far"].to_numpy()
        if not len(va) or not len(vb):
            continue
        diff = va[:, None] - vb[None, :]
        share = float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)
        rows.append({"n": int(n), "a": a, "b": b, "share_a_beats_b": share, "pairs": diff.size})
    return pd.DataFrame(rows)


def pairwise(trials: pd.DataFrame, first: tuple[str, ...] = ()) -> pd.DataFrame:
    """:func:`win_share` for every pair of samplers: those of ``first`` in that order, then the
    others in the order they first appear."""
    samplers = [*first, *(s for s in dict.fromkeys(trials["sampler"]) if s not in first)]
    frames = [win_share(trials, a, b) for a, b in itertools.combinations(samplers, 2)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def verdict(trials: pd.DataFrame, a: str, b: str) -> str:
    """One sentence: which sampler found the better model at the full budget, and how sure."""
    shares = win_share(trials, a, b)
    summary = curves(trials)
    last = int(summary["n"].max())
    share = float(shares.loc[shares["n"] == last, "share_a_beats_b"].iloc[0])
    mean = summary[summary["n"] == last].set_index("sampler")["mean"]
    sd = summary[summary["n"] == last].set_index("sampler")["sd"].fillna(0.0)
    repeats = int(summary["repeats"].min())
    numbers = (f"mean best validation accuracy after {last} trials {mean[a]:.2%} ± {sd[a]:.2%} "
               f"({a}) against {mean[b]:.2%} ± {sd[b]:.2%} ({b}), {repeats} studies each; "
               f"{a}'s best beat {b}'s in {share:.0%} of study pairs")
    if share >= CLEAR_SHARE:
        return f"{a} found better models than {b} at this budget: {numbers}."
    if share <= 1 - CLEAR_SHARE:
        return f"{b} found better models than {a} at this budget: {numbers}."
    gap = abs(mean[a] - mean[b])
    spread = max(sd[a], sd[b])
    where = ("within" if gap <= spread else "larger than")
    return (f"No clear difference between {a} and {b} at this budget ({numbers}); the gap of "
            f"{gap * 100:.2f} points is {where} the larger standard deviation between "
            f"repetitions ({spread * 100:.2f} points), and neither wins in {CLEAR_SHARE:.0%} of "
            "study pairs.")


def markdown(trials: pd.DataFrame, settings: dict, a: str, b: str, figure: str) -> str:
    """The report: settings, the table of expected best against budget, the verdict."""
    summary = curves(trials)
    shares = pairwise(trials, (a, b))
    samplers = [a, b, *(s for s in dict.fromkeys(trials["sampler"]) if s not in (a, b))]
    n_max = int(summary["n"].max())
    budgets = sorted({1, 2, 5, 10, 15, 20, 30, 50, n_max} & set(range(1, n_max + 1)))
    head = " | ".join(f"{s}: mean ± sd [min, max]" for s in samplers)
    pair_cols = [(r.a, r.b) for r in shares[["a", "b"]].drop_duplicates().itertuples()]
    lines = [
        "# Which sampler finds better models? Random against Bayesian (TPE) search", "",
        f"Model `{settings['model']}`: each sampler ran {settings['repeats']} independent "
        f"studies of {settings['n_trials']} trials with its own sampler seeds, the same search "
        f"space (`tune.space.{settings['model']}`), training data and epochs "
        f"({settings['train_reviews']:,} training reviews per trial, {settings['epochs']} "
        "epoch(s), no pruning), scored on the whole validation split. Best validation accuracy "
        "found within the first n trials, over the studies (the expected-maximum curve of Dodge "
        "et al. 2019, measured over repeated studies). *Share*: in how many (A, B) study pairs "
        "A's best so far beats B's (ties count half).", "",
        f"| trials | {head} | " + " | ".join(f"share {x} beats {y}" for x, y in pair_cols) + " |",
        "|---|" + "---|" * (len(samplers) + len(pair_cols))]
    for n in budgets:
        at = summary[summary["n"] == n].set_index("sampler")
        cells = [f"{at.loc[s, 'mean']:.2%} ± {0 if pd.isna(at.loc[s, 'sd']) else at.loc[s, 'sd']:.2%} "
                 f"[{at.loc[s, 'low']:.2%}, {at.loc[s, 'high']:.2%}]" for s in samplers]
        pair_cells = [f"{shares[(shares.n == n) & (shares.a == x) & (shares.b == y)]['share_a_beats_b'].iloc[0]:.0%}"
                      for x, y in pair_cols]
        lines.append(f"| {n} | " + " | ".join(cells + pair_cells) + " |")
    lines += ["", f"**Verdict.** {verdict(trials, a, b)}", "",
              f"Seconds of training per sampler (all studies): " + ", ".join(
                  f"{s} {trials.loc[trials['sampler'] == s, 'seconds'].sum():,.0f}"
                  for s in samplers) + ".", "",
              f"![expected best validation accuracy against trials]({figure})", ""]
    return "\n".join(lines)


def figure(trials: pd.DataFrame):
    """Mean best-so-far against trials per sampler, with the min-max band and ±1 sd."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = curves(trials)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for sampler, curve in summary.groupby("sampler", sort=False):
        line, = ax.plot(curve["n"], curve["mean"], marker="o", markersize=3,
                        label=f"{sampler} (mean of {int(curve['repeats'].min())} studies)")
        sd = curve["sd"].fillna(0.0)
        ax.fill_between(curve["n"], curve["mean"] - sd, curve["mean"] + sd,
                        color=line.get_color(), alpha=0.25)
        ax.fill_between(curve["n"], curve["low"], curve["high"], color=line.get_color(),
                        alpha=0.08)
    ax.set(xlabel="trials", ylabel="best validation accuracy so far",
           title="Expected best validation accuracy (band: ±1 sd, light: min-max)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def check_trials(trials: pd.DataFrame) -> None:
    """Every study of every sampler has the same number of trials (equal budget)."""
    sizes = trials.groupby(["sampler", "repeat"]).size()
    if sizes.nunique() != 1:
        raise ValueError(f"unequal budgets: {sizes.to_dict()}")
    if np.any(trials["value"].isna()):
        raise ValueError("a trial has no value")
