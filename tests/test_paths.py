"""Project paths: every folder lives under the root, ``RECSYS_ROOT`` moves them all, ``ensure``
creates the output folders (test_architecture.py checks no other module spells a folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_utils.paths import PROJECT_ROOT, ProjectPaths, project_paths, relative_posix

#: Every folder property of ProjectPaths and where it must be, relative to the root.
LAYOUT = {
    "data": "data", "raw": "data/raw", "interim": "data/interim",
    "processed": "data/processed", "history": "data/history", "outputs": "outputs",
    "figures": "outputs/figures", "models": "outputs/models", "reports": "outputs/reports",
    "executed_notebooks": "outputs/notebooks", "notebooks": "notebooks",
    "book_html": "_build/html",
}
#: The folders ``ensure`` promises to create (the outputs of the pipeline).
ENSURED = ("raw", "interim", "processed", "figures", "models", "reports", "executed_notebooks")


def _folder_properties() -> set[str]:
    return {name for name, value in vars(ProjectPaths).items() if isinstance(value, property)}


def test_the_layout_table_names_every_folder_property() -> None:
    # a new folder property must be added to LAYOUT (and so be checked below)
    assert _folder_properties() == set(LAYOUT)


def test_every_folder_is_where_the_layout_says_under_the_root(tmp_path: Path) -> None:
    paths = project_paths(tmp_path)
    for name, rel in LAYOUT.items():
        folder = getattr(paths, name)
        assert folder == tmp_path.resolve() / rel, name
        assert folder.is_relative_to(paths.root), name  # nothing outside the root


def test_the_default_root_is_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_ROOT", raising=False)
    assert (PROJECT_ROOT / "pyproject.toml").is_file()
    assert project_paths().root == PROJECT_ROOT.resolve()


def test_recsys_root_moves_every_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path / "elsewhere"))
    paths = project_paths()
    assert paths.root == (tmp_path / "elsewhere").resolve()
    assert paths.processed == (tmp_path / "elsewhere" / "data" / "processed").resolve()
    # an explicit root wins over the environment
    assert project_paths(tmp_path / "explicit").root == (tmp_path / "explicit").resolve()


def test_a_relative_root_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert project_paths("proj").root == tmp_path.resolve() / "proj"
    monkeypatch.setenv("RECSYS_ROOT", "envproj")
    assert project_paths().root == tmp_path.resolve() / "envproj"


def test_ensure_creates_the_output_folders_and_nothing_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "project"
    paths = project_paths(root)
    assert not root.exists()
    assert paths.ensure() is paths
    for name in ENSURED:
        assert getattr(paths, name).is_dir(), name
    assert [p.name for p in tmp_path.iterdir()] == ["project"]
    created = {p.relative_to(root).as_posix() for p in root.rglob("*")}
    assert created == {"data", "outputs"} | {LAYOUT[name] for name in ENSURED}
    assert not paths.history.exists()  # written by retraining, not created empty


def test_ensure_keeps_what_is_there(tmp_path: Path) -> None:
    paths = project_paths(tmp_path).ensure()
    kept = paths.reports / "evaluation.json"
    kept.write_text("{}", encoding="utf-8")
    paths.ensure()
    assert kept.read_text(encoding="utf-8") == "{}"


def test_relative_posix_inside_and_outside_the_root(tmp_path: Path) -> None:
    paths = project_paths(tmp_path / "p")
    assert relative_posix(paths.processed / "model.parquet", paths.root) == \
        "data/processed/model.parquet"
    # a path spelled with ".." is resolved before it is made relative
    assert relative_posix(paths.raw / ".." / "interim", paths.root) == "data/interim"
    outside = tmp_path / "other" / "f.csv"
    assert relative_posix(outside, paths.root) == str(outside)
