"""Row accounting: every input row is kept, rejected or a duplicate.

The cleaning step promises that nothing is lost silently. ``RejectLog``
collects the rows not kept (with file, line, reason and the raw text) and
``Accounting`` holds one ``read = kept + rejected + duplicates`` line per
source file, checked on every run and saved as ``accounting.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from recsys_utils.schema import text

__all__ = ["REJECT_COLUMNS", "Accounting", "AccountingError", "RejectLog", "SourceAccount",
           "empty_rejects"]

#: Columns of ``data/interim/rejected_*.parquet``.
REJECT_COLUMNS = ["source_file", "line", "reason", "raw"]


class AccountingError(AssertionError):
    """The numbers of a source do not add up: a bug in the cleaning code, not in the data."""


def empty_rejects() -> pd.DataFrame:
    """An empty rejected-rows table with the documented dtypes."""
    return _typed(pd.DataFrame({c: [] for c in REJECT_COLUMNS}))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Cast a rejected-rows table to its dtypes (strings, ``line`` int32)."""
    out = df[REJECT_COLUMNS].copy()
    for col in ("source_file", "reason", "raw"):
        out[col] = text(out[col])
    out["line"] = out["line"].astype("int32")
    return out.reset_index(drop=True)


class RejectLog:
    """Collects rejected rows (``source_file, line, reason, raw``) from any step."""

    def __init__(self) -> None:
        self._frames: list[pd.DataFrame] = []
        self._rows: list[dict[str, object]] = []

    def add(self, source_file: str, line: int, reason: str, raw: str) -> None:
        """Record one rejected row."""
        self._rows.append({"source_file": source_file, "line": int(line),
                           "reason": reason, "raw": raw})

    def extend(self, rejected: pd.DataFrame) -> None:
        """Record a table of rejected rows (columns ``REJECT_COLUMNS``)."""
        if len(rejected):
            self._frames.append(_typed(rejected))

    def __len__(self) -> int:
        return len(self._rows) + sum(len(f) for f in self._frames)

    def to_frame(self) -> pd.DataFrame:
        """All rejected rows, sorted by file and line."""
        frames = [f for f in self._frames if len(f)]
        if self._rows:
            frames.append(_typed(pd.DataFrame(self._rows, columns=REJECT_COLUMNS)))
        if not frames:
            return empty_rejects()
        out = pd.concat(frames, ignore_index=True)
        return _typed(out.sort_values(["source_file", "line"], kind="stable"))

    def count(self, source_file: str, reasons: Iterable[str] | None = None) -> int:
        """Number of rejected rows of one file (optionally only these reasons)."""
        df = self.to_frame()
        mask = df["source_file"] == source_file
        if reasons is not None:
            mask &= df["reason"].isin(list(reasons))
        return int(mask.sum())


@dataclass
class SourceAccount:
    """The accounting of one source file: ``read = kept + rejected + duplicates``."""

    source_file: str
    kind: str  # "titles" or "ratings"
    read: int = 0
    kept: int = 0
    rejected: int = 0
    duplicates: int = 0
    note: str = ""

    @property
    def adds_up(self) -> bool:
        return self.read == self.kept + self.rejected + self.duplicates

    def line(self) -> str:
        """A printable summary line."""
        out = (f"{self.kind:<7} {self.source_file}: {self.read:,} read = {self.kept:,} kept"
               f" + {self.rejected:,} rejected + {self.duplicates:,} duplicates")
        return out + (f"  ({self.note})" if self.note else "")


@dataclass
class Accounting:
    """One :class:`SourceAccount` per source file of a cleaning run."""

    sources: list[SourceAccount] = field(default_factory=list)

    def add(self, account: SourceAccount) -> SourceAccount:
        self.sources.append(account)
        return account

    def __iter__(self) -> Iterator[SourceAccount]:
        return iter(self.sources)

    def totals(self, kind: str | None = None) -> SourceAccount:
        """Sum over all sources (of one kind when given)."""
        rows = [s for s in self.sources if kind is None or s.kind == kind]
        return SourceAccount(
            source_file="total", kind=kind or "all",
            read=sum(s.read for s in rows), kept=sum(s.kept for s in rows),
            rejected=sum(s.rejected for s in rows), duplicates=sum(s.duplicates for s in rows))

    def check(self, rejected: dict[str, pd.DataFrame] | None = None) -> None:
        """Raise :class:`AccountingError` unless every source adds up.

        With ``rejected`` (kind → rejected-rows table), also check that each
        file's rejected + duplicate rows are all in that table, no more, no less.
        """
        bad = [s.line() for s in self.sources if not s.adds_up
               or min(s.read, s.kept, s.rejected, s.duplicates) < 0]
        if bad:
            raise AccountingError("row accounting does not add up:\n" + "\n".join(bad))
        for kind, table in (rejected or {}).items():
            counts = table["source_file"].value_counts()
            for s in self.sources:
                if s.kind == kind and int(counts.get(s.source_file, 0)) != s.rejected + s.duplicates:
                    raise AccountingError(
                        f"{s.source_file}: {int(counts.get(s.source_file, 0))} rows in "
                        f"rejected_{kind} but {s.rejected} rejected + {s.duplicates} duplicates")
            unknown = set(counts.index) - {s.source_file for s in self.sources if s.kind == kind}
            if unknown:
                raise AccountingError(f"rejected_{kind} rows from unaccounted files: {unknown}")

    def summary_lines(self) -> list[str]:
        """One printable line per source file, then a total per kind."""
        lines = [s.line() for s in self.sources]
        for kind in dict.fromkeys(s.kind for s in self.sources):
            lines.append(self.totals(kind).line())
        return lines

    def to_frame(self) -> pd.DataFrame:
        """The accounting as a table (one row per source file)."""
        cols = ["kind", "source_file", "read", "kept", "rejected", "duplicates", "note"]
        return pd.DataFrame([asdict(s) for s in self.sources], columns=cols)

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialize (and write to ``path`` when given)."""
        payload = json.dumps({"sources": [asdict(s) for s in self.sources]}, indent=2)
        if path is not None:
            Path(path).write_text(payload + "\n", encoding="utf-8")
        return payload

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Accounting:
        """Read back what :meth:`to_json` wrote (a JSON string or a file path)."""
        payload = str(text_or_path)
        if not payload.lstrip().startswith("{"):
            payload = Path(text_or_path).read_text(encoding="utf-8")
        data = json.loads(payload)
        return cls([SourceAccount(**s) for s in data["sources"]])
