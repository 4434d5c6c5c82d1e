"""The figures of 04_evaluation on small hand-made results: the bars and lines carry the
numbers they were given, the labels name the strategies, the activity points their users."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from recsys_utils.plots import missing_labels
from recsys_utils.ranking.evaluation import RankingResult
from recsys_utils.ranking.figures import (
    STRATEGY_LABELS,
    plot_error_by_activity,
    plot_ranking_comparison,
)

K = 7
STRATEGIES = ["model", "popularity", "random"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _result(offset: float) -> RankingResult:
    metrics = {s: {"ndcg": 0.1 * (j + 1) + offset, "ndcg_se": 0.01 * (j + 1),
                   "coverage": 0.02 * (j + 1) + offset} for j, s in enumerate(STRATEGIES)}
    return RankingResult(metrics=metrics, by_platform=None, k=K, threshold=4.0)


def _bars(ax) -> list[float]:
    return [round(p.get_height(), 6) for p in ax.patches]


def test_ranking_comparison_draws_each_strategy_per_split():
    results = {"time": _result(0.0), "random": _result(0.3)}
    fig = plot_ranking_comparison(results)
    assert missing_labels(fig) == []
    ax_ndcg, ax_cov = fig.axes
    # bars are drawn strategy by strategy, one bar per split each
    expected_ndcg = [round(results[s].metrics[st]["ndcg"], 6) for st in STRATEGIES for s in results]
    expected_cov = [round(results[s].metrics[st]["coverage"], 6)
                    for st in STRATEGIES for s in results]
    assert _bars(ax_ndcg) == expected_ndcg
    assert _bars(ax_cov) == expected_cov
    assert [t.get_text() for t in ax_ndcg.get_xticklabels()] == ["time", "random"]
    assert f"NDCG@{K}" in ax_ndcg.get_title() and ax_ndcg.get_ylabel() == f"NDCG@{K}"
    assert f"top-{K}" in ax_cov.get_title()
    assert ax_cov.get_yscale() == "log" and ax_ndcg.get_yscale() == "linear"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [STRATEGY_LABELS[s] for s in STRATEGIES]  # "model" reads "recommender"


def test_ranking_comparison_error_bars_are_one_standard_error():
    fig = plot_ranking_comparison({"time": _result(0.0)})
    ax = fig.axes[0]
    segments = [c for c in ax.collections if len(c.get_segments())]
    spans = sorted(round(float(seg[1][1] - seg[0][1]), 6)
                   for c in segments for seg in c.get_segments())
    assert spans == [round(2 * 0.01 * (j + 1), 6) for j in range(len(STRATEGIES))]


def test_an_unknown_strategy_keeps_its_own_name_in_the_legend():
    result = _result(0.0)
    result.metrics["itemknn"] = dict(result.metrics["model"])
    fig = plot_ranking_comparison({"time": result})
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "itemknn"


def _activity(rmse: list[float], n_users: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"activity": ["0-20", "20-50", "50-100"], "n_users": n_users,
                         "n_ratings": [10 * n for n in n_users], "rmse": rmse,
                         "mae": [0.7] * 3})


def test_error_by_activity_draws_one_line_per_split_with_the_users_of_each_point():
    frames = {"time": _activity([1.1, 0.9, 0.8], [40, 12, 3]),
              "random": _activity([1.0, np.nan, 0.7], [35, 0, 5])}
    fig = plot_error_by_activity(frames)
    assert missing_labels(fig) == []
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["time", "random"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.1, 0.9, 0.8])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0-20", "20-50", "50-100"]
    labels = [(t.get_text(), tuple(np.round(t.xy, 6))) for t in ax.texts]
    # every drawn point names its users; the empty bucket (NaN RMSE) has no point, no label
    assert labels == [("40", (0, 1.1)), ("12", (1, 0.9)), ("3", (2, 0.8)),
                      ("35", (0, 1.0)), ("5", (2, 0.7))]
    # a label has its line's colour, so two splits' labels are told apart
    colours = {t.get_text(): t.get_color() for t in ax.texts}
    assert colours["40"] == ax.get_lines()[0].get_color()
    assert colours["35"] == ax.get_lines()[1].get_color() != colours["40"]
    assert "users" in ax.get_legend().get_title().get_text()
