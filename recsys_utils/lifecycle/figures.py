"""Figures of ``05_monitoring``: score drift and newcomers, activity mix, decay, trigger policies.

Each function takes a table of :mod:`recsys_utils.lifecycle.monitoring` and returns a
titled, labelled matplotlib ``Figure``. Legends sit outside the plotting area (to the
right), so no curve or stacked band is hidden behind them, and the PSI reference lines
say what they mean.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "PSI_LEVELS",
    "plot_drift",
    "plot_activity_mix",
    "plot_decay",
    "plot_policy_frontier",
]

#: The conventional PSI reading drawn as reference lines: level -> label.
PSI_LEVELS: dict[float, str] = {
    0.1: "PSI 0.1: moderate shift",
    0.25: "PSI 0.25: major shift",
}

_MAX_TICKS = 12


def _legend_outside(ax: Axes) -> None:
    """The legend to the right of the axes, top-aligned: it never covers the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small")


def _period_ticks(ax: Axes, labels: pd.Series) -> None:
    """At most about a dozen period labels on the x axis, rotated so they do not overlap."""
    x = np.arange(len(labels))
    ticks = x[:: max(1, len(x) // _MAX_TICKS)]
    ax.set_xticks(ticks, [str(v) for v in labels.iloc[ticks]], rotation=45)
    ax.set_xlabel("period")


def plot_drift(drift: pd.DataFrame) -> Figure:
    """Score PSI per period (against the reference window and the previous period) and newcomers.

    ``drift``: :func:`~recsys_utils.lifecycle.monitoring.drift_summary` output. The PSI
    panel draws the 0.1 and 0.25 reading lines (:data:`PSI_LEVELS`), labelled in its legend.
    """
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    x = np.arange(len(drift))
    top, bottom = axes
    top.plot(x, drift["psi_score"], marker="o", ms=3, label="PSI vs reference window")
    top.plot(x, drift["psi_score_prev"], marker=".", ms=3, alpha=0.6,
             label="PSI vs previous period")
    for (level, label), style in zip(PSI_LEVELS.items(), ("--", ":"), strict=True):
        top.axhline(level, color="grey", ls=style, lw=1.0, label=label)
    top.set_ylabel("PSI of the score distribution")
    top.set_xlabel("period")
    top.set_title("Score drift per period")
    _legend_outside(top)
    bottom.plot(x, drift["share_ratings_new_users"], marker="o", ms=3,
                label="ratings by users new in the period")
    bottom.plot(x, drift["share_new_users"], marker=".", ms=3,
                label="active users new in the period")
    bottom.plot(x, drift["share_new_titles"], marker=".", ms=3,
                label="rated titles new in the period")
    bottom.set_ylabel("share")
    bottom.set_title("Newcomers per period")
    _legend_outside(bottom)
    _period_ticks(bottom, drift["period"])
    fig.tight_layout()
    return fig


def plot_activity_mix(drift: pd.DataFrame, buckets: list[str]) -> Figure:
    """Stacked share of each period's active users by their number of ratings in the period.

    ``buckets``: the activity bucket labels (``monitoring.ACTIVITY_BUCKETS``); the
    ``activity_<bucket>`` columns of ``drift`` are stacked in that order.
    """
    shares = drift[[f"activity_{b}" for b in buckets]].fillna(0.0).to_numpy().T
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.stackplot(np.arange(len(drift)), shares, labels=[f"{b} ratings" for b in buckets],
                 alpha=0.85)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of active users")
    ax.set_title("Activity mix per period (ratings per user in the period)")
    _legend_outside(ax)
    _period_ticks(ax, drift["period"])
    fig.tight_layout()
    return fig


def plot_decay(decay: pd.DataFrame, start_period: str) -> Figure:
    """RMSE per period of the model frozen at ``start_period`` and of the one retrained every period,
    and the share of each period's ratings by users each model has never seen.

    ``decay``: :attr:`~recsys_utils.lifecycle.monitoring.Replay.table`.
    """
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    x = np.arange(len(decay))
    top, bottom = axes
    top.plot(x, decay["rmse_frozen"], marker="o", ms=3, label=f"frozen at {start_period}")
    top.plot(x, decay["rmse_retrained"], marker="o", ms=3, label="retrained every period")
    top.set_ylabel("RMSE in the period")
    top.set_xlabel("period")
    top.set_title("Error over time: frozen vs retrained")
    _legend_outside(top)
    bottom.plot(x, decay["unknown_users_frozen"], marker=".", ms=3,
                label="unknown to the frozen model")
    bottom.plot(x, decay["unknown_users_retrained"], marker=".", ms=3,
                label="unknown to the retrained model")
    bottom.set_ylabel("share of the period's ratings")
    bottom.set_title("Ratings by users the model has never seen")
    _legend_outside(bottom)
    _period_ticks(bottom, decay["period"])
    fig.tight_layout()
    return fig


def plot_policy_frontier(sweep: pd.DataFrame, chosen_retrains: int, chosen_rmse: float,
                         rmse_frozen: float, rmse_every_period: float) -> Figure:
    """Every swept threshold combination: retrainings against RMSE, the Pareto front,
    the chosen policy and the two extremes (never / every period) as reference lines.

    ``sweep``: :func:`~recsys_utils.lifecycle.monitoring.sweep_trigger_policies` output.
    """
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.scatter(sweep["retrains"], sweep["rmse"], s=18, alpha=0.4, label="threshold combinations")
    front = sweep[sweep["pareto"]]
    ax.plot(front["retrains"], front["rmse"], color="C1", marker="o", ms=4, label="Pareto front")
    ax.scatter([chosen_retrains], [chosen_rmse], color="C3", s=90, marker="*", zorder=5,
               label="chosen policy")
    ax.axhline(rmse_frozen, color="grey", ls="--", lw=0.8, label="never retrain")
    ax.axhline(rmse_every_period, color="grey", ls=":", lw=0.8, label="retrain every period")
    ax.set_xlabel("number of retrainings")
    ax.set_ylabel("RMSE over the replayed periods")
    ax.set_title("Retraining trigger policies: cost vs error")
    _legend_outside(ax)
    fig.tight_layout()
    return fig
