"""The figure helpers: the house style, the title/label rule, where and how figures are saved,
and the backend choice (headless only when nobody chose one)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from recsys_utils.paths import project_paths
from recsys_utils.plots import missing_labels, save_figure, set_style


@pytest.fixture(autouse=True)


def _close_figures():
    yield
    plt.close("all")


def test_set_style_applies_the_house_theme():
    plt.rcParams.update({"figure.figsize": (3.0, 3.0), "axes.titleweight": "normal"})
    set_style()
    assert tuple(plt.rcParams["figure.figsize"]) == (8, 4.5)
    assert plt.rcParams["axes.titleweight"] == "bold"
    assert plt.rcParams["axes.grid"]  # seaborn's whitegrid


def test_missing_labels_reports_problems():
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    assert missing_labels(fig) == ["no title", "axes 0 (untitled): no x label",
                                   "axes 0 (untitled): no y label"]
    ax.set(title="t", xlabel="x", ylabel="y")
    assert missing_labels(fig) == []


# ------------------------------------------------------------------ save_figure


def test_save_figure_writes_png(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ax.set(title="A line", xlabel="x", ylabel="y")
    paths = project_paths(tmp_path)
    path = save_figure(fig, "eda_test", paths)
    assert path == tmp_path / "outputs" / "figures" / "eda_test.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert save_figure(fig, "eda_test.png", paths) == path  # suffix accepted, same file


def test_save_figure_uses_dpi_120(tmp_path):
    from PIL import Image

    fig = plt.figure(figsize=(2, 1))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(title="", xlabel="x", ylabel="y")
    fig.suptitle("t")
    with Image.open(save_figure(fig, "dpi", project_paths(tmp_path))) as img:
        assert img.info["dpi"][0] == pytest.approx(120, abs=0.5)


def test_save_figure_defaults_to_recsys_root(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path))
    fig, ax = plt.subplots()
    ax.set(title="t", xlabel="x", ylabel="y")
    assert save_figure(fig, "env").parent == tmp_path / "outputs" / "figures"


def test_save_figure_warns_on_unlabelled_figure(tmp_path):
    fig, _ = plt.subplots()
    with pytest.warns(UserWarning, match="no title"):
        path = save_figure(fig, "bare", project_paths(tmp_path))
    assert path.exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "", " lead"])


def test_save_figure_rejects_paths_as_names(tmp_path, name):
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="file stem"):
        save_figure(fig, name, project_paths(tmp_path))


@pytest.mark.parametrize(("env_backend", "expected"), [(None, "agg"), ("svg", "svg")])


def test_plots_only_picks_agg_when_no_backend_is_set(env_backend, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if env_backend:
        env["MPLBACKEND"] = env_backend  # what Jupyter's kernel does for the inline backend
    code = "import recsys_utils.plots, matplotlib; print(matplotlib.get_backend().lower())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == expected


def test_missing_labels_accepts_a_suptitle_and_ignores_colorbars_and_hidden_axes():
    fig, (ax, hidden) = plt.subplots(1, 2)
    image = ax.imshow([[0, 1], [1, 0]])
    fig.colorbar(image, ax=ax)  # a colour bar has no x label: not a problem
    hidden.set_visible(False)
    ax.set(xlabel="x", ylabel="y")
    assert missing_labels(fig) == ["no title"]
    fig.suptitle("A heat map")
    assert missing_labels(fig) == []
    hidden.set_visible(True)
    assert missing_labels(fig) == ["axes 1 (untitled): no x label",
                                   "axes 1 (untitled): no y label"]


def test_save_figure_does_not_close_the_figure(tmp_path):
    fig, ax = plt.subplots()
    ax.set(title="t", xlabel="x", ylabel="y")
    save_figure(fig, "kept_open", project_paths(tmp_path))
    assert fig.number in plt.get_fignums()  # Jupyter still shows it inline


def test_save_figure_is_atomic_a_failed_save_keeps_the_old_png(tmp_path, monkeypatch):
    """A save that fails half-way (a full disk, a kill) leaves the previous figure whole and
    no temporary file behind; the write goes through the fault hook like every other."""
    fig, ax = plt.subplots()
    ax.set(title="t", xlabel="x", ylabel="y")
    paths = project_paths(tmp_path)
    old = save_figure(fig, "fig", paths).read_bytes()
    ax.set_title("changed")

    def half_then_fail(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(fig), "savefig", half_then_fail)
    with pytest.raises(OSError):
        save_figure(fig, "fig", paths)
    assert (paths.figures / "fig.png").read_bytes() == old
    assert [p.name for p in paths.figures.iterdir()] == ["fig.png"]
    plt.close(fig)
