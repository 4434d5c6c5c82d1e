"""Platform analytics: the first version's API questions as small, tested functions.

Every function takes the processed **analytics table** (``data/processed/analytics.parquet``:
the titles table plus ``mean_score`` and ``n_ratings``; see ``book/data_dictionary.md``) and
returns a frozen dataclass of plain Python values (``str``, ``int``, ``float``, ``bool``,
``None``, ``dict``), so the API can wrap it in a pydantic model (``Model(**result.to_dict())``)
and the notebook can show it as a table (``to_frame()`` / :func:`answer_seed_questions`).

Conventions shared by all functions:

* A filter left as ``None`` means "no filter" (all platforms, all years, both kinds).
* ``year`` filters on ``release_year`` (the first version's rule).
* Filter values are matched forgivingly: ``"Netflix"``, ``" netflix "`` and ``"netflix"``
  are the same platform; ``"amazon prime"`` is ``amazon_prime``; ``"movie"`` is ``Movie``.
* An unknown platform, kind, duration type or maturity rating raises
  :class:`~recsys_utils.errors.UnknownFilterError` (a ``ValueError``) whose ``valid``
  attribute lists the accepted values -- the API turns it into a 404 listing them.
* A valid query that matches nothing is **not** an error: the answer says so explicitly
  (``found=False`` and ``message``; counts are ``0``, count tables are empty). No function
  ever raises ``IndexError`` / ``KeyError`` on an empty slice.
* A table without the columns a question needs raises :class:`~recsys_utils.errors.DataError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from recsys_utils.errors import DataError, UnknownFilterError
from recsys_utils.schema import KINDS

__all__ = [
    "ActorAnswer",
    "CountTable",
    "LongestTitle",
    "ScoreCount",
    "answer_seed_questions",
    "count_titles_above_score",
    "longest_title",
    "match_filter",
    "productions_per_country",
    "split_list",
    "titles_per_maturity_rating",
    "titles_per_platform",
    "top_actor",
]

DURATION_TYPES = ("min", "season")

Filters = dict[str, Any]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class _Answer:
    """Base: ``to_dict`` gives the JSON-friendly dict the API wraps in a pydantic model."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LongestTitle(_Answer):
    """Answer of :func:`longest_title`.

    Fields: ``found``; ``platform``, ``year``, ``duration_type``, ``kind`` (the filters as
    matched, ``None`` = no filter); ``item_id``, ``title``, ``title_platform`` (the platform
    the winning title is on), ``type``, ``release_year``, ``duration_int`` (minutes or
    seasons, per ``duration_type``) -- all ``None`` when ``found`` is ``False``; ``message``.
    """

    found: bool
    platform: str | None
    year: int | None
    duration_type: str
    kind: str | None
    item_id: str | None = None
    title: str | None = None
    title_platform: str | None = None
    type: str | None = None
    release_year: int | None = None
    duration_int: int | None = None
    message: str = ""


@dataclass(frozen=True)
class ScoreCount(_Answer):
    """Answer of :func:`count_titles_above_score`.

    Fields: ``platform``, ``year``, ``kind``, ``min_score`` (filters); ``count`` (titles whose
    mean audience score is strictly above ``min_score``); ``n_titles`` (titles in the
    platform/year/kind slice) and ``n_rated`` (of those, titles with at least one rating),
    so a ``0`` can be read as "nothing scores that high" vs "nothing is rated";
    ``found`` (``count > 0``); ``message``.
    """

    found: bool
    platform: str | None
    year: int | None
    kind: str | None
    min_score: float
    count: int
    n_titles: int
    n_rated: int
    message: str = ""


@dataclass(frozen=True)
class ActorAnswer(_Answer):
    """Answer of :func:`top_actor`.

    Fields: ``found``; ``platform``, ``year`` (filters); ``actor`` (most frequent cast member,
    ties broken alphabetically) and ``n_titles`` (titles of the slice they appear in), both
    ``None``/``0`` when not found; ``tied_with`` (other actors with the same count, sorted,
    at most 10 -- ``message`` gives how many there are in all); ``n_titles_with_cast`` (titles of the slice that list any cast); ``message``.
    """

    found: bool
    platform: str | None
    year: int | None
    actor: str | None = None
    n_titles: int = 0
    tied_with: list[str] = field(default_factory=list)
    n_titles_with_cast: int = 0
    message: str = ""


@dataclass(frozen=True)
class CountTable(_Answer):
    """A one-column count table: how many titles per platform / country / maturity rating.

    Fields: ``by`` (what is counted: ``"platform"``, ``"country"`` or ``"rating"``);
    ``filters`` (the filters as matched, ``None`` = no filter); ``counts`` (``{value: n}``,
    ordered by ``n`` descending then value; empty when nothing matched); ``total`` (sum of
    ``counts``; for comma-separated fields such as country a title counts once per value);
    ``n_missing`` (titles of the slice with no value for ``by``); ``found`` (``counts`` is
    not empty); ``message``.
    """

    found: bool
    by: str
    filters: Filters
    counts: dict[str, int]
    total: int
    n_missing: int
    message: str = ""

    def to_frame(self) -> pd.DataFrame:
        """The counts as a DataFrame with columns ``<by>``, ``n_titles``."""
        return pd.DataFrame({self.by: list(self.counts), "n_titles": list(self.counts.values())})


# --------------------------------------------------------------------------- helpers


def _require(df: pd.DataFrame, columns: Iterable[str]) -> None:
    """Fail with a readable DataError when the analytics table lacks a needed column."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"analytics table lacks column(s) {missing}; expected the schema of "
            "data/processed/analytics.parquet (see book/data_dictionary.md)"
        )


def _norm(value: str) -> str:
    # Forgiving match: case, surrounding blanks, and space/hyphen vs underscore.
    return re.sub(r"[\s\-_]+", "_", str(value).strip().lower())


def match_filter(field_name: str, value: str | None, valid: Iterable[Any]) -> str | None:
    """Return the canonical spelling of ``value`` among ``valid`` or raise UnknownFilterError.

    The one rule for filter values, used by these functions and by the API's
    ``platforms`` filter on recommendations alike.
    """
    if value is None:
        return None
    choices = sorted({str(v) for v in valid if not pd.isna(v)})
    by_norm = {_norm(v): v for v in choices}
    key = _norm(value)
    if key == "seasons":  # the raw catalogs say "2 Seasons"
        key = "season"
    if key not in by_norm:
        raise UnknownFilterError(field_name, value, choices)
    return by_norm[key]


def _platform(df: pd.DataFrame, platform: str | None) -> str | None:
    return match_filter("platform", platform, df["platform"].dropna().unique())


def _kind(kind: str | None) -> str | None:
    return match_filter("kind", kind, KINDS)


def _year(year: int | None) -> int | None:
    if year is None:
        return None
    if isinstance(year, bool) or not float(year).is_integer():
        raise ValueError(f"year must be a whole number, got {year!r}")
    return int(year)


def _slice(
    df: pd.DataFrame,
    platform: str | None = None,
    year: int | None = None,
    kind: str | None = None,
) -> pd.DataFrame:
    """Rows matching the (already canonical) filters; ``None`` skips a filter."""
    mask = pd.Series(True, index=df.index)
    if platform is not None:
        mask &= df["platform"] == platform
    if year is not None:
        mask &= df["release_year"] == year
    if kind is not None:
        mask &= df["type"] == kind
    return df[mask.fillna(False).astype(bool)]


def split_list(values: pd.Series) -> pd.Series:
    """Explode a comma-separated column (cast, country, genres) into one stripped value per row.

    The index is kept, so values can be grouped back by title; empty pieces and nulls are
    dropped. MovieLens-style ``|`` separators are accepted too.
    """
    # Plain (non-regex) splits: several times faster than a regex on 20k cast lists.
    text = values.dropna().astype(str).str.replace("|", ",", regex=False)
    pieces = text.str.split(",", regex=False).explode().str.strip()
    return pieces[pieces.notna() & (pieces != "")]


def _n(count: int, noun: str) -> str:
    """``"1 title"``, ``"3 titles"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _describe(**filters: Any) -> str:
    shown = [f"{k}={v!r}" for k, v in filters.items() if v is not None]
    return ", ".join(shown) if shown else "no filter"


def _ordered_counts(counts: pd.Series) -> dict[str, int]:
    """``{value: n}`` ordered by n descending then value, with plain Python types."""
    frame = counts.rename("n").rename_axis("key").reset_index()
    frame = frame.sort_values(["n", "key"], ascending=[False, True], kind="mergesort")
    return {str(k): int(n) for k, n in zip(frame["key"], frame["n"], strict=True)}


# --------------------------------------------------------------------------- questions


def longest_title(
    df: pd.DataFrame,
    platform: str | None = None,
    year: int | None = None,
    duration_type: str = "min",
    kind: str | None = None,
) -> LongestTitle:
    """The longest title on ``platform`` released in ``year`` (the first version's "longest movie").

    ``duration_type`` is ``"min"`` (movies, length in minutes -- the first version's question) or
    ``"season"`` (shows, length in seasons). ``kind`` optionally restricts to ``"Movie"`` or
    ``"TV Show"``. Ties on length are broken by title then ``item_id`` so the answer is stable.
    Returns a :class:`LongestTitle` (``found=False`` when no title of the slice has a length).
    """
    _require(df, ["platform", "release_year", "type", "duration_int", "duration_type", "title"])
    platform_c = _platform(df, platform)
    dtype_c = match_filter("duration_type", duration_type, DURATION_TYPES)
    kind_c, year_c = _kind(kind), _year(year)
    rows = _slice(df, platform_c, year_c, kind_c)
    rows = rows[(rows["duration_type"] == dtype_c).fillna(False).astype(bool)]
    rows = rows[rows["duration_int"].notna()]
    base = {"platform": platform_c, "year": year_c, "duration_type": dtype_c, "kind": kind_c}
    if rows.empty:
        where = _describe(**base)
        return LongestTitle(found=False, **base, message=f"no title with a length for {where}")
    best = rows.sort_values(
        ["duration_int", "title", "item_id" if "item_id" in rows else "title"],
        ascending=[False, True, True],
        kind="mergesort",
    ).iloc[0]
    unit = "minutes" if dtype_c == "min" else "seasons"
    return LongestTitle(
        found=True,
        **base,
        item_id=None if "item_id" not in best or pd.isna(best["item_id"]) else str(best["item_id"]),
        title=str(best["title"]),
        title_platform=str(best["platform"]),
        type=str(best["type"]),
        release_year=None if pd.isna(best["release_year"]) else int(best["release_year"]),
        duration_int=int(best["duration_int"]),
        message=f"{best['title']} ({int(best['duration_int'])} {unit})",
    )


def count_titles_above_score(
    df: pd.DataFrame,
    platform: str | None = None,
    year: int | None = None,
    min_score: float = 4.0,
    kind: str | None = None,
) -> ScoreCount:
    """How many titles of ``platform`` released in ``year`` have a mean score above ``min_score``.

    The score is the audience ``mean_score`` (0.5-5 scale; unrated titles have none and never
    count). "Above" is strict (``mean_score > min_score``), as in the first version. Returns a
    :class:`ScoreCount`; a slice with no such title gives ``count=0, found=False``.
    """
    _require(df, ["platform", "release_year", "type", "mean_score"])
    if min_score is None or isinstance(min_score, bool) or math.isnan(float(min_score)):
        raise ValueError(f"min_score must be a number, got {min_score!r}")
    platform_c, year_c, kind_c = _platform(df, platform), _year(year), _kind(kind)
    rows = _slice(df, platform_c, year_c, kind_c)
    scores = rows["mean_score"].astype("float64")
    count = int((scores > float(min_score)).sum())
    where = _describe(platform=platform_c, year=year_c, kind=kind_c)
    return ScoreCount(
        found=count > 0,
        platform=platform_c,
        year=year_c,
        kind=kind_c,
        min_score=float(min_score),
        count=count,
        n_titles=len(rows),
        n_rated=int(scores.notna().sum()),
        message=f"{count} of {_n(len(rows), 'title')} ({where}) score above {float(min_score):g}",
    )


def titles_per_platform(
    df: pd.DataFrame, kind: str | None = None, platform: str | None = None
) -> CountTable:
    """Number of titles on each platform (optionally only ``kind``, or only one ``platform``).

    Returns a :class:`CountTable` with ``by="platform"``; with ``platform`` given, ``counts``
    holds that platform alone (``{platform: 0}`` when it has no title of ``kind``).
    """
    _require(df, ["platform", "type"])
    kind_c, platform_c = _kind(kind), _platform(df, platform)
    rows = _slice(df, platform_c, None, kind_c)
    counts = _ordered_counts(rows["platform"].dropna().value_counts())
    if platform_c is not None and platform_c not in counts:
        counts = {platform_c: 0}
    total = sum(counts.values())
    return CountTable(
        found=total > 0,
        by="platform",
        filters={"kind": kind_c, "platform": platform_c},
        counts=counts,
        total=total,
        n_missing=int(rows["platform"].isna().sum()),
        message=f"{_n(total, 'title')} ({_describe(kind=kind_c, platform=platform_c)})",
    )


def top_actor(df: pd.DataFrame, platform: str | None = None, year: int | None = None) -> ActorAnswer:
    """The actor who appears in the most titles of ``platform`` released in ``year``.

    ``cast`` is a comma-separated list; an actor listed twice for one title counts once, and
    entries without any letter (placeholders such as ``"1"``) are ignored. Ties are broken alphabetically and reported in ``tied_with``. Returns an
    :class:`ActorAnswer` (``found=False`` when no title of the slice lists a cast, e.g. on
    the MovieLens default, which has no cast).
    """
    _require(df, ["platform", "release_year", "cast"])
    platform_c, year_c = _platform(df, platform), _year(year)
    # Positional index: one id per title row, even if the caller's index has duplicates.
    rows = _slice(df, platform_c, year_c).reset_index(drop=True)
    actors = split_list(rows["cast"]).rename("actor").rename_axis("row")
    # A name has a letter: the raw Amazon catalog has placeholder rows whose cast is "1".
    actors = actors[actors.str.contains(r"[^\W\d_]", regex=True)]
    # One count per (title, actor): duplicates within a cast list must not inflate counts.
    per_title = actors.reset_index().drop_duplicates()
    n_with_cast = int(per_title["row"].nunique())
    if per_title.empty:
        where = _describe(platform=platform_c, year=year_c)
        return ActorAnswer(
            found=False, platform=platform_c, year=year_c,
            message=f"no title lists its cast for {where}",
        )
    counts = per_title["actor"].value_counts()
    n = int(counts.max())
    # Only the leaders matter: sorting every name (tens of thousands) would be wasted work.
    leaders = sorted(str(a) for a in counts.index[counts == n])
    actor, tied_all = leaders[0], leaders[1:]
    tied = tied_all[:10]
    return ActorAnswer(
        found=True,
        platform=platform_c,
        year=year_c,
        actor=actor,
        n_titles=n,
        tied_with=tied,
        n_titles_with_cast=n_with_cast,
        message=f"{actor} ({_n(n, 'title')})"
        + (f", tied with {len(tied_all)} other(s)" if tied_all else ""),
    )


def productions_per_country(
    df: pd.DataFrame,
    kind: str | None = None,
    year: int | None = None,
    country: str | None = None,
    platform: str | None = None,
    top_n: int | None = None,
) -> CountTable:
    """Number of productions per country, by type (``kind``) and release ``year``.

    ``country`` is a comma-separated list, so a co-production counts once for each country.
    Each catalog row counts: a film listed on two platforms counts twice unless ``platform``
    is given. ``country`` (optional) picks one country, matched case-insensitively; a country
    with no production gives ``counts={}`` and ``found=False`` (countries are an open list, so
    this is an empty answer, not an error). ``top_n`` keeps the largest counts (``total``
    still sums every country). Returns a :class:`CountTable` with ``by="country"``.
    """
    _require(df, ["platform", "release_year", "type", "country"])
    kind_c, year_c, platform_c = _kind(kind), _year(year), _platform(df, platform)
    rows = _slice(df, platform_c, year_c, kind_c)
    countries = split_list(rows["country"])
    all_counts = _ordered_counts(countries.value_counts())
    counts = all_counts
    if country is not None:
        wanted = _norm(country)
        counts = {k: v for k, v in all_counts.items() if _norm(k) == wanted}
    total = sum(counts.values())
    if top_n is not None:
        counts = dict(list(counts.items())[: max(int(top_n), 0)])
    filters = {"kind": kind_c, "year": year_c, "country": country, "platform": platform_c}
    where = _describe(**filters)
    return CountTable(
        found=bool(counts),
        by="country",
        filters=filters,
        counts=counts,
        total=total,
        n_missing=int(rows["country"].isna().sum()),
        message=f"{_n(total, 'production')} ({where})" if counts else f"no production for {where}",
    )


def titles_per_maturity_rating(
    df: pd.DataFrame, rating: str | None = None, platform: str | None = None
) -> CountTable:
    """Number of titles per maturity rating (``TV-MA``, ``PG-13``, ...), or for one ``rating``.

    ``rating`` must be one of the ratings present in the table (case-insensitive), else
    :class:`UnknownFilterError` lists them; a known rating absent from ``platform`` gives
    ``{rating: 0}``. Titles without a rating are reported in ``n_missing``. Returns a
    :class:`CountTable` with ``by="rating"``.
    """
    _require(df, ["platform", "rating"])
    rating_c = match_filter("rating", rating, df["rating"].dropna().unique())
    platform_c = _platform(df, platform)
    rows = _slice(df, platform_c)
    counts = _ordered_counts(rows["rating"].dropna().astype(str).value_counts())
    if rating_c is not None:
        counts = {rating_c: counts.get(rating_c, 0)}
    total = sum(counts.values())
    filters = {"rating": rating_c, "platform": platform_c}
    return CountTable(
        found=total > 0,
        by="rating",
        filters=filters,
        counts=counts,
        total=total,
        n_missing=int(rows["rating"].isna().sum()),
        message=f"{_n(total, 'title')} ({_describe(**filters)})",
    )


# --------------------------------------------------------------------------- notebook table


def default_query(df: pd.DataFrame) -> tuple[str | None, int | None]:
    """A sensible (platform, year) to demo the questions: the largest platform (ties: first
    by name) and its release year with the most *rated* titles -- or the most titles when
    none is rated -- (ties: the most recent year). ``(None, None)`` for an empty table."""
    _require(df, ["platform", "release_year"])
    if df.empty:
        return None, None
    platform = str(df["platform"].value_counts().sort_index().idxmax())
    on_platform = df[df["platform"] == platform]
    if "n_ratings" in df.columns and (on_platform["n_ratings"] > 0).any():
        # Audience scores exist only for rated titles: pick a year where the score question
        # has something to count.
        on_platform = on_platform[on_platform["n_ratings"] > 0]
    years = on_platform["release_year"].dropna().astype(int)
    if years.empty:
        return platform, None
    counts = years.value_counts()
    year = int(max(y for y, n in counts.items() if n == counts.max()))
    return platform, year


def answer_seed_questions(
    df: pd.DataFrame,
    platform: str | None = None,
    year: int | None = None,
    min_score: float = 4.0,
    kind: str = "Movie",
    rating: str | None = None,
) -> pd.DataFrame:
    """The seed's six API questions answered for one platform/year, as a two-column table.

    ``platform``/``year`` default to :func:`default_query`. ``rating`` defaults to the most
    common maturity rating (the question is skipped when the table has no ratings).
    Returns a DataFrame with columns ``question`` and ``answer`` (strings).
    """
    d_platform, d_year = default_query(df)
    platform = _platform(df, platform) if platform is not None else d_platform
    year = year if year is not None else d_year
    p = platform if platform is not None else "all platforms"
    rows: list[tuple[str, str]] = []

    longest = longest_title(df, platform, year, "min")
    rows.append((f"Longest movie on {p} released in {year}", longest.message))

    above = count_titles_above_score(df, platform, year, min_score)
    rows.append((f"Titles on {p} from {year} with mean score > {min_score:g}", above.message))

    per_platform = titles_per_platform(df)
    shown = ", ".join(f"{k}: {v}" for k, v in per_platform.counts.items())
    rows.append(("Titles per platform", shown or per_platform.message))

    actor = top_actor(df, platform, year)
    rows.append((f"Most frequent actor on {p} in {year}", actor.message))

    countries = productions_per_country(df, kind, year, top_n=3)
    shown = ", ".join(f"{k}: {v}" for k, v in countries.counts.items())
    rows.append((f"Top countries for {kind} productions of {year}", shown or countries.message))

    ratings = df["rating"].dropna() if "rating" in df else pd.Series(dtype=object)
    if rating is None and not ratings.empty:
        rating = str(ratings.astype(str).value_counts().sort_index().idxmax())
    if rating is not None:
        by_rating = titles_per_maturity_rating(df, rating)
        rows.append((f"Titles rated {rating}", by_rating.message))
    else:
        rows.append(("Titles per maturity rating", "no maturity ratings in this data"))
    return pd.DataFrame(rows, columns=["question", "answer"])
