"""Ratings validation: every bad row is rejected with its reason, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_GOOD_RATINGS, TINY_RATING_REJECTS

from recsys_utils.data.ratings import (
    EXPECTED_COLUMNS,
    discover_ratings,
    drop_exact_duplicates,
    read_ratings_file,
    read_ratings_files,
    validate_ratings,
)

KNOWN = {"ns1", "ns2"}


def _raw(rows: list[list[object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(EXPECTED_COLUMNS))


def test_valid_rows_are_kept_with_compact_dtypes() -> None:
    kept, rejected = validate_ratings(_raw([["1", "4.5", "1600000000", "ns1"],
                                            ["2", "0.5", "0", "ns2"]]), "f.csv", KNOWN)
    assert rejected.empty
    assert kept.columns.tolist() == ["user_id", "item_id", "score", "timestamp", "source_file",
                                     "line"]
    assert [str(kept[c].dtype) for c in ("user_id", "score", "timestamp", "line")] == [
        "int32", "float32", "datetime64[s]", "int32"]
    assert kept["timestamp"].iloc[0] == pd.Timestamp("2020-09-13 12:26:40")
    assert kept["line"].tolist() == [2, 3] and kept["item_id"].tolist() == ["ns1", "ns2"]


@pytest.mark.parametrize(("row", "reason"), [
    (["abc", "4", "1600000000", "ns1"], "non-numeric userId"),
    (["1.5", "4", "1600000000", "ns1"], "non-numeric userId"),
    (["-3", "4", "1600000000", "ns1"], "userId out of range"),
    (["1", "good", "1600000000", "ns1"], "non-numeric rating"),
    (["1", "5.5", "1600000000", "ns1"], "score outside 0.5-5"),
    (["1", "0", "1600000000", "ns1"], "score outside 0.5-5"),
    (["1", "3.7", "1600000000", "ns1"], "score not a multiple of 0.5"),
    (["1", "4", "yesterday", "ns1"], "unparseable timestamp"),
    (["1", "4", "-5", "ns1"], "unparseable timestamp"),
    (["1", "4", "14/07/2017", "ns1"], "unparseable timestamp"),  # day or month first?
    (["1", "4", "2017-13-40T00:00:00", "ns1"], "unparseable timestamp"),
    (["1", "4", "1969-12-31", "ns1"], "unparseable timestamp"),
    (["1", "4", "1468464000000", "ns1"], "timestamp in milliseconds (Unix seconds expected)"),
    (["1", "4", "4102444800000000", "ns1"], "unparseable timestamp"),  # not even milliseconds
    (["1", "4", "2090-01-01T00:00:00Z", "ns1"], "timestamp in the future"),
    (["1", "4", "1600000000", "zz9"], "unknown movieId"),
    (["1", "4", None, "ns1"], "missing value"),
    (["1", "", "1600000000", "ns1"], "missing value"),
])
def test_each_bad_value_is_rejected_with_its_reason(row: list[object], reason: str) -> None:
    kept, rejected = validate_ratings(_raw([["1", "4", "1600000000", "ns1"], row]), "f.csv",
                                      KNOWN, first_line=10)
    assert len(kept) == 1
    assert rejected[["source_file", "line", "reason"]].values.tolist() == [
        ["f.csv", 11, reason]]
    assert rejected["raw"].iloc[0].startswith(str(row[0]))


def test_iso_8601_times_are_read_as_utc_unless_they_carry_an_offset() -> None:
    stamps = ["1500000000", "2017-07-14T02:40:00", "2017-07-14 02:40:00Z",
              "2017-07-14T04:40:00+02:00", "2017-07-13T22:40:00-0400", "2017-07-14T02:40:00.9",
              "2017-07-14"]
    kept, rejected = validate_ratings(_raw([["1", "4", t, "ns1"] for t in stamps]), "f.csv",
                                      KNOWN)
    assert rejected.empty
    assert kept["timestamp"].tolist() == [pd.Timestamp("2017-07-14 02:40:00")] * 6 + [
        pd.Timestamp("2017-07-14")]
    # the same rating in both notations is one rating
    kept, dups = drop_exact_duplicates(kept)
    assert len(kept) == 2 and (dups["reason"] == "exact duplicate").all()


def test_numeric_input_and_no_known_items() -> None:
    df = pd.DataFrame({"userId": [1, 2], "rating": [4.0, 3.5], "timestamp": [10, 20],
                       "movieId": ["anything", "ns1"]})
    kept, rejected = validate_ratings(df, "new.csv", None)
    assert rejected.empty and kept["user_id"].tolist() == [1, 2]


def test_line_and_raw_columns_are_used_when_given() -> None:
    df = _raw([["x", "4", "1", "ns1"]]).assign(line=[42], raw=["x,4,1,ns1 (as read)"])
    _, rejected = validate_ratings(df, "f.csv", KNOWN)
    assert rejected[["line", "raw"]].values.tolist() == [[42, "x,4,1,ns1 (as read)"]]


def test_missing_column_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="movieId"):
        validate_ratings(pd.DataFrame({"userId": [1]}), "f.csv", None)


def test_exact_duplicates_are_dropped_and_returned() -> None:
    kept, _ = validate_ratings(_raw([["1", "4", "5", "ns1"], ["1", "4", "5", "ns1"],
                                     ["1", "4", "6", "ns1"]]), "f.csv", KNOWN)
    out, dups = drop_exact_duplicates(kept)
    assert out["line"].tolist() == [2, 4]  # a different timestamp is not a duplicate
    assert dups[["line", "reason", "raw"]].values.tolist() == [[3, "exact duplicate",
                                                                "1,4,5,ns1"]]


def test_tiny_ratings_file_accounts_for_every_row(tiny_raw_dir: Path) -> None:
    files = discover_ratings(tiny_raw_dir)
    assert [f.name for f in files] == ["ratings.csv"]
    got = read_ratings_file(files[0], {"as1", "as2", "as3", "as6", "ns1", "ns2", "ns3",
                                       "ns4", "ns5", "ns8", "ns9"})
    (acc,) = got.accounts
    assert (acc.read, acc.kept, acc.rejected, acc.duplicates) == (
        TINY_GOOD_RATINGS + 7, TINY_GOOD_RATINGS, 6, 1)
    counts = got.rejected["reason"].value_counts().to_dict()
    assert counts == {**TINY_RATING_REJECTS, "exact duplicate": 1}


def test_columns_in_another_order_are_read_by_name(tmp_path: Path) -> None:
    path = tmp_path / "reordered.csv"
    path.write_text("movieId,timestamp,userId,rating\nns1,1600000000,1,4\nns1,1600000001,2,3.5\n")
    got = read_ratings_file(path, KNOWN)
    (acc,) = got.accounts
    assert (acc.read, acc.kept, acc.rejected) == (2, 2, 0)
    assert got.ratings["user_id"].tolist() == [1, 2]
    assert got.ratings["score"].tolist() == [4.0, 3.5]
    assert got.ratings["item_id"].tolist() == ["ns1", "ns1"]
    assert got.ratings["timestamp"].astype("int64").tolist() == [1600000000, 1600000001]
    assert "read by name" in acc.note


def test_other_columns_are_ignored_and_named(tmp_path: Path) -> None:
    """An export with more columns (a device, a trailing comma) keeps its ratings; a row
    whose field count does not match the header is still rejected alone."""
    path = tmp_path / "export.csv"
    path.write_text("device,movieId,userId,rating,timestamp,\ntv,ns1,1,4,1600000000,\n"
                    "phone,ns1,2,3.5,1600000001,\nphone,ns1,3,3.5,1600000002\n")
    got = read_ratings_file(path, KNOWN)
    (acc,) = got.accounts
    assert (acc.read, acc.kept, acc.rejected) == (3, 2, 1)
    assert got.ratings["user_id"].tolist() == [1, 2]
    assert got.rejected["reason"].tolist() == ["wrong number of fields"]
    assert "'device', '' ignored" in acc.note


_T = ",4,1600000000,"  # a valid score and timestamp between userId and movieId


@pytest.mark.parametrize(("rows", "known", "kept", "reason", "note"), [
    # ids stay case-sensitive (NS1 is not ns1), but the note says why they failed
    (f"1{_T}NS1\n2{_T}zz9\n3{_T}ns1\n", KNOWN, [3], "unknown movieId",
     "1 unknown movieId matches a title id in another case (e.g. 'NS1' ~ 'ns1')"),
    (f"9f1c-77{_T}ns1\n9f1c-78{_T}ns1\n3{_T}ns1\n", KNOWN, [3], "non-numeric userId",
     "2 userIds are not whole numbers (e.g. '9f1c-77'): users are keyed by whole numbers"),
    ("1,4,06/21/1996 11:09,ns1\n2,4,06/22/1996 11:09,ns1\n", KNOWN, [], "unparseable timestamp",
     "2 timestamps are neither Unix seconds nor ISO 8601 (e.g. '06/21/1996 11:09')"),
    (f"1{_T}s1\n2{_T}s3\n3{_T}s9\n4{_T}ns2\n", {"ns1", "as1", "ns2", "hulu_x-s3"}, [4],
     "unknown movieId", "2 unknown movieIds are a title's show_id without its platform prefix "
     "(e.g. 's1' ~ 'as1' or 'ns1')"),
])
def test_a_file_wide_problem_gets_a_note_saying_why(tmp_path: Path, rows: str, known: set[str],
                                                    kept: list[int], reason: str,
                                                    note: str) -> None:
    path = tmp_path / "export.csv"
    path.write_text("userId,rating,timestamp,movieId\n" + rows)
    got = read_ratings_file(path, known)
    assert got.ratings["user_id"].tolist() == kept
    assert set(got.rejected["reason"]) == {reason}
    assert note in got.accounts[0].note


@pytest.mark.parametrize(("rows", "known"), [
    (f"abc{_T}ns1\n2{_T}ns1\n3{_T}ns1\n", KNOWN),  # one stray text id: a bad row
    (f"1{_T}1\n2{_T}2\n", {"ns1", "ns2"}),  # numeric ids end like "ns1", but "ns" is no prefix
])
def test_a_few_bad_rows_or_another_id_space_get_no_note(tmp_path: Path, rows: str,
                                                         known: set[str]) -> None:
    path = tmp_path / "export.csv"
    path.write_text("userId,rating,timestamp,movieId\n" + rows)
    assert read_ratings_file(path, known).accounts[0].note == ""


def test_wrong_header_rejects_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("userId,movieId,rating,time\n1,ns1,4,5\n2,ns1,3,6\n")
    got = read_ratings_file(path, KNOWN)
    (acc,) = got.accounts
    assert got.ratings.empty and (acc.read, acc.rejected) == (2, 2)
    assert "bad.csv" in acc.note and "userId,rating,timestamp,movieId" in acc.note
    assert set(got.rejected["reason"]) == {"wrong header"}
    assert got.rejected["line"].tolist() == [2, 3]
    assert "separated by" not in acc.note


def test_a_file_separated_by_semicolons_is_named_so(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("userId;rating;timestamp;movieId\n1;4;1600000000;ns1\n")
    got = read_ratings_file(path, KNOWN)
    (acc,) = got.accounts
    assert got.ratings.empty and set(got.rejected["reason"]) == {"wrong header"}
    assert "separated by ';': save it comma-separated" in acc.note


@pytest.mark.parametrize(("scores", "scale", "divisor"), [
    ([8, 4, 10, 7, 3, 6, 9, 2, 5, 8], 10, 2), ([80, 40, 100, 65, 30, 55, 90, 20, 45, 85], 100, 20)])
def test_a_file_on_another_scale_is_rejected_whole(tmp_path: Path, scores: list[int],
                                                  scale: int, divisor: int) -> None:
    """Its scores of 5 or less are not 0.5-5 scores either (a 4 of 10 is not "liked"):
    every row goes, with a reason naming the scale and a note saying what to divide by."""
    path = tmp_path / "tenths.csv"
    rows = "".join(f"{u},{s},{1600000000 + u},ns1\n" for u, s in enumerate(scores, start=1))
    path.write_text("userId,rating,timestamp,movieId\n" + rows)
    got = read_ratings_file(path, KNOWN)
    (acc,) = got.accounts
    assert got.ratings.empty and (acc.read, acc.rejected) == (10, 10)
    assert set(got.rejected["reason"]) == {f"score on a 0-{scale} scale (0.5-5 expected)"}
    assert f"divide the scores by {divisor}" in acc.note


def test_a_few_scores_above_5_are_rejected_alone(tmp_path: Path) -> None:
    """A 0.5-5 file with corrupted scores (fewer than half above 5) keeps its good rows."""
    path = tmp_path / "mostly_fine.csv"
    scores = [4, 3.5, 5, 2, 8, 4.5, 3, 7, 4, 6]
    rows = "".join(f"{u},{s},{1600000000 + u},ns1\n" for u, s in enumerate(scores, start=1))
    path.write_text("userId,rating,timestamp,movieId\n" + rows)
    got = read_ratings_file(path, KNOWN)
    assert len(got.ratings) == 7
    assert got.rejected["reason"].tolist() == ["score outside 0.5-5"] * 3


def test_duplicates_across_files_count_in_the_later_file(tmp_path: Path) -> None:
    folder = tmp_path / "ratings"
    folder.mkdir()
    (folder / "a.csv").write_text("userId,rating,timestamp,movieId\n1,4,5,ns1\n")
    (folder / "b.csv").write_text("userId,rating,timestamp,movieId\n2,4,5,ns1\n1,4,5,ns1\n")
    got = read_ratings_files(discover_ratings(tmp_path), KNOWN, root=tmp_path)
    assert len(got.ratings) == 2
    assert [(a.source_file, a.kept, a.duplicates) for a in got.accounts] == [
        ("ratings/a.csv", 1, 0), ("ratings/b.csv", 1, 1)]
    assert got.rejected[["source_file", "line", "raw"]].values.tolist() == [
        ["ratings/b.csv", 3, "1,4,5,ns1"]]


def test_no_ratings_folder() -> None:
    assert discover_ratings(Path("/nonexistent/raw")) == []
    assert read_ratings_files([], KNOWN).ratings.empty
