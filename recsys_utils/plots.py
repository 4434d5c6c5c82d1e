"""Figure helpers shared by every notebook: one house style, one place figures are saved.

Notebooks build a figure, call :func:`save_figure` (which writes
``outputs/figures/<name>.png``) and let Jupyter show it inline.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import matplotlib


def _backend_chosen() -> bool:
    """Whether someone (Jupyter's kernel, MPLBACKEND, matplotlibrc, a prior ``use``) set a backend."""
    if os.environ.get("MPLBACKEND"):
        return True
    get = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    return get is None or get() is not None


# Only pick the headless backend when nobody chose one: inside Jupyter the inline
# backend is already selected and must win, so notebooks still show figures inline.
if not _backend_chosen():
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from recsys_utils.atomic import atomic_write  # noqa: E402
from recsys_utils.paths import ProjectPaths, project_paths  # noqa: E402

#: Resolution of every saved PNG (the contract: dpi 120).
DPI = 120

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def set_style(context: str = "notebook") -> None:
    """Apply the house seaborn theme (white grid, colour-blind palette, readable sizes)."""
    sns.set_theme(context=context, style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.figsize": (8, 4.5), "axes.titleweight": "bold"})


def missing_labels(fig: Figure) -> list[str]:
    """What a figure lacks to meet the house rule (a title; x and y labels on every plot).

    Returns human-readable problems, empty when the figure is fine. Colour bars and hidden
    axes are ignored; a figure title (``suptitle``) or any axes title counts as a title.
    """
    problems: list[str] = []
    axes = [ax for ax in fig.get_axes()
            if ax.get_visible() and ax.axison and getattr(ax, "_colorbar", None) is None]
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    if not suptitle and not any(ax.get_title() for ax in axes):
        problems.append("no title")
    for i, ax in enumerate(axes):
        name = f"axes {i} ({ax.get_title() or 'untitled'})"
        if not ax.get_xlabel():
            problems.append(f"{name}: no x label")
        if not ax.get_ylabel():
            problems.append(f"{name}: no y label")
    return problems


def save_figure(fig: Figure, name: str, paths: ProjectPaths | None = None) -> Path:
    """Save ``fig`` as ``outputs/figures/<name>.png`` (dpi 120, tight bbox) and return the path.

    ``name`` is a file stem (letters, digits, ``_ . -``; a trailing ``.png`` is accepted).
    The figure is not closed, so a notebook still displays it inline afterwards. A figure
    without a title or axis labels is still saved, with a ``UserWarning`` saying what is missing.
    """
    if name.endswith(".png"):
        name = name[: -len(".png")]
    if not _NAME_RE.match(name):
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    problems = missing_labels(fig)
    if problems:
        warnings.warn(f"figure {name!r}: " + "; ".join(problems), UserWarning, stacklevel=2)
    folder = (paths or project_paths()).figures
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    # atomic: a book built after a killed run shows the old figure or the new, never half
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI, bbox_inches="tight",
                                                      format="png"))
