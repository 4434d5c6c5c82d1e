"""Where everything lives: the one module that knows the project's folders.

Every notebook, command and test asks this module for a path instead of
spelling one out, so moving a folder is a one-line change here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The repository root (the folder that holds ``pyproject.toml``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _root_from_env() -> Path:
    """The project root, overridable with ``RECSYS_ROOT`` (tests use a tmp dir)."""
    return Path(os.environ.get("RECSYS_ROOT", PROJECT_ROOT)).resolve()


@dataclass(frozen=True)
class ProjectPaths:
    """The folders of one project tree (cookiecutter-data-science v2 layout)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def raw(self) -> Path:
        """Raw inputs: ``<platform>_titles.csv`` and ``ratings/*.csv``."""
        return self.data / "raw"

    @property
    def interim(self) -> Path:
        """Rejected rows and other intermediate files."""
        return self.data / "interim"

    @property
    def processed(self) -> Path:
        """Clean parquet tables written by the cleaning step."""
        return self.data / "processed"

    @property
    def history(self) -> Path:
        """The durable ratings history: every batch ``recsys-retrain`` accepted and every
        hold-back, as append-only CSV files the cleaning step replays over the raw ratings."""
        return self.data / "history"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def figures(self) -> Path:
        return self.outputs / "figures"

    @property
    def models(self) -> Path:
        """The model registry: one folder per version plus a ``champion`` pointer."""
        return self.outputs / "models"

    @property
    def reports(self) -> Path:
        """Benchmark figures, decision records and metric summaries (JSON)."""
        return self.outputs / "reports"

    @property
    def executed_notebooks(self) -> Path:
        """Executed copies of the notebooks, compiled into the book."""
        return self.outputs / "notebooks"

    @property
    def notebooks(self) -> Path:
        """The committed, output-free source notebooks."""
        return self.root / "notebooks"

    @property
    def book_html(self) -> Path:
        return self.root / "_build" / "html"

    def ensure(self) -> ProjectPaths:
        """Create every output folder that does not exist yet; return self."""
        for folder in (self.raw, self.interim, self.processed, self.figures,
                       self.models, self.reports, self.executed_notebooks):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def project_paths(root: str | Path | None = None) -> ProjectPaths:
    """The paths of the project at ``root`` (default: this repository or ``$RECSYS_ROOT``)."""
    return ProjectPaths(Path(root).resolve() if root is not None else _root_from_env())


def relative_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (both resolved); ``str(path)`` when it
    is not below ``root``: for messages and records that name project files."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
