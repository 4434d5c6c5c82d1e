"""Figures of ``04_evaluation``: top-N quality against the baselines, rating error by activity.

Each function returns a titled, labelled matplotlib ``Figure``;
``report.evaluate_recommender`` builds them and saves them with ``plots.save_figure``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recsys_utils.ranking.evaluation import RankingResult

__all__ = ["STRATEGY_LABELS", "plot_error_by_activity", "plot_ranking_comparison"]

#: Legend labels of the ranking strategies (``Recommender.recommend_all(strategy=...)``).
STRATEGY_LABELS = {"model": "recommender", "popularity": "popularity", "random": "random",
                   "rating": "predicted rating", "bayes": "Bayesian average"}


def plot_ranking_comparison(results: Mapping[str, RankingResult]) -> Figure:
    """NDCG@k (with one standard error) and catalog coverage per strategy, one group per split."""
    fig, (ax_ndcg, ax_cov) = plt.subplots(1, 2, figsize=(11, 4.2))
    splits = list(results)
    strategies = list(next(iter(results.values())).metrics)
    width = 0.8 / len(strategies)
    x = np.arange(len(splits))
    for j, strategy in enumerate(strategies):
        ndcg = [results[s].metrics[strategy]["ndcg"] for s in splits]
        se = [results[s].metrics[strategy]["ndcg_se"] for s in splits]
        cov = [results[s].metrics[strategy]["coverage"] for s in splits]
        label = STRATEGY_LABELS.get(strategy, strategy)
        ax_ndcg.bar(x + j * width, ndcg, width, yerr=se, capsize=3, label=label)
        ax_cov.bar(x + j * width, cov, width, label=label)
    k = next(iter(results.values())).k
    for ax, title, ylabel in ((ax_ndcg, f"NDCG@{k} (error bar: 1 s.e. over users)", f"NDCG@{k}"),
                              (ax_cov, f"Catalog coverage of the top-{k} lists",
                               "share of the catalog (log scale)")):
        ax.set_xticks(x + width * (len(strategies) - 1) / 2, splits)
        ax.set_xlabel("split")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    ax_cov.set_yscale("log")
    handles, labels = ax_ndcg.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(strategies), frameon=False)
    fig.suptitle("Top-N quality: recommender vs baselines on the same candidates")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_error_by_activity(frames: Mapping[str, pd.DataFrame]) -> Figure:
    """RMSE per user-activity bucket, one line per split (``evaluation.error_by_activity``).

    Each point is labelled with its bucket's number of users: an RMSE over a handful of
    users is noise, and the label says so where the eye is.
    """
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for name, frame in frames.items():  # empty buckets have NaN RMSE: a gap in the line
        (line,) = ax.plot(frame["activity"], frame["rmse"], marker="o", label=name)
        for x, rmse, n_users in zip(ax.xaxis.convert_units(frame["activity"]), frame["rmse"],
                                    frame["n_users"], strict=True):
            if np.isfinite(rmse):
                ax.annotate(f"{int(n_users)}", (x, rmse), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=8, color=line.get_color())
    ax.set_xlabel("training ratings of the user")
    ax.set_ylabel("RMSE on held-out ratings")
    ax.set_title("Rating error by user activity")
    ax.legend(title="split (point labels: users)")
    fig.tight_layout()
    return fig
