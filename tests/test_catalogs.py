"""Catalog reading: each variant seen in public copies, each cleaning transformation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_KEPT_IDS, TINY_TITLE_REJECTS

from recsys_utils.data.catalogs import (
    discover_catalogs,
    fill_missing_rating,
    fix_misplaced_durations,
    normalize_type,
    parse_date_added,
    platform_prefix,
    platform_prefixes,
    read_catalog,
    read_catalogs,
    split_duration,
)
from recsys_utils.errors import DataError

HEADER = "show_id,type,title,director,cast,country,date_added,release_year,rating,duration"


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# --- discovery and ids -------------------------------------------------------------------

def test_discover_takes_platform_from_file_name(tiny_raw_dir: Path) -> None:
    (tiny_raw_dir / "apple_tv_titles.csv").write_text(HEADER + "\n")
    found = discover_catalogs(tiny_raw_dir)
    assert list(found) == ["amazon_prime", "apple_tv", "netflix"]  # README.md ignored
    assert found["amazon_prime"].name == "amazon_prime_titles.csv"
    assert discover_catalogs(tiny_raw_dir / "missing") == {}


def test_prefix_rule_depends_on_the_platform_name_alone() -> None:
    assert platform_prefixes(["netflix", "hulu", "disney_plus", "amazon_prime"]) == {
        "amazon_prime": "a", "disney_plus": "d", "hulu": "h", "netflix": "n"}
    # A new platform never takes a prefix from, or gives one to, another platform.
    assert platform_prefixes(["apple_tv", "amazon_prime", "netflix"]) == {
        "amazon_prime": "a", "apple_tv": "apple_tv-", "netflix": "n"}
    for platforms in (["a", "ab", "abc"], ["abc", "ab"], ["ab"]):
        assert platform_prefixes(platforms)["ab"] == "ab-"
    # MovieLens' own ids start with "ml": a platform named ml stays apart.
    assert platform_prefix("ml") == "ml-"
    assert platform_prefix("Hulu") == "h"


def test_platforms_whose_names_give_one_prefix_are_an_error() -> None:
    with pytest.raises(DataError, match="same id prefix 'apple_tv-'"):
        platform_prefixes(["apple-tv", "apple_tv"])


def test_adding_a_platform_keeps_every_existing_id(tiny_raw_dir: Path) -> None:
    before, _, _ = read_catalogs(tiny_raw_dir)
    # A new platform whose name sorts first and shares the others' initials.
    (tiny_raw_dir / "a_new_titles.csv").write_text(
        HEADER + "\ns1,Movie,Brand New,,,,2021-01-01,2020,PG,90 min\n"
        "s2,TV Show,Also New,,,,2021-01-01,2019,TV-PG,1 Season\n")
    after, _, _ = read_catalogs(tiny_raw_dir)
    old = after[after["platform"] != "a_new"]
    assert old["id"].tolist() == before["id"].tolist()
    assert sorted(after.loc[after["platform"] == "a_new", "id"]) == ["a_new-s1", "a_new-s2"]
    assert after["id"].is_unique
    # Removing a platform does not rename the others either.
    (tiny_raw_dir / "amazon_prime_titles.csv").unlink()
    fewer, _, _ = read_catalogs(tiny_raw_dir)
    netflix = before[before["platform"] == "netflix"]
    assert fewer.loc[fewer["platform"] == "netflix", "id"].tolist() == netflix["id"].tolist()


def test_ids_are_prefix_plus_show_id(tiny_raw_dir: Path) -> None:
    titles, _, _ = read_catalogs(tiny_raw_dir)
    assert titles["id"].tolist() == TINY_KEPT_IDS
    assert titles["id"].is_unique
    assert (titles["item_id"] == titles["id"]).all()
    assert set(titles["platform"]) == {"amazon_prime", "netflix"}


# --- transformations ---------------------------------------------------------------------

def test_parse_date_added_all_formats() -> None:
    dates, bad = parse_date_added(pd.Series(
        ["September 25, 2021", "2021-09-25", "25-Sep-21", " August 4, 2017", "", None,
         "Sep 25, 2021", "25-Sep-2021", "25/09/2021", "February 30, 2021"]))
    assert [d.strftime("%Y-%m-%d") if pd.notna(d) else None for d in dates] == [
        "2021-09-25", "2021-09-25", "2021-09-25", "2017-08-04", None, None, "2021-09-25",
        "2021-09-25", None, None]
    assert bad.tolist() == [False] * 8 + [True, True]
    assert str(dates.dtype) == "datetime64[s]"


def test_split_duration() -> None:
    number, kind, bad = split_duration(pd.Series(["90 min", "1 Season", "2 Seasons", "", None,
                                                 "soon"]))
    assert number.tolist()[:3] == [90, 1, 2] and number[3:].isna().all()
    assert kind.tolist()[:3] == ["min", "season", "season"] and kind[3:].isna().all()
    assert bad.tolist() == [False] * 5 + [True]
    assert str(number.dtype) == "Int32"


def test_fix_misplaced_durations_moves_them_back() -> None:
    df = pd.DataFrame({"rating": ["74 min", "2 Seasons", "PG", "66 min"],
                       "duration": [None, "", "90 min", "66 min"]})
    out = fix_misplaced_durations(df)
    assert out["duration"].tolist() == ["74 min", "2 Seasons", "90 min", "66 min"]
    assert out["rating"].tolist()[2] == "PG" and out["rating"].isna().tolist() == [
        True, True, False, True]


def test_fill_missing_rating_is_g() -> None:
    out = fill_missing_rating(pd.Series(["PG", None, "", "  ", "13"]))
    assert out.tolist() == ["PG", "G", "G", "G", "13"]


def test_normalize_type() -> None:
    out = normalize_type(pd.Series(["Movie", "tv  show", "TV Show", "Documentary", None]))
    assert out.tolist()[:3] == ["Movie", "TV Show", "TV Show"] and out[3:].isna().all()


# --- variants ----------------------------------------------------------------------------

def test_listed_in_and_genre_both_give_genres(tiny_raw_dir: Path) -> None:
    titles, _, _ = read_catalogs(tiny_raw_dir)
    by_id = titles.set_index("id")
    assert by_id.loc["ns1", "genres"] == "Action & Adventure, Sci-Fi & Fantasy"  # listed_in
    assert by_id.loc["as1", "genres"] == "Action, Science Fiction"  # genre


def test_no_description_column_gives_nulls_and_extra_columns_are_ignored(
        tiny_raw_dir: Path) -> None:
    got = read_catalog(tiny_raw_dir / "amazon_prime_titles.csv", "amazon_prime", "a")
    assert got.titles["description"].isna().all()
    assert "platform" in got.titles and (got.titles["platform"] == "amazon_prime").all()
    assert got.titles["show_id"].tolist() == ["s1", "s2", "s3", "s6"]  # trailing comma kept


def test_cleaned_values_of_the_netflix_variants(tiny_raw_dir: Path) -> None:
    titles, _, _ = read_catalogs(tiny_raw_dir)
    t = titles.set_index("id")
    assert t.loc["ns2", "date_added"] == pd.Timestamp("2021-09-24")  # " September 24, 2021"
    assert t.loc["ns3", "date_added"] == pd.Timestamp("2021-09-25")  # 25-Sep-21
    assert (t.loc["ns4", "duration_int"], t.loc["ns4", "duration_type"]) == (74, "min")
    assert t.loc["ns4", "rating"] == "G"  # the misplaced duration was no rating
    assert t.loc["ns8", "rating"] == "G" and pd.isna(t.loc["ns8", "date_added"])
    assert t.loc["as1", "rating"] == "G"  # amazon's empty rating
    assert (t.loc["ns2", "duration_int"], t.loc["ns2", "duration_type"]) == (2, "season")
    assert t.loc["ns5", "description"].startswith("In JANN, a singer\nplays")  # multi-line
    assert t.loc["ns9", "title"] == "Léon: The Professional"  # display title kept
    assert t.loc["ns9", "title_norm"] == "leon the professional"
    assert t.loc["ns2", "title_norm"] == "blood and water"


def test_dtypes_follow_the_dictionary(tiny_raw_dir: Path) -> None:
    titles, _, _ = read_catalogs(tiny_raw_dir)
    assert str(titles["release_year"].dtype) == "Int16"
    assert str(titles["duration_int"].dtype) == "Int32"
    assert str(titles["date_added"].dtype) == "datetime64[s]"
    assert titles.columns.tolist()[:3] == ["id", "item_id", "platform"]


def test_bad_rows_are_rejected_with_line_and_reason(tiny_raw_dir: Path) -> None:
    titles, rejected, accounts = read_catalogs(tiny_raw_dir)
    got = set(zip(rejected["source_file"], rejected["line"], rejected["reason"], strict=True))
    assert got == TINY_TITLE_REJECTS
    broken = rejected[rejected["reason"] == "bad quoting"]["raw"].iloc[0]
    assert broken.startswith('s6,Movie,"Broken Quote')
    for acc in accounts:
        assert acc.adds_up
    netflix = next(a for a in accounts if a.source_file == "netflix_titles.csv")
    assert (netflix.read, netflix.kept, netflix.rejected, netflix.duplicates) == (11, 7, 3, 1)
    # the row after the broken one was still read
    assert "ns8" in set(titles["id"])


def test_dates_in_any_format_per_file(tmp_path: Path) -> None:
    rows = [HEADER, "s1,Movie,A,,,,25-Sep-21,2020,PG,90 min", 's2,Movie,B,,,,"May 1, 2019",2019,,1 min',
            "s3,Movie,C,,,,,2018,PG,2 min"]
    got = read_catalog(_write(tmp_path, "x_titles.csv", "\n".join(rows) + "\n"), "x", "x")
    assert got.titles["date_added"].dt.strftime("%Y-%m-%d").tolist()[:2] == [
        "2021-09-25", "2019-05-01"]
    assert got.titles["genres"].isna().all()  # no genres column at all


def test_row_level_rejections(tmp_path: Path) -> None:
    rows = [HEADER, ",Movie,No Id,,,,,2020,PG,90 min", "s2,Movie,,,,,,2020,PG,90 min",
            "s3,Movie,C,,,,,2020,PG,soon", "s4,Movie,D,,,,,1066,PG,90 min",
            "s5,,,,,,,abc,PG,90 min", "s6,TV Show,F,,,,,2020,TV-14,"]
    got = read_catalog(_write(tmp_path, "r_titles.csv", "\n".join(rows) + "\n"), "r", "r")
    assert got.rejected[["line", "reason"]].values.tolist() == [
        [2, "missing show_id"], [3, "missing title"], [4, "unparseable duration"],
        [5, "release_year out of range"], [6, "missing title"]]  # the most basic problem
    assert got.titles["id"].tolist() == ["rs6"]
    assert pd.isna(got.titles["duration_type"].iloc[0])  # an empty duration stays missing
    assert got.account.adds_up and got.account.rejected == 5


def test_wrong_header_rejects_every_row(tmp_path: Path) -> None:
    path = _write(tmp_path, "x_titles.csv", "id,kind,name\n1,Movie,A\n2,Movie,B\n")
    got = read_catalog(path, "x", "x")
    assert got.titles.empty and len(got.rejected) == 2
    assert set(got.rejected["reason"]) == {"wrong header"}
    assert "show_id" in got.account.note and got.account.adds_up


def test_a_catalog_separated_by_semicolons_is_named_so(tmp_path: Path) -> None:
    # "Adventure, Comedy" splits into two fields by comma: still a header problem, not a width one
    path = _write(tmp_path, "x_titles.csv", "Show ID;Type;Title;Release Year;listed_in\n"
                  "s1;Movie;A;1995;Adventure, Comedy\ns2;Movie;B;1996;Drama\n")
    got = read_catalog(path, "x", "x")
    assert got.rejected["reason"].tolist() == ["wrong header"] * 2
    assert got.rejected["line"].tolist() == [2, 3]
    assert got.account.note.endswith("(separated by ';': save it comma-separated)")
    assert got.account.adds_up


def test_empty_file_and_blank_lines(tmp_path: Path) -> None:
    empty = read_catalog(_write(tmp_path, "e_titles.csv", ""), "e", "e")
    assert empty.titles.empty and empty.account.read == 0 and empty.account.note == "empty file"
    text = HEADER + "\r\n\r\ns1,Movie,A,,,,,2020,PG,90 min\r\n"
    crlf = read_catalog(_write(tmp_path, "c_titles.csv", "\ufeff" + text), "c", "c")
    assert crlf.titles["id"].tolist() == ["cs1"]
    assert crlf.titles["duration_int"].tolist() == [90]  # no stray "\r"
    assert crlf.titles["line"].tolist() == [3]  # physical line, blank line counted


def test_latin1_file_is_read(tmp_path: Path) -> None:
    text = HEADER + "\ns1,Movie,Amélie,,,,,2001,R,122 min\n"
    got = read_catalog(_write(tmp_path, "l_titles.csv", text, "latin-1"), "l", "l")
    assert got.titles["title"].tolist() == ["Amélie"]


def test_duplicate_ids_across_platforms_are_duplicates(tmp_path: Path) -> None:
    # Only odd show ids can collide ("a" + "pple-s1" = "apple-" + "s1"): the second
    # is a duplicate, recorded, not lost.
    _write(tmp_path, "amazon_prime_titles.csv", HEADER + "\npple-s1,Movie,A,,,,,2020,PG,90 min\n")
    _write(tmp_path, "apple_titles.csv", HEADER + "\ns1,Movie,B,,,,,2020,PG,90 min\n")
    titles, rejected, accounts = read_catalogs(tmp_path)
    assert titles["id"].tolist() == ["apple-s1"]
    assert rejected[["source_file", "reason"]].values.tolist() == [
        ["apple_titles.csv", "duplicate id"]]
    assert [a.duplicates for a in accounts] == [0, 1]


@pytest.mark.parametrize("line", [
    's9,Movie,"Unclosed,,,,,2020,PG,90 min',
    's9,Movie,"Closed"junk,,,,,2020,PG,90 min',
])
def test_broken_quoting_costs_one_row(tmp_path: Path, line: str) -> None:
    rows = [HEADER, "s1,Movie,A,,,,,2020,PG,90 min", line, "s2,Movie,B,,,,,2020,PG,90 min",
            's3,Movie,C,,,,,2020,PG,90 min']
    got = read_catalog(_write(tmp_path, "q_titles.csv", "\n".join(rows) + "\n"), "q", "q")
    assert got.titles["show_id"].tolist() == ["s1", "s2", "s3"]
    assert got.rejected[["line", "reason"]].values.tolist() == [[3, "bad quoting"]]

