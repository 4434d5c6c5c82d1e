"""Row accounting and the rejected-rows log."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys_utils.data.accounting import Accounting, AccountingError, RejectLog, SourceAccount


def test_source_account_line_and_adds_up() -> None:
    acc = SourceAccount("a.csv", "ratings", read=10, kept=7, rejected=2, duplicates=1)
    assert acc.adds_up
    assert "a.csv: 10 read = 7 kept + 2 rejected + 1 duplicates" in acc.line()
    acc.kept = 6
    assert not acc.adds_up


def test_check_raises_when_numbers_do_not_add_up() -> None:
    acc = Accounting([SourceAccount("a.csv", "titles", read=3, kept=3),
                      SourceAccount("b.csv", "titles", read=3, kept=1, rejected=1)])
    with pytest.raises(AccountingError, match="b.csv"):
        acc.check()


def test_check_compares_with_the_rejected_table() -> None:
    acc = Accounting([SourceAccount("a.csv", "ratings", read=3, kept=1, rejected=1,
                                    duplicates=1)])
    log = RejectLog()
    log.add("a.csv", 2, "bad quoting", "x")
    with pytest.raises(AccountingError, match="1 rows in rejected_ratings"):
        acc.check({"ratings": log.to_frame()})
    log.add("a.csv", 3, "exact duplicate", "y")
    acc.check({"ratings": log.to_frame()})  # 2 rows = 1 rejected + 1 duplicate
    log.add("other.csv", 2, "bad quoting", "z")
    with pytest.raises(AccountingError, match="unaccounted"):
        acc.check({"ratings": log.to_frame()})


def test_json_round_trip(tmp_path) -> None:
    acc = Accounting([SourceAccount("a.csv", "titles", read=2, kept=1, rejected=1, note="n")])
    path = tmp_path / "acc.json"
    acc.to_json(path)
    assert Accounting.from_json(path) == acc
    assert Accounting.from_json(acc.to_json()) == acc


def test_summary_has_a_total_per_kind() -> None:
    acc = Accounting([SourceAccount("a.csv", "titles", read=2, kept=2),
                      SourceAccount("b.csv", "titles", read=5, kept=4, duplicates=1),
                      SourceAccount("r.csv", "ratings", read=1, kept=1)])
    lines = acc.summary_lines()
    assert len(lines) == 5
    assert "total: 7 read = 6 kept + 0 rejected + 1 duplicates" in lines[3]
    assert acc.totals().read == 8


def test_reject_log_collects_rows_and_frames() -> None:
    log = RejectLog()
    log.add("b.csv", 4, "bad quoting", '"x')
    log.extend(pd.DataFrame({"source_file": ["a.csv"], "line": [9], "reason": ["r"],
                             "raw": ["y"]}))
    df = log.to_frame()
    assert len(log) == 2
    assert df["source_file"].tolist() == ["a.csv", "b.csv"]  # sorted by file, line
    assert str(df["line"].dtype) == "int32"
    assert log.count("b.csv") == 1 and log.count("a.csv", ["other"]) == 0
    assert RejectLog().to_frame().columns.tolist() == ["source_file", "line", "reason", "raw"]
