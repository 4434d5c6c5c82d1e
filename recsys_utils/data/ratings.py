"""Reading and validating ratings files (``data/raw/ratings/*.csv``).

:func:`validate_ratings` is the single rule set for a rating row; the cleaning
step and retraining both use it, so a row accepted once is accepted always.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils.data.accounting import REJECT_COLUMNS, SourceAccount, empty_rejects
from recsys_utils.data.catalogs import KNOWN_PREFIXES
from recsys_utils.data.rawcsv import read_raw_csv, separator_hint
from recsys_utils.errors import excerpt
from recsys_utils.schema import RATINGS_COLUMNS, cast_ratings

__all__ = ["CLOCK_SKEW_SECONDS", "EXPECTED_COLUMNS", "MAX_SCORE", "MIN_SCORE", "RatingsRead", "discover_ratings",
           "drop_exact_duplicates", "read_ratings_file", "read_ratings_files", "validate_ratings"]

#: The ``movieId`` values a reader accepts: a set, a mapping to ``item_id``, or None (any).
KnownItems = set[str] | Mapping[str, str] | None

#: The exact header of a ratings file.
EXPECTED_COLUMNS = ("userId", "rating", "timestamp", "movieId")
MIN_SCORE, MAX_SCORE = 0.5, 5.0
# Unix seconds accepted as a timestamp: 1970-01-01 up to (excluding) 2100-01-01.
_MAX_TIMESTAMP = 4_102_444_800
_INT32_MAX = np.iinfo(np.int32).max
#: How far past the current time a rating may be dated. Why a whole day: an export that
#: wrote local time as UTC is up to 14 hours ahead; a rating dated later than that is
#: wrong, and would move every "most recent" cut (hold-back, holdout, drift periods).
CLOCK_SKEW_SECONDS = 86_400


def discover_ratings(raw_dir: str | Path) -> list[Path]:
    """The ``ratings/*.csv`` files under ``raw_dir`` (any case of ``.csv``, as catalogs),
    sorted by name ([] when none)."""
    folder = Path(raw_dir) / "ratings"
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv"
                  ) if folder.is_dir() else []


def _as_text(values: pd.Series) -> pd.Series:
    """Values as stripped text ("" for missing) whatever their dtype."""
    return values.astype(object).where(values.notna(), "").map(str).str.strip()


def _integers(text: pd.Series) -> pd.Series:
    """Integral numbers (``"3"``, ``"3.0"``) as float; NaN for anything else."""
    num = pd.to_numeric(text, errors="coerce").astype("float64")
    return num.where(num % 1 == 0)


#: An ISO 8601 date, or date and time, with an optional UTC offset (what databases and
#: spreadsheets export); anything else that is not whole seconds stays unparseable.
_ISO_8601 = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"


def _unix_seconds(text: pd.Series) -> pd.Series:
    """Whole Unix seconds, or ISO 8601 dates and times as Unix seconds (UTC when no offset
    is given; fractions of a second dropped); NaN for anything else."""
    seconds = _integers(text)
    iso = seconds.isna()
    if iso.any():  # the regex only reads what is not already whole seconds
        iso[iso] = text[iso].str.match(_ISO_8601)
    if iso.any():
        when = pd.to_datetime(text[iso], format="ISO8601", utc=True, errors="coerce")
        epoch = pd.Timestamp(0, tz="UTC")
        seconds[iso] = ((when - epoch) // pd.Timedelta(seconds=1)).astype("float64")
    return seconds


def validate_ratings(df: pd.DataFrame, source_file: str, known_items: KnownItems,
                     first_line: int = 2, now: float | None = None,
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split raw rating rows into kept (ratings schema) and rejected rows.

    Args:
        df: columns ``userId, rating, timestamp, movieId`` of any dtype (text or
            numbers). Optional ``line`` (line numbers) and ``raw`` (row text) columns
            are used when present, otherwise line = ``first_line`` + position and
            raw = the values joined by commas.
        source_file: recorded in both outputs.
        known_items: valid ``movieId`` values; ``None`` accepts any id. A mapping
            (``data.linking.rating_ids``: any copy's ``id`` → its title's ``item_id``)
            also gives each kept row its ``item_id``; otherwise ``item_id`` = ``movieId``.
        first_line: line of the first row when ``df`` has no ``line`` column
            (2 = the row after a header).
        now: the current time in Unix seconds (default: the clock); a timestamp later
            than ``now`` + :data:`CLOCK_SKEW_SECONDS` is rejected.

    ``timestamp`` is whole Unix seconds or an ISO 8601 date / date and time (UTC unless it
    carries an offset). Returns ``(kept, rejected)``. ``kept`` has the ratings columns (``movieId``
    becomes ``item_id``) in input order; ``rejected`` has ``source_file, line,
    reason, raw``. Each row gets the first failing reason of: ``missing value``,
    ``non-numeric userId``, ``userId out of range``, ``non-numeric rating``,
    ``score outside 0.5-5``, ``score not a multiple of 0.5``, ``timestamp in
    milliseconds (Unix seconds expected)``, ``unparseable timestamp``, ``timestamp in the
    future``, ``unknown movieId``. Exact duplicates are *not* handled here
    (see :func:`drop_exact_duplicates`).
    """
    missing_cols = [c for c in EXPECTED_COLUMNS if c not in df.columns]
    if missing_cols:
        raise KeyError(f"validate_ratings needs columns {list(EXPECTED_COLUMNS)}; "
                       f"missing {missing_cols}")
    df = df.reset_index(drop=True)
    n = len(df)
    lines = (df["line"].astype("int64") if "line" in df
             else pd.Series(np.arange(first_line, first_line + n), dtype="int64"))
    cols = {c: _as_text(df[c]) for c in EXPECTED_COLUMNS}
    raw = (df["raw"].astype(object) if "raw" in df
           else cols["userId"] + "," + cols["rating"] + "," + cols["timestamp"] + ","
           + cols["movieId"])

    user = _integers(cols["userId"])
    score = pd.to_numeric(cols["rating"], errors="coerce").astype("float64")
    stamp = _unix_seconds(cols["timestamp"])
    item = cols["movieId"]

    checks = [
        (pd.concat([c == "" for c in cols.values()], axis=1).any(axis=1), "missing value"),
        (user.isna(), "non-numeric userId"),
        (~user.between(1, _INT32_MAX), "userId out of range"),
        (score.isna(), "non-numeric rating"),
        (~score.between(MIN_SCORE, MAX_SCORE), "score outside 0.5-5"),
        ((score * 2) % 1 != 0, "score not a multiple of 0.5"),
        # a Java or JavaScript export writes milliseconds: say so rather than "unparseable"
        (stamp.between(_MAX_TIMESTAMP, 1000 * _MAX_TIMESTAMP - 1),
         "timestamp in milliseconds (Unix seconds expected)"),
        (stamp.isna() | ~stamp.between(0, _MAX_TIMESTAMP - 1), "unparseable timestamp"),
        (stamp > (time.time() if now is None else now) + CLOCK_SKEW_SECONDS,
         "timestamp in the future"),
    ]
    if known_items is not None:
        checks.append((~item.isin(list(known_items)), "unknown movieId"))
    reason = pd.Series(None, index=df.index, dtype=object)
    for mask, why in checks:
        reason = reason.where(reason.notna() | ~mask, why)  # the first failing check wins
    keep = reason.isna().to_numpy()

    kept = cast_ratings(pd.DataFrame({
        "user_id": user[keep].astype("int64"),
        "item_id": (item[keep].map(known_items) if isinstance(known_items, Mapping)
                    else item[keep]),
        "score": score[keep], "timestamp": pd.to_datetime(stamp[keep].astype("int64"), unit="s"),
        "source_file": source_file, "line": lines[keep]}, columns=RATINGS_COLUMNS))
    rejected = pd.DataFrame({"source_file": source_file, "line": lines[~keep],
                             "reason": reason[~keep], "raw": raw[~keep]}, columns=REJECT_COLUMNS)
    return kept, rejected.reset_index(drop=True)


def drop_exact_duplicates(ratings: pd.DataFrame,
                          raw: Mapping[tuple[str, int], str] | None = None,
                          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop exact repeats (same user, item, score and timestamp), keeping the first.

    Returns ``(kept, duplicates)``; ``duplicates`` is a rejected-rows table with
    reason ``exact duplicate``. Its ``raw`` is looked up in ``raw`` by
    ``(source_file, line)`` when given, else rebuilt as ``userId,rating,timestamp,movieId``.
    """
    key = ["user_id", "item_id", "score", "timestamp"]
    dup = ratings.duplicated(subset=key, keep="first").to_numpy()
    if not dup.any():
        return ratings.reset_index(drop=True), empty_rejects()
    dups = ratings[dup]
    rebuilt = (dups["user_id"].astype(str) + "," + dups["score"].map(lambda s: f"{s:g}") + ","
               + dups["timestamp"].astype("int64").astype(str) + ","
               + dups["item_id"].astype(str)).tolist()
    if raw is not None:
        rebuilt = [raw.get((f, int(ln)), r) for f, ln, r in
                   zip(dups["source_file"], dups["line"], rebuilt, strict=True)]
    duplicates = pd.DataFrame({"source_file": dups["source_file"].to_numpy(),
                               "line": dups["line"].to_numpy(), "reason": "exact duplicate",
                               "raw": rebuilt}, columns=REJECT_COLUMNS)
    return ratings[~dup].reset_index(drop=True), duplicates


#: Scales a whole file may be on by mistake (its largest score -> the divisor to 0.5-5).
_OTHER_SCALES = {10: 2, 100: 20}


def _other_scale(rating: pd.Series) -> tuple[str, str] | None:
    """``(reason, note)`` when a file's scores are on another scale than 0.5-5.

    On a 1-10 scale a 4 is valid 0.5-5 and would be kept as "liked", so a file is judged
    whole: most of its numeric scores above 5 (84-91% on MovieLens doubled) and 99% of them
    within 0-10 (or 0-100; a stray corrupted value does not change the scale). A 0.5-5 file
    with some corrupted scores (a retrain's five new ratings, one of them 9) stays checked
    row by row.
    """
    score = pd.to_numeric(rating.astype(str), errors="coerce").dropna()
    if score.empty or (score > MAX_SCORE).mean() <= 0.5:
        return None
    limit = next((top for top in _OTHER_SCALES if score.between(0, top).mean() >= 0.99), None)
    if limit is None:
        return None
    return (f"score on a 0-{limit} scale (0.5-5 expected)",
            f"{(score > MAX_SCORE).mean():.0%} of its scores are above 5, up to "
            f"{score[score <= limit].max():g}: a 0-{limit} scale? expected 0.5-5 — whole file "
            f"rejected (divide the scores by {_OTHER_SCALES[limit]} first)")


def _ids_in_another_case(unknown: pd.Series, known_items: KnownItems) -> str:
    """A note when unknown movieIds are known ids in another case (an export that
    upper-cased them): ids stay case-sensitive, but the user learns why they failed. Asked
    only when most of a file's ids are unknown: lower-casing the catalog is O(titles)."""
    if unknown.empty or not known_items:
        return ""
    by_lower = {k.lower(): k for k in known_items}
    matches = [(u, by_lower[u.lower()]) for u in unknown.astype(str) if u.lower() in by_lower]
    if not matches:
        return ""
    (got, known), n = matches[0], len(matches)
    return (f"{n:,} unknown movieId{'s match' if n > 1 else ' matches'} a title id in another case "
            f"(e.g. {excerpt(got)} ~ {excerpt(known)}): ids are case-sensitive")


def _ids_without_prefix(unknown: pd.Series, known_items: KnownItems) -> str:
    """A note when unknown movieIds are titles' ``show_id`` without the platform prefix
    (``s150`` for ``ns150``): the prefixes are read off the catalog ids that end with a
    few of them, and kept only in the shapes ``platform_prefix`` makes."""
    if unknown.empty or not known_items:
        return ""
    ids = unknown.astype(str)
    known = pd.Series(sorted(known_items), dtype=object)
    prefixes = {k[:-len(u)] for u in ids.drop_duplicates().head(20)
                for k in known[known.str.endswith(u)]}
    prefixes = sorted(p for p in prefixes
                      if p in KNOWN_PREFIXES.values() or re.fullmatch(r"[0-9a-z_]+-", p))
    matches = {u: m for u in ids.unique() if (m := [p + u for p in prefixes
                                                    if p + u in known_items])}
    if not matches:
        return ""
    n = int(ids.isin(list(matches)).sum())
    got, example = next(iter(matches.items()))
    return (f"{n:,} unknown movieId{'s are' if n > 1 else ' is'} a title's show_id without its "
            f"platform prefix (e.g. {excerpt(got)} ~ {' or '.join(map(excerpt, example))}): "
            "movieId is the platform prefix + show_id")


def _file_wide_note(frame: pd.DataFrame, rejected: pd.DataFrame,
                    known_items: KnownItems) -> str:
    """A note when most of a file's rows fail the same way (an export-wide problem, not a
    few stray rows): text user ids (UUIDs, hashes), timestamps in a locale's date format,
    movieIds in another case or without their platform prefix."""
    def failing(reason: str) -> pd.Series:
        lines = rejected.loc[rejected["reason"] == reason, "line"]
        return frame.loc[frame["line"].isin(lines)] if 2 * len(lines) > len(frame) else frame[:0]

    text_users = failing("non-numeric userId")["userId"]
    if len(text_users):
        return (f"{len(text_users):,} userIds are not whole numbers (e.g. "
                f"{excerpt(str(text_users.iloc[0]))}): users are keyed by whole numbers from 1 "
                f"to {_INT32_MAX:,}; map your ids to such numbers (and keep the map) first")
    stamps = failing("unparseable timestamp")["timestamp"]
    if len(stamps):  # 06/07/1996 is June or July: a locale's format is not guessed
        return (f"{len(stamps):,} timestamps are neither Unix seconds nor ISO 8601 (e.g. "
                f"{excerpt(str(stamps.iloc[0]))}): write them as 1996-06-21 11:09:00 or as "
                "Unix seconds")
    unknown = failing("unknown movieId")["movieId"]
    return (_ids_in_another_case(unknown, known_items)
            or _ids_without_prefix(unknown, known_items))


@dataclass(frozen=True)
class RatingsRead:
    """Ratings read from one or more files: kept rows, rejected rows, one account per file."""

    ratings: pd.DataFrame
    rejected: pd.DataFrame
    accounts: list[SourceAccount]
    #: The raw text of every parsed row by (source_file, line), to report duplicates.
    raw: dict[tuple[str, int], str] = field(default_factory=dict)


def read_ratings_file(path: str | Path, known_items: KnownItems,
                      source_file: str | None = None) -> RatingsRead:
    """Read and validate one ratings CSV (duplicates within the file dropped).

    The header names the columns ``userId,rating,timestamp,movieId``, in any order (read
    by name; the account's note says so when the order differs), other columns ignored
    (the note names them). A file without the four is rejected whole: every row goes to
    ``rejected`` with reason ``wrong header`` and the account's note names the file and the
    expected columns. So is a file whose scores are on another scale (``_other_scale``:
    ``score on a 0-10 scale (0.5-5 expected)``), its note saying what to divide them by.
    When most rows fail the same way, the note says why (``_file_wide_note``).
    """
    path = Path(path)
    source_file = source_file or path.name
    table = read_raw_csv(path)
    account = SourceAccount(source_file, "ratings", read=table.n_read)
    parts = [pd.DataFrame([(source_file, r.line, r.reason, r.raw) for r in table.rejects],
                          columns=REJECT_COLUMNS)]
    header = tuple(table.header or ())
    n_cols = len(header)
    # the four columns once each, in any order; other columns (an export's extras) ignored
    readable = all(header.count(c) == 1 for c in EXPECTED_COLUMNS)
    extra = [c for c in header if c not in EXPECTED_COLUMNS]
    if not header:
        account.note = "empty file"
    elif readable and extra:
        account.note = (f"{source_file}: columns {', '.join(excerpt(c) for c in extra)} "
                        "ignored; the four read by name")
    elif readable and header != EXPECTED_COLUMNS:
        account.note = f"{source_file}: columns in the order {','.join(header)}, read by name"
    elif not readable:
        hint = separator_hint(table.header, EXPECTED_COLUMNS)
        account.note = (f"{source_file}: wrong header {excerpt(','.join(table.header))}; "
                        f"expected {','.join(EXPECTED_COLUMNS)} — whole file rejected{hint}")
        parts.append(pd.DataFrame({"source_file": source_file,
                                   "line": [r.line for r in table.records],
                                   "reason": "wrong header",
                                   "raw": [r.raw for r in table.records]}))
    kept = cast_ratings(pd.DataFrame(columns=RATINGS_COLUMNS))
    if readable:
        good = [r for r in table.records if len(r.fields) == n_cols]
        parts.append(pd.DataFrame({"source_file": source_file,
                                   "line": [r.line for r in table.records
                                            if len(r.fields) != n_cols],
                                   "reason": "wrong number of fields",
                                   "raw": [r.raw for r in table.records
                                           if len(r.fields) != n_cols]}))
        frame = pd.DataFrame([r.fields for r in good], columns=list(header),
                             dtype=object)[list(EXPECTED_COLUMNS)]
        frame["line"] = [r.line for r in good]
        frame["raw"] = [r.raw for r in good]
        scale = _other_scale(frame["rating"])
        if scale is None:
            kept, rejected = validate_ratings(frame, source_file, known_items)
            parts.append(rejected)
            wide = _file_wide_note(frame, rejected, known_items)
            account.note = "; ".join(filter(None, [account.note, wide]))
        else:
            reason, note = scale
            account.note = f"{source_file}: {note}"
            parts.append(pd.DataFrame({"source_file": source_file, "line": frame["line"],
                                       "reason": reason, "raw": frame["raw"]}))
    raw = {(source_file, r.line): r.raw for r in table.records}
    kept, dups = drop_exact_duplicates(kept, raw)
    parts.append(dups)
    rejected = _concat_rejects(parts)
    account.kept, account.duplicates = len(kept), len(dups)
    account.rejected = len(rejected) - len(dups)
    return RatingsRead(kept, rejected, [account], raw)


def _concat_rejects(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    parts = [p[REJECT_COLUMNS] for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else empty_rejects()


def read_ratings_files(paths: Iterable[str | Path], known_items: KnownItems,
                       root: str | Path | None = None) -> RatingsRead:
    """Read several ratings files, concatenate them and drop exact duplicates across files.

    ``source_file`` is each path relative to ``root`` when given (``ratings/a.csv``).
    A repeat of a row from an earlier file counts as a duplicate of the later file.
    """
    reads = []
    for path in paths:
        name = Path(path).relative_to(root).as_posix() if root is not None else Path(path).name
        reads.append(read_ratings_file(path, known_items, source_file=name))
    if not reads:
        return RatingsRead(cast_ratings(pd.DataFrame(columns=RATINGS_COLUMNS)), empty_rejects(),
                           [])
    ratings = pd.concat([r.ratings for r in reads], ignore_index=True)
    raw = {k: v for r in reads for k, v in r.raw.items()}
    ratings, dups = drop_exact_duplicates(ratings, raw)
    accounts = [a for r in reads for a in r.accounts]
    for account in accounts:
        n = int((dups["source_file"] == account.source_file).sum())
        account.kept -= n
        account.duplicates += n
    rejected = _concat_rejects([r.rejected for r in reads] + [dups])
    return RatingsRead(cast_ratings(ratings), rejected, accounts, raw)
