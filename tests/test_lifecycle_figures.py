"""Monitoring figures: titled and labelled, legends beside the data, PSI lines that say what they mean."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from monitoring_fixtures import rating_history  # noqa: E402

from recsys_utils.lifecycle import figures  # noqa: E402
from recsys_utils.lifecycle import monitoring as mon  # noqa: E402
from recsys_utils.plots import missing_labels  # noqa: E402


@pytest.fixture(scope="module")
def result() -> mon.MonitoringResult:
    return mon.monitor_timeline(rating_history("2002-01-01", "2003-12-31", seed=5))


def test_every_figure_is_titled_and_labelled(result):
    assert set(result.figures) == {"mon_drift", "mon_activity_mix", "mon_decay", "mon_policy"}
    for name, fig in result.figures.items():
        assert missing_labels(fig) == [], name


def test_legends_do_not_cover_the_data(result):
    for name, fig in result.figures.items():
        fig.draw_without_rendering()  # lays the figure out, as when it is saved
        for ax in fig.get_axes():
            legend = ax.get_legend()
            assert legend is not None, f"{name}: {ax.get_title()} has no legend"
            box, area = legend.get_window_extent(), ax.get_window_extent()
            assert box.x0 >= area.x1, f"{name}: the legend of {ax.get_title()!r} overlaps its axes"


def test_psi_reading_lines_are_labelled(result):
    top = result.figures["mon_drift"].get_axes()[0]
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    for level, label in figures.PSI_LEVELS.items():
        assert label in labels
        line = next(ln for ln in top.get_lines() if ln.get_label() == label)
        assert isinstance(line, Line2D) and set(line.get_ydata()) == {level}
    assert any("moderate" in label for label in labels) and any("major" in label for label in labels)


def test_decay_figure_names_the_start_period(result):
    top = result.figures["mon_decay"].get_axes()[0]
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert f"frozen at {result.start_period}" in labels
    # One point per replayed period.
    assert len(top.get_lines()[0].get_xdata()) == len(result.decay)
