"""Figures of ``03_modeling``: algorithm comparison, blend vs components, blend weights.

Each function returns a titled, labelled matplotlib ``Figure``; ``rating.modeling`` and
``lifecycle.champion`` save them with ``recsys_utils.plots.save_figure``.
"""

from __future__ import annotations

import textwrap
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


#: Readable names of the blend's components and support features (``blend.component_features``).
_FEATURE_NAMES = {"baseline": "baseline", "content": "content", "svd": "SVD",
                  "svdpp": "SVD++", "knn_item": "item neighbours", "knn_user": "user neighbours",
                  "log_n_user": "log(user's ratings)", "log_n_item": "log(title's ratings)",
                  "log_sum_sim": "log(similarity mass)"}
_CAPTION = ("Ridge weights on standardized features. The components' predictions are strongly "
            "correlated, so the ridge gives some of them opposite signs: a negative weight offsets "
            "the overlap with another component; it does not mean that component is wrong. The "
            "× terms make a component count more or less for users and titles with many ratings. "
            "Read the bars together; what each component adds is in the blend-vs-components figure.")


def _feature_label(name: str) -> str:
    """``knn_item*log_n_item`` → ``item neighbours × log(title's ratings)``."""
    parts = []
    for part in name.split("*"):
        term = part.endswith("_term")
        base = part[: -len("_term")] if term else part
        label = _FEATURE_NAMES.get(base, base)
        parts.append(f"{label}' term" if term else label)
    return " × ".join(parts)


def plot_blend_weights(weights: pd.Series) -> Figure:
    """The ridge coefficients of the blend (standardized features), in two panels: the
    components' own predictions, then the support features and interaction terms; bars
    sorted, values written, a caption on why signs differ."""
    w = pd.Series(weights, dtype=float)
    groups = [("the components' predictions", w[[("*" not in n and not n.startswith("log_"))
                                                  for n in w.index]]),
              ("adjustments by support (user's / title's number of ratings)",
               w[[("*" in n or n.startswith("log_")) for n in w.index]])]
    groups = [(title, g.sort_values()) for title, g in groups if len(g)]
    sizes = [len(g) for _, g in groups]
    fig, axes = plt.subplots(len(groups), 1, squeeze=False,
                             figsize=(8.5, 0.32 * sum(sizes) + 1.2 * len(groups) + 1.6),
                             gridspec_kw={"height_ratios": sizes})
    span = float(w.abs().max()) if len(w) else 1.0
    for ax, (title, g) in zip(axes[:, 0], groups, strict=True):
        ax.barh([_feature_label(n) for n in g.index], g.to_numpy(),
                color=["tab:red" if v < 0 else "tab:blue" for v in g])
        for y, v in enumerate(g.to_numpy()):
            ax.text(v + (0.02 if v >= 0 else -0.02) * span, y, f"{v:+.2f}", va="center",
                    ha="left" if v >= 0 else "right", fontsize=8)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="y", labelsize=9)
        ax.set_xlim(-1.25 * span, 1.25 * span)  # the same scale in both panels
        ax.set_xlabel("ridge weight (per standard deviation of the feature)", fontsize=9)
        ax.set_ylabel("feature", fontsize=9)
    fig.suptitle("What the blend listens to", fontweight="bold")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.text(0.01, 0.01, textwrap.fill(_CAPTION, 118), fontsize=8.5, color="0.25",
             va="bottom", ha="left")
    return fig
