"""The blend-weights figure: readable labels, sorted bars, the caption on signs."""

from __future__ import annotations

import pandas as pd

from recsys_utils.plots import missing_labels
from recsys_utils.rating.figures import plot_blend_weights

WEIGHTS = pd.Series({"baseline": -0.2, "content": 0.9, "knn_item": -0.6, "svd": 0.3,
                     "log_n_user": -0.1, "knn_item*log_n_item": 1.3,
                     "content*log_n_item": -0.8, "knn_item_term*log_sum_sim": 0.05})


def test_blend_weights_figure_is_readable() -> None:
    fig = plot_blend_weights(WEIGHTS)
    assert missing_labels(fig) == []
    predictions, adjustments = fig.axes  # the components apart from the support terms
    labels = [t.get_text() for t in predictions.get_yticklabels()]
    assert labels == ["item neighbours", "baseline", "SVD", "content"]  # sorted by weight
    more = [t.get_text() for t in adjustments.get_yticklabels()]
    assert len(more) == 4 and not any("*" in t or "_" in t for t in labels + more)
    assert "item neighbours × log(title's ratings)" in more
    assert predictions.get_xlim() == adjustments.get_xlim()  # one scale for both panels
    caption = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    assert "opposite signs" in caption and "correlated" in caption


def test_blend_weights_without_support_features_is_one_panel() -> None:
    fig = plot_blend_weights(WEIGHTS[["baseline", "svd"]])
    assert len(fig.axes) == 1 and missing_labels(fig) == []
