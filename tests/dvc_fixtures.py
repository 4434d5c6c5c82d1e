"""Temporary git repositories laid out like the project, for the real-DVC tests.

Each project copies the repository's own ``.gitignore``, ``.dvcignore`` and ``.dvc/``
configuration, so the tests exercise the files that are committed, not stand-ins.
The remote is a folder in the test's temporary directory (no network).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from store_fixtures import build_store, make_ratings, make_titles, to_raw_csv

from recsys_utils.data.store import load_store
from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle import registry
from recsys_utils.paths import PROJECT_ROOT, ProjectPaths, project_paths

needs_dvc = pytest.mark.skipif(importlib.util.find_spec("dvc") is None,
                               reason="dvc is not installed (the `dvc` extra)")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def init_project(root: Path) -> ProjectPaths:
    """An empty git repository with the project's committed ignore files and DVC config."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "ct@example.org")
    git(root, "config", "user.name", "CT test")
    for name in (".gitignore", ".dvcignore", ".dvc/config", ".dvc/.gitignore"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / name, root / name)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project skeleton")
    return project_paths(root)


def commit_all(paths: ProjectPaths, message: str) -> None:
    git(paths.root, "add", "-A")
    git(paths.root, "commit", "-q", "--allow-empty", "-m", message)


def clone(source: ProjectPaths, target: Path) -> ProjectPaths:
    subprocess.run(["git", "clone", "-q", str(source.root), str(target)], check=True)
    git(target, "config", "user.email", "ct@example.org")
    git(target, "config", "user.name", "CT test")
    return project_paths(target)


def store_with_new_quarter(paths: ProjectPaths, n_users: int = 30, n_items: int = 8,
                           seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Build the store without its newest 90 days; those go to ``data/raw/new.csv``."""
    titles = make_titles(n_items)
    ratings = make_ratings(n_users=n_users, n_items=n_items, seed=seed, days=360)
    ratings = ratings.sort_values("timestamp", ignore_index=True)
    cut = ratings["timestamp"].max() - pd.Timedelta(days=90)
    old, new = ratings[ratings["timestamp"] < cut], ratings[ratings["timestamp"] >= cut]
    build_store(paths, old, titles)
    csv = paths.raw / "new.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    to_raw_csv(new, csv)
    return titles, old, csv


def register(paths: ProjectPaths, model: object, params: dict, notes: str = "fixture") -> str:
    _, model_df = load_store(paths)
    return registry.register_model(model, params=params, metrics={"rmse": 1.0},
                                   data_fingerprint=data_fingerprint(model_df), paths=paths,
                                   notes=notes)


def remote_files(remote: Path) -> set[str]:
    return {p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()}
