"""The example raw folder (``recsys-clean --example``) and the dry run (``recsys-clean --check``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recsys_utils.data.catalogs import discover_catalogs, platform_prefix
from recsys_utils.data.cleaning import build_processed, main
from recsys_utils.data.example import (
    BAD_RATING_ROWS,
    BAD_TITLE_ROWS,
    example_fragment,
    write_example,
    write_example_fragment,
)
from recsys_utils.errors import DataError
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("example") / "raw"
    write_example(folder)
    return folder


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time (ns)."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def test_example_runs_through_cleaning_with_the_expected_accounting(
        example: Path, tmp_path: Path) -> None:
    project = project_paths(tmp_path / "project")
    result = build_processed(example, paths=project, verbose=False)
    assert result.source == "streaming"
    assert (project.processed / "model.parquet").is_file()
    # every deliberately bad row is reported in its file with its reason, nothing else is
    rejected = pd.concat([result.rejected_titles, result.rejected_ratings])
    got = sorted(zip(rejected["source_file"], rejected["reason"], strict=True))
    expected = sorted((bad.file, bad.reason) for bad in (*BAD_TITLE_ROWS, *BAD_RATING_ROWS))
    assert got == expected
    totals = result.accounting.totals("ratings")
    assert totals.read == totals.kept + totals.rejected + totals.duplicates
    assert totals.kept == len(result.ratings) > 0
    # ids follow the stable prefix rule of each catalog's platform
    for platform in discover_catalogs(example):
        ids = result.titles.loc[result.titles["platform"] == platform, "item_id"]
        assert len(ids) and ids.str.startswith(platform_prefix(platform)).all()
    # the example is enough for the ranker: some titles reach the EASE minimum
    assert (result.analytics["n_ratings"] >= DEFAULT_RANKING_PARAMS["min_item_ratings"]).any()


def test_check_prints_the_accounting_and_writes_nothing(
        example: Path, tmp_path: Path, tiny_raw_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a project that already holds processed tables: --check must leave them alone
    project = project_paths(tmp_path / "project")
    build_processed(tiny_raw_dir, paths=project, verbose=False)
    monkeypatch.setenv("RECSYS_ROOT", str(project.root))
    before, raw_before = _tree(project.root), _tree(example)
    assert main(["--check", str(example)]) == 0
    out = capsys.readouterr().out
    assert _tree(project.root) == before and _tree(example) == raw_before
    assert "nothing written" in out and "source: streaming" in out
    assert "ratings total:" in out and "read =" in out
    for bad in (*BAD_TITLE_ROWS, *BAD_RATING_ROWS):
        assert bad.reason in out


def test_check_of_a_fresh_project_creates_no_folder(example: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    monkeypatch.setenv("RECSYS_ROOT", str(root))
    assert main(["--check", str(example)]) == 0
    assert list(root.iterdir()) == []


def test_check_of_a_missing_folder_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path))
    assert main(["--check", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and "Traceback" not in err


def test_example_never_overwrites_other_files(tmp_path: Path, example: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "netflix_titles.csv").write_text("show_id\n", encoding="utf-8")
    with pytest.raises(DataError, match="not an empty folder"):
        write_example(folder)
    assert main(["--example", str(folder)]) == 2
    assert [p.name for p in folder.iterdir()] == ["netflix_titles.csv"]
    again = write_example(example)  # an earlier example may be rewritten
    assert {p.name for p in again.files} >= {"README.md", "part1.csv"}


def test_fragment_shows_the_check_of_the_example(example: Path, tmp_path: Path) -> None:
    rule = (DEFAULT_RANKING_PARAMS["min_item_ratings"], DEFAULT_RANKING_PARAMS["max_ease_items"])
    text = example_fragment(example, *rule)
    result = build_processed(example, write=False, verbose=False)
    for account in result.accounting:
        assert (f"| {account.kind} | {account.source_file} | {account.read:,} | {account.kept:,} "
                f"| {account.rejected:,} | {account.duplicates:,} |") in text
    for bad in (*BAD_TITLE_ROWS, *BAD_RATING_ROWS):
        assert bad.reason in text
    assert f"{DEFAULT_RANKING_PARAMS['max_ease_items']:,}" in text
    written = write_example_fragment(*rule, ProjectPaths(tmp_path))
    assert written.parent == tmp_path / "outputs" / "reports" and written.read_text() == text


def test_the_chapter_names_every_input_column() -> None:
    """book/your_data.md documents the input contract the code enforces: a column the
    readers require or accept and the chapter does not name is a drift."""
    from recsys_utils.data.catalogs import GENRE_ALIASES, OPTIONAL_COLUMNS, REQUIRED_COLUMNS
    from recsys_utils.data.ratings import EXPECTED_COLUMNS
    from recsys_utils.paths import PROJECT_ROOT

    chapter = (PROJECT_ROOT / "book" / "your_data.md").read_text(encoding="utf-8")
    for column in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *GENRE_ALIASES):
        assert f"`{column}`" in chapter, column
    assert f"`{','.join(EXPECTED_COLUMNS)}`" in chapter
    for bad in BAD_RATING_ROWS:
        assert f"`{bad.reason}`" in chapter, bad.reason
