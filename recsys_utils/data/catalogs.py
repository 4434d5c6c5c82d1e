"""Reading and cleaning the platform catalogs (``<platform>_titles.csv``).

Public copies of these catalogs differ: genres in ``listed_in`` or ``genre``,
three date formats, extra columns, no description, durations misplaced into
``rating``, rows with broken quoting. Every variant loads; a row that cannot be
cleaned is rejected with its line and reason, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils.data.accounting import REJECT_COLUMNS, SourceAccount, empty_rejects
from recsys_utils.data.linking import normalize_titles
from recsys_utils.data.rawcsv import RawTable, read_raw_csv, separator_hint
from recsys_utils.errors import DataError
from recsys_utils.schema import KINDS, TITLES_COLUMNS, cast_titles

__all__ = ["CATALOG_SUFFIX", "CatalogRead", "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS",
           "clean_catalog", "discover_catalogs", "fill_missing_rating", "fix_misplaced_durations",
           "normalize_type", "parse_date_added", "platform_prefix", "platform_prefixes", "read_catalog",
           "read_catalogs", "split_duration"]

CATALOG_SUFFIX = "_titles.csv"
REQUIRED_COLUMNS = ("show_id", "type", "title", "release_year")
OPTIONAL_COLUMNS = ("director", "cast", "country", "date_added", "rating", "duration",
                    "genres", "description")
#: Raw header names (lowercased) that mean ``genres``; the first present wins.
GENRE_ALIASES = ("listed_in", "genre", "genres")
#: The seed's rule for a missing maturity rating.
DEFAULT_RATING = "G"

_DURATION_RE = re.compile(r"^\s*(\d+)\s*(min|mins|minutes?|seasons?)\s*$", re.IGNORECASE)
# (regex, strptime format) for each date_added variant seen in public copies.
_DATE_FORMATS = (
    (r"^\d{4}-\d{2}-\d{2}$", "%Y-%m-%d"),                 # 2021-09-25
    (r"^[A-Za-z]+ \d{1,2}, \d{4}$", "%B %d, %Y"),         # September 25, 2021
    (r"^[A-Za-z]{3} \d{1,2}, \d{4}$", "%b %d, %Y"),       # Sep 25, 2021
    (r"^\d{1,2}-[A-Za-z]{3}-\d{2}$", "%d-%b-%y"),         # 25-Sep-21
    (r"^\d{1,2}-[A-Za-z]{3}-\d{4}$", "%d-%b-%Y"),         # 25-Sep-2021
)


def discover_catalogs(raw_dir: str | Path) -> dict[str, Path]:
    """``platform → file`` for every ``<platform>_titles.csv`` in ``raw_dir``, sorted by platform.

    The platform is the file name without ``_titles.csv``
    (``amazon_prime_titles.csv`` → ``amazon_prime``). A missing folder gives ``{}``.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        return {}
    found = {p.name[: -len(CATALOG_SUFFIX)].lower(): p
             for p in raw_dir.iterdir()
             if p.is_file() and p.name.lower().endswith(CATALOG_SUFFIX) and
             len(p.name) > len(CATALOG_SUFFIX)}
    return dict(sorted(found.items()))


#: Fixed id prefixes of the platforms of the public catalogs: the convention rating logs use
#: (``ns123`` = Netflix ``s123``). Ids are keys in every rating log: never change an entry.
KNOWN_PREFIXES = {"amazon_prime": "a", "disney_plus": "d", "hulu": "h", "netflix": "n"}


def platform_prefix(platform: str) -> str:
    """The id prefix of one platform, from its name alone.

    Rule (documented in the data dictionary): a platform of ``KNOWN_PREFIXES`` takes its
    letter; any other platform takes its lower-case name (characters other than letters,
    digits and ``_`` become ``_``) followed by ``-`` (``apple_tv`` → ``apple_tv-s1``). The
    prefix depends on nothing else, so adding, removing or reordering catalog files never
    renames a title; the ``-`` keeps these prefixes apart from the one-letter ones and from
    MovieLens' ``ml``.
    """
    name = platform.lower()
    if name in KNOWN_PREFIXES:
        return KNOWN_PREFIXES[name]
    return re.sub(r"[^0-9a-z_]", "_", name) + "-"


def platform_prefixes(platforms: Iterable[str]) -> dict[str, str]:
    """``platform → id prefix`` (:func:`platform_prefix`); two platforms whose names give the
    same prefix (``apple-tv`` and ``apple_tv``) are an error, not a silent merge."""
    out = {platform: platform_prefix(platform) for platform in sorted(set(platforms))}
    by_prefix: dict[str, list[str]] = {}
    for platform, prefix in out.items():
        by_prefix.setdefault(prefix, []).append(platform)
    clashes = [names for names in by_prefix.values() if len(names) > 1]
    if clashes:
        raise DataError(f"catalog files {clashes[0]} would give their titles the same id prefix "
                        f"{platform_prefix(clashes[0][0])!r}; rename one of the files")
    return out


def parse_date_added(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse ``date_added`` in any known format.

    Returns ``(dates, bad)``: ``datetime64[s]`` dates (NaT where empty) and a
    boolean mask of non-empty values that match no known format.
    """
    text = values.astype(object).where(values.notna(), "").map(str).str.strip()
    dates = pd.Series(pd.NaT, index=values.index, dtype="datetime64[s]")
    parsed = text == ""
    for pattern, fmt in _DATE_FORMATS:
        mask = ~parsed & text.str.match(pattern)
        if mask.any():
            got = pd.to_datetime(text[mask], format=fmt, errors="coerce")
            ok = got.notna()
            dates[got.index[ok]] = got[ok].astype("datetime64[s]")
            parsed[got.index[ok]] = True
    return dates, ~parsed


def split_duration(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """``90 min`` → (90, ``min``); ``2 Seasons`` → (2, ``season``); empty → missing.

    Returns ``(duration_int Int32, duration_type, bad)`` where ``bad`` marks
    non-empty values that are not a duration.
    """
    text = values.astype(object).where(values.notna(), "").map(str).str.strip()
    parts = text.str.extract(_DURATION_RE)
    number = pd.to_numeric(parts[0], errors="coerce").astype("Int32")
    unit = parts[1].str.lower()
    kind = pd.Series(np.where(unit.str.startswith("season", na=False), "season",
                              np.where(unit.notna(), "min", None)), index=values.index,
                     dtype=object)
    bad = (text != "") & number.isna()
    return number, kind.where(number.notna(), None), bad


def fix_misplaced_durations(df: pd.DataFrame) -> pd.DataFrame:
    """Move durations found in ``rating`` (``74 min``, ``2 Seasons``) back to ``duration``.

    A duration is never a maturity rating, so ``rating`` becomes missing (later ``G``
    by the first version's rule); ``duration`` takes the value only where it is empty.
    """
    out = df.copy()
    rating = out["rating"].astype(object).where(out["rating"].notna(), "").map(str)
    misplaced = rating.str.match(_DURATION_RE)
    duration = out["duration"].astype(object).where(out["duration"].notna(), "").map(str)
    move = misplaced & (duration.str.strip() == "")
    out["duration"] = out["duration"].astype(object).where(~move, rating)
    out["rating"] = out["rating"].astype(object).where(~misplaced, None)
    return out


def fill_missing_rating(values: pd.Series) -> pd.Series:
    """The seed's rule: a missing maturity rating becomes ``G``."""
    out = values.astype(object)
    empty = out.isna() | (out.map(lambda v: str(v).strip()) == "")
    return out.where(~empty, DEFAULT_RATING)


def normalize_type(values: pd.Series) -> pd.Series:
    """``movie`` / ``Movie`` → ``Movie``, ``tv show`` → ``TV Show``; anything else → missing."""
    key = values.astype(object).where(values.notna(), "").map(lambda v: " ".join(str(v).split()))
    return key.str.lower().map({kind.lower(): kind for kind in KINDS})


@dataclass(frozen=True)
class CatalogRead:
    """One catalog file: cleaned titles, rejected rows (incl. duplicates) and its accounting."""

    titles: pd.DataFrame
    rejected: pd.DataFrame
    account: SourceAccount


def _rejects(df: pd.DataFrame, reason: str | pd.Series, source_file: str) -> pd.DataFrame:
    out = pd.DataFrame({"source_file": source_file, "line": df["line"], "reason": reason,
                        "raw": df["raw"]})
    return out[REJECT_COLUMNS]


def _empty_titles() -> pd.DataFrame:
    """An empty titles table carrying the ``line`` and ``raw`` helper columns."""
    return cast_titles(pd.DataFrame(columns=TITLES_COLUMNS)).assign(line=[], raw=[])


def _frame(table: RawTable) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records as a frame of strings named by the normalized header; wrong widths apart."""
    header = [h.strip().lower().replace(" ", "_") for h in table.header]
    n = len(header)
    good, bad = [], []
    for rec in table.records:
        fields = rec.fields
        if len(fields) > n and not any(f.strip() for f in fields[n:]):
            fields = fields[:n]  # trailing empty fields (a trailing comma) carry nothing
        (good if len(fields) == n else bad).append((rec.line, rec.raw, fields))
    frame = pd.DataFrame([f for _, _, f in good], columns=range(n), dtype=object)
    frame.columns = pd.Index(header)
    frame = frame.loc[:, ~frame.columns.duplicated()]  # a repeated column: the first wins
    frame["line"] = [ln for ln, _, _ in good]
    frame["raw"] = [raw for _, raw, _ in good]
    wrong = pd.DataFrame({"line": [ln for ln, _, _ in bad], "raw": [raw for _, raw, _ in bad]})
    return frame, wrong


def clean_catalog(raw: pd.DataFrame, platform: str, prefix: str,
                  source_file: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean one catalog's raw string frame (normalized header, ``line``, ``raw``).

    Returns ``(titles, rejected)``; the titles follow the documented schema
    (``item_id`` = ``id`` here; the ``linked`` source rewrites it) plus the helper
    columns ``line`` and ``raw`` used to report duplicates. Rejection
    reasons: ``missing show_id``, ``missing title``, ``unknown type``,
    ``non-numeric release_year``, ``release_year out of range`` (outside 1800-2100),
    ``unparseable date_added``, ``unparseable duration``.
    """
    df = raw.copy()
    for col in ("show_id", "type", "title", "release_year", *OPTIONAL_COLUMNS):
        if col not in df:
            df[col] = None
        df[col] = df[col].map(lambda v: v.strip() if isinstance(v, str) else v)
        df[col] = df[col].where(df[col].notna() & (df[col] != ""), None)

    df = fix_misplaced_durations(df)
    df["type"] = normalize_type(df["type"])
    year = pd.to_numeric(df["release_year"], errors="coerce")
    year_ok = year.notna() & (year % 1 == 0) & year.between(1800, 2100)
    dates, bad_date = parse_date_added(df["date_added"])
    duration_int, duration_type, bad_duration = split_duration(df["duration"])

    reason = pd.Series(None, index=df.index, dtype=object)
    for mask, why in ((bad_duration, "unparseable duration"),
                      (bad_date, "unparseable date_added"),
                      (year.notna() & ~year_ok, "release_year out of range"),
                      (year.isna() | (year % 1 != 0), "non-numeric release_year"),
                      (df["type"].isna(), "unknown type"),
                      (df["title"].isna(), "missing title"),
                      (df["show_id"].isna(), "missing show_id")):
        reason[mask] = why  # the last assignment wins: the most basic problem is reported
    keep = reason.isna()

    titles = pd.DataFrame({
        "id": prefix + df["show_id"].astype(object).where(keep, ""),
        "platform": platform,
        "show_id": df["show_id"],
        "type": df["type"],
        "title": df["title"],
        "title_norm": normalize_titles(df["title"].where(keep)),
        "director": df["director"], "cast": df["cast"], "country": df["country"],
        "genres": df["genres"], "description": df["description"],
        "date_added": dates,
        "release_year": year.where(year_ok).astype("Float64").round().astype("Int16"),
        "rating": fill_missing_rating(df["rating"]),
        "duration_int": duration_int, "duration_type": duration_type,
    })
    titles["item_id"] = titles["id"]
    kept = cast_titles(titles[keep]).assign(line=df.loc[keep, "line"].to_numpy(),
                                            raw=df.loc[keep, "raw"].to_numpy())
    return kept, _rejects(df[~keep], reason[~keep], source_file)


def read_catalog(path: str | Path, platform: str, prefix: str,
                 source_file: str | None = None) -> CatalogRead:
    """Read and clean one ``<platform>_titles.csv``; never raises on a bad row.

    The kept titles carry the helper columns ``line`` and ``raw`` until
    :func:`read_catalogs` has removed duplicate ids.
    """
    path = Path(path)
    source_file = source_file or path.name
    table = read_raw_csv(path)
    account = SourceAccount(source_file, "titles", read=table.n_read)
    parts = [pd.DataFrame([(source_file, r.line, r.reason, r.raw) for r in table.rejects],
                          columns=REJECT_COLUMNS)]
    frame, wrong = _frame(table)
    parts.append(_rejects(wrong, "wrong number of fields", source_file))

    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if not table.header:
        account.note = "empty file"
        titles = _empty_titles()
    elif missing:
        account.note = (f"wrong header: missing {', '.join(missing)} "
                        f"(expected at least {','.join(REQUIRED_COLUMNS)})"
                        + separator_hint(table.header, REQUIRED_COLUMNS))
        # the whole file fails on its header, whatever each row's width
        parts[1:] = [_rejects(pd.concat([frame[["line", "raw"]], wrong]).sort_values("line"),
                              "wrong header", source_file)]
        titles = _empty_titles()
    else:
        genre_col = next((c for c in GENRE_ALIASES if c in frame.columns), None)
        if genre_col is not None and genre_col != "genres":
            frame = frame.drop(columns=["genres"], errors="ignore").rename(
                columns={genre_col: "genres"})
        titles, rejected = clean_catalog(frame, platform, prefix, source_file)
        parts.append(rejected)

    rejected = pd.concat([p for p in parts if len(p)], ignore_index=True) \
        if any(len(p) for p in parts) else empty_rejects()
    account.kept, account.rejected = len(titles), len(rejected)
    return CatalogRead(titles, rejected, account)


def read_catalogs(raw_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, list[SourceAccount]]:
    """Read every catalog in ``raw_dir``.

    Returns ``(titles, rejected, accounts)``: titles of all platforms in
    (platform, line) order with unique ``id`` — a repeated ``id`` is a duplicate,
    counted in its file's ``duplicates`` and kept in ``rejected`` with reason
    ``duplicate id`` — every rejected row, and one account per file.
    """
    files = discover_catalogs(raw_dir)
    prefixes = platform_prefixes(files)
    titles_parts, rejected_parts, accounts = [], [], []
    for platform, path in files.items():
        got = read_catalog(path, platform, prefixes[platform])
        titles_parts.append(got.titles.assign(source_file=got.account.source_file))
        rejected_parts.append(got.rejected)
        accounts.append(got.account)
    if not titles_parts:
        return cast_titles(_empty_titles()), empty_rejects(), []

    titles = pd.concat(titles_parts, ignore_index=True)
    dup = titles["id"].duplicated(keep="first")
    for account in accounts:
        n = int((dup & (titles["source_file"] == account.source_file)).sum())
        account.duplicates, account.kept = n, account.kept - n
    rejected_parts.append(pd.DataFrame({
        "source_file": titles.loc[dup, "source_file"], "line": titles.loc[dup, "line"],
        "reason": "duplicate id", "raw": titles.loc[dup, "raw"]}))
    rejected = pd.concat([r for r in rejected_parts if len(r)], ignore_index=True) \
        if any(len(r) for r in rejected_parts) else empty_rejects()
    return cast_titles(titles[~dup]), rejected, accounts
