"""A forgiving CSV reader that never loses a row.

``pandas.read_csv`` either crashes on a row with broken quoting or silently
glues many lines into one field. Real catalog exports have both quoted
multi-line descriptions (legitimate) and stray quotes (broken), so we split
the file into records ourselves and keep, for every record, the physical line
it starts on. A record that cannot be parsed is returned as a rejected row
(line, reason, raw) instead of raising.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MAX_RECORD_LINES", "RawRecord", "RawReject", "RawTable", "read_raw_csv",
           "separator_hint"]

#: A quoted field may span at most this many physical lines (the longest real
#: description seen spans 8). Bounding it stops a stray quote from eating the file.
MAX_RECORD_LINES = 50


def separator_hint(header: list[str], needed: list[str] | tuple[str, ...]) -> str:
    """`` (separated by ';': save it comma-separated)`` when a wrong header holds the
    ``needed`` columns once split by another separator (a spreadsheet saved in a locale
    whose decimal comma makes ';' the separator; tab; '|'); "" otherwise."""
    text, wanted = ",".join(header).lower(), {n.lower() for n in needed}
    sep = next((c for c in ";\t|" if c in text and
                wanted <= {f.strip().replace(" ", "_") for f in text.split(c)}), None)
    return f" (separated by {sep!r}: save it comma-separated)" if sep else ""


@dataclass(frozen=True)
class RawRecord:
    """One parsed record: its first physical line (1 = header), fields and text."""

    line: int
    fields: list[str]
    raw: str


@dataclass(frozen=True)
class RawReject:
    """A physical line that could not be parsed into a record."""

    line: int
    reason: str
    raw: str


@dataclass
class RawTable:
    """What :func:`read_raw_csv` found in one file."""

    path: Path
    header: list[str]
    header_raw: str
    records: list[RawRecord] = field(default_factory=list)
    rejects: list[RawReject] = field(default_factory=list)
    encoding: str = "utf-8"
    blank_lines: int = 0

    @property
    def n_read(self) -> int:
        """Rows read: parsed records plus unparseable lines (the header excluded)."""
        return len(self.records) + len(self.rejects)


_FALLBACKS = ("utf-8", "cp1252", "latin-1")  # latin-1 decodes any bytes


def _decode(data: bytes) -> tuple[str, str]:
    """Decode as UTF-8 (a leading BOM dropped) or, after a UTF-16 BOM, as UTF-16; if the
    file is neither, decode line by line, each line as UTF-8, else cp1252, else latin-1,
    and name the last fallback any line needed. Line by line because a UTF-8 export with
    one pasted cp1252 character is common:
    read whole as cp1252, its header would start with the BOM's bytes (the file rejected
    as ``wrong header``) and every other accent would turn to mojibake."""
    data = data.removeprefix(codecs.BOM_UTF8)
    # Excel's "Unicode text" and Windows shell redirects write UTF-16 with a BOM; its bytes
    # (FF FE / FE FF) cannot start a text file in the other encodings
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    for encoding in ("utf-16", "utf-8") if utf16 else ("utf-8",):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            pass
    lines, needed = [], 0
    for line in data.split(b"\n"):  # 0x0A is a newline in all three encodings, never inside one
        for rank, encoding in enumerate(_FALLBACKS):
            try:
                lines.append(line.decode(encoding))
            except UnicodeDecodeError:
                continue
            needed = max(needed, rank)
            break
    return "\n".join(lines), _FALLBACKS[needed]


def _parse(text: str) -> list[str] | None:
    """Parse one record strictly; ``None`` when the quoting is broken."""
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def read_raw_csv(path: str | Path, max_record_lines: int = MAX_RECORD_LINES) -> RawTable:
    """Split a CSV file into records without ever raising on a malformed row.

    Rules, in order, for the record starting at a physical line:

    1. the line parses on its own → a record (its field count is checked by the caller);
    2. else, if its quotes are unbalanced, following lines are joined until they
       balance (at most ``max_record_lines``); if that parses and has as many fields
       as the header → one multi-line record;
    3. else the line alone is rejected as ``bad quoting`` and reading resumes on
       the next line, so a stray quote costs one row, not the rest of the file.

    Blank lines carry no data and are skipped (counted in ``blank_lines``).
    An empty file gives an empty header.
    """
    path = Path(path)
    text, encoding = _decode(path.read_bytes())
    # Split on "\n" only: str.splitlines would also split on characters such as
    # U+2028 that occur inside real descriptions.
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()

    table = RawTable(path=path, header=[], header_raw="", encoding=encoding)
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines):
        return table
    table.header_raw = lines[i]
    table.header = [h.strip() for h in (_parse(lines[i]) or lines[i].split(","))]
    n_cols = len(table.header)
    i += 1

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            table.blank_lines += 1
            i += 1
            continue
        fields = _parse(line)
        if fields is not None and (len(fields) == n_cols or line.count('"') % 2 == 0):
            # Well-formed on its own (a literal quote inside an unquoted field is fine).
            table.records.append(RawRecord(i + 1, fields, line))
            i += 1
            continue
        if line.count('"') % 2 == 1:
            # An open quote: try a legitimate multi-line field.
            j, buf = i, line
            while buf.count('"') % 2 == 1 and j + 1 < len(lines) and j - i + 1 < max_record_lines:
                j += 1
                buf += "\n" + lines[j]
            joined = _parse(buf) if buf.count('"') % 2 == 0 else None
            if joined is not None and len(joined) == n_cols:
                table.records.append(RawRecord(i + 1, joined, buf))
                i = j + 1
                continue
        if fields is not None:
            # Parsed alone, only the field count is wrong: the caller says so.
            table.records.append(RawRecord(i + 1, fields, line))
            i += 1
            continue
        table.rejects.append(RawReject(i + 1, "bad quoting", line))
        i += 1
    return table
