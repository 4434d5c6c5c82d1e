"""Figures of ``03_modeling``: algorithm comparison, blend vs components, blend weights.

Each function returns a titled, labelled matplotlib ``Figure``; ``rating.modeling`` and
``lifecycle.champion`` save them with ``recsys_utils.plots.save_figure``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["plot_algorithm_comparison", "plot_blend_vs_components", "plot_blend_weights"]


def plot_algorithm_comparison(table: pd.DataFrame) -> Figure:
    """RMSE (bars, with the spread over folds) and MAE (dots) per surprise algorithm.

    ``table``: ``comparison.compare_algorithms`` output. Algorithms run on fewer folds are
    marked ``(k folds)``.
    """
    t = table.sort_values("rmse", ascending=False)
    labels = [a if n == t["n_folds"].max() else f"{a} ({n} fold{'s' * (n > 1)})"
              for a, n in zip(t["algorithm"], t["n_folds"], strict=True)]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(t) + 1.5))
    ax.barh(labels, t["rmse"], xerr=t["rmse_std"], color="tab:blue", alpha=0.8, label="RMSE")
    ax.scatter(t["mae"], labels, color="tab:orange", zorder=3, label="MAE")
    lo = min(t["mae"].min(), t["rmse"].min())
    ax.set_xlim(lo * 0.9, t["rmse"].max() * 1.03)
    ax.set_xlabel("error on held-out ratings (lower is better)")
    ax.set_ylabel("algorithm")
    ax.set_title("surprise algorithms, same cross-validation folds")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_blend_vs_components(rmse: Mapping[str, float], target: float | None = None) -> Figure:
    """Cross-validated RMSE of each blend component and of the blend (highlighted)."""
    s = pd.Series(dict(rmse)).sort_values(ascending=False)
    colors = ["tab:red" if name == "blend" else "tab:gray" for name in s.index]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(s) + 1.5))
    ax.barh(s.index, s.to_numpy(), color=colors)
    for y, v in enumerate(s.to_numpy()):
        ax.text(v, y, f" {v:.4f}", va="center", fontsize=9)
    if target is not None:
        ax.axvline(target, color="black", linestyle="--", linewidth=1, label=f"target {target}")
        ax.legend(loc="upper right")
    ax.set_xlim(s.min() * 0.97, s.max() * 1.03)
    ax.set_xlabel("cross-validated RMSE (lower is better)")
    ax.set_ylabel("model")
    ax.set_title("the blend vs its components, same folds")
    fig.tight_layout()
    return fig


def plot_blend_weights(weights: pd.Series) -> Figure:
    """The ridge coefficients of the blend (standardized features)."""
    w = weights.sort_values()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(w) + 1.5))
    ax.barh(w.index, w.to_numpy(), color=["tab:red" if v < 0 else "tab:blue" for v in w])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("ridge weight (per standard deviation of the feature)")
    ax.set_ylabel("blend feature")
    ax.set_title("what the blend listens to")
    fig.tight_layout()
    return fig
