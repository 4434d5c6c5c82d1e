"""The raw CSV reader: records keep their first physical line, nothing is lost, nothing raises.

Catalog-level rules (field counts, reasons such as ``wrong number of fields``) are the
callers' and are tested in test_catalogs.py; here only the splitting into records.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_utils.data.rawcsv import MAX_RECORD_LINES, read_raw_csv


def _write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _lines(table) -> list[tuple[int, list[str]]]:
    return [(r.line, r.fields) for r in table.records]


def test_raw_reader_joins_multiline_fields_only_when_they_parse(tmp_path: Path) -> None:
    text = 'a,b\n1,"two\nlines"\n2,"open\n3,x\n'
    table = read_raw_csv(_write(tmp_path, text))
    assert [(r.line, r.fields) for r in table.records] == [(2, ["1", "two\nlines"]),
                                                           (5, ["3", "x"])]
    assert [(r.line, r.reason) for r in table.rejects] == [(4, "bad quoting")]
    assert table.n_read == 3


def test_line_numbers_count_physical_lines_with_the_header_as_line_1(tmp_path: Path) -> None:
    text = 'id,text\n1,a\n\n2,"x\ny\nz"\n3,b\n'
    table = read_raw_csv(_write(tmp_path, text))
    assert table.header == ["id", "text"] and table.header_raw == "id,text"
    # the blank line 3 is skipped but still counted as a line; the 3-line record starts on 4
    assert _lines(table) == [(2, ["1", "a"]), (4, ["2", "x\ny\nz"]), (7, ["3", "b"])]
    assert table.blank_lines == 1 and table.rejects == [] and table.n_read == 3
    assert table.records[1].raw == '2,"x\ny\nz"'  # the record's text as in the file


def test_leading_blank_lines_before_the_header_are_skipped(tmp_path: Path) -> None:
    table = read_raw_csv(_write(tmp_path, "\n\nid,text\n1,a\n"))
    assert table.header == ["id", "text"]
    assert _lines(table) == [(4, ["1", "a"])]


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_an_empty_file_has_an_empty_header_and_no_rows(tmp_path: Path, text: str) -> None:
    table = read_raw_csv(_write(tmp_path, text))
    assert table.header == [] and table.records == [] and table.rejects == []
    assert table.n_read == 0


def test_crlf_line_endings_are_read_like_lf(tmp_path: Path) -> None:
    crlf = read_raw_csv(_write(tmp_path, 'id,text\r\n1,"a\r\nb"\r\n2,c\r\n', name="crlf.csv"))
    lf = read_raw_csv(_write(tmp_path, 'id,text\n1,"a\nb"\n2,c\n', name="lf.csv"))
    assert _lines(crlf) == _lines(lf) == [(2, ["1", "a\nb"]), (4, ["2", "c"])]


def test_utf8_bom_is_dropped_from_the_header(tmp_path: Path) -> None:
    table = read_raw_csv(_write(tmp_path, "id,title\n1,Léon\n", encoding="utf-8-sig"))
    assert table.encoding == "utf-8"
    assert table.header == ["id", "title"]  # not "\ufeffid"
    assert _lines(table) == [(2, ["1", "Léon"])]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_a_bom_is_decoded(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "t.csv"  # Excel's "Unicode text", a Windows shell redirect
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    path.write_bytes(bom + "id,title\r\n1,Léon\r\n".encode(encoding))
    table = read_raw_csv(path)
    assert table.encoding == "utf-16"
    assert table.header == ["id", "title"] and _lines(table) == [(2, ["1", "Léon"])]


def test_non_utf8_bytes_fall_back_to_cp1252(tmp_path: Path) -> None:
    table = read_raw_csv(_write(tmp_path, "id,title\n1,Léon – “Pro”\n", encoding="cp1252"))
    assert table.encoding == "cp1252"
    assert _lines(table) == [(2, ["1", "Léon – “Pro”"])]


def test_bytes_cp1252_cannot_decode_fall_back_to_latin1(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"id,title\n1,a\x81b\n")  # 0x81 is undefined in cp1252
    table = read_raw_csv(path)
    assert table.encoding == "latin-1"
    assert _lines(table) == [(2, ["1", "a\x81b"])]


def test_a_utf8_file_with_one_cp1252_line_keeps_its_header_and_other_accents(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffid,title\n1,Léon\n".encode("utf-8")     # an Excel UTF-8 export ...
                     + "2,Amélie “pasted”\n".encode("cp1252"))          # ... with a pasted line
    table = read_raw_csv(path)
    assert table.header == ["id", "title"]  # not "ï»¿id": the file is not a wrong header
    assert table.encoding == "cp1252"  # the fallback the pasted line needed
    assert _lines(table) == [(2, ["1", "Léon"]), (3, ["2", "Amélie “pasted”"])]


def test_unicode_line_separators_inside_a_field_do_not_split_the_record(tmp_path: Path) -> None:
    table = read_raw_csv(_write(tmp_path, "id,text\n1,one\u2028two\n2,b\n"))
    assert _lines(table) == [(2, ["1", "one\u2028two"]), (3, ["2", "b"])]


def test_quoting_rules(tmp_path: Path) -> None:
    text = ('id,text,n\n'
            '1,"a, with comma",5\n'          # quoted separator
            '2,"say ""hi""",6\n'              # doubled quote inside a quoted field
            '3,5" screen,7\n'                 # a literal quote in an unquoted field
            '4,"",8\n')                       # an empty quoted field
    table = read_raw_csv(_write(tmp_path, text))
    assert _lines(table) == [(2, ["1", "a, with comma", "5"]), (3, ["2", 'say "hi"', "6"]),
                             (4, ["3", '5" screen', "7"]), (5, ["4", "", "8"])]
    assert table.rejects == []


def test_header_fields_are_parsed_as_csv_and_stripped(tmp_path: Path) -> None:
    table = read_raw_csv(_write(tmp_path, ' id ,"title, full",n \n1,a,2\n'))
    assert table.header == ["id", "title, full", "n"]


@pytest.mark.parametrize(("line", "why"), [
    ('2,"closed"junk,x', "text after a closing quote"),
    ('2,"never closed,x', "a quote that never closes"),
])
def test_malformed_rows_are_rejected_with_their_line_and_raw_text(tmp_path: Path, line: str,
                                                                 why: str) -> None:
    table = read_raw_csv(_write(tmp_path, f"id,text,n\n1,a,b\n{line}\n3,c,d\n"))
    assert [(r.line, r.reason, r.raw) for r in table.rejects] == [(3, "bad quoting", line)], why
    assert _lines(table) == [(2, ["1", "a", "b"]), (4, ["3", "c", "d"])]
    assert table.n_read == 3  # read = records + rejects: no row lost


def test_a_row_with_the_wrong_field_count_is_a_record_for_the_caller_to_judge(
        tmp_path: Path) -> None:
    table = read_raw_csv(_write(tmp_path, "id,text,n\n1,short\n2,a,b,extra\n"))
    assert _lines(table) == [(2, ["1", "short"]), (3, ["2", "a", "b", "extra"])]
    assert table.rejects == []


def test_a_stray_quote_costs_one_row_even_when_a_later_quote_balances_it(
        tmp_path: Path) -> None:
    # joining lines 2-3 balances the quotes but gives 3 fields, not 2: line 2 alone is bad
    text = 'id,text\n1,"stray\n2,ok"x,y\n3,c\n'
    table = read_raw_csv(_write(tmp_path, text))
    assert [(r.line, r.reason) for r in table.rejects] == [(2, "bad quoting")]
    # line 3 parses alone (a literal quote in an unquoted field), 3 fields: the caller's call
    assert _lines(table) == [(3, ["2", 'ok"x', "y"]), (4, ["3", "c"])]
    assert table.n_read == len(table.records) + len(table.rejects) == 3


def test_a_multiline_field_is_bounded_by_max_record_lines(tmp_path: Path) -> None:
    body = "\n".join(f"part {k}" for k in range(4))
    text = f'id,text\n1,"{body}"\n2,b\n'
    assert _lines(read_raw_csv(_write(tmp_path, text))) == [(2, ["1", body]), (6, ["2", "b"])]
    short = read_raw_csv(_write(tmp_path, text), max_record_lines=3)  # needs 4 lines
    assert [(r.line, r.reason) for r in short.rejects] == [(2, "bad quoting")]
    # reading resumes on line 3: the rest of the field is kept as (short) records
    assert [r.line for r in short.records] == [3, 4, 5, 6]
    assert short.records[-1].fields == ["2", "b"]
    assert MAX_RECORD_LINES >= 8  # the longest real description spans 8 lines
