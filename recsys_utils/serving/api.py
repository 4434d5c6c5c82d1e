"""The REST API: platform analytics and recommendations over the champion model.

``create_app()`` builds the FastAPI app; ``recsys-serve`` (``make serve``) runs it
with uvicorn on 127.0.0.1:8000 by default.

Why it is shaped this way:

* **Everything is loaded once.** The lifespan loads the processed tables
  (``cleaning.load_processed``) and the champion model (``registry.load_champion``,
  which verifies the checksum in the manifest before unpickling) into a
  ``ServingState``. The seed re-read the pickle and the ratings table on every
  request; here a request only does array work on objects already in memory.
* **Refuse to start rather than serve half an app.** Missing artifacts raise
  ``DataError`` naming the file and the command that creates it (``make pipeline``);
  ``recsys-serve`` prints ``error: ...`` and exits 2 before binding the port.
* **No 500 for any input.** Every parameter is typed and bounded (``n`` ≤ 100,
  ids are int32 / short strings) so bad input is a 422 with a readable message;
  unknown platforms and titles are 404s that list what is valid; NaN never
  reaches the JSON encoder (null instead). Response models document every field
  in the OpenAPI schema (``/docs``), which the schemathesis test fuzzes.
* **The request path is short.** Recommendation handlers are ``async def``:
  the work is a few ms of numpy/scipy that mostly holds the GIL, so threads
  buy no parallelism, and a sync handler pays two thread-pool hops (FastAPI
  runs sync handlers *and* their response validation in the pool). Measured
  with ``benchmarks/bench_load.py`` (2,000 requests, 16 concurrent, same
  machine and minute): ``async def`` p99 128-137 ms vs ``def`` 222-263 ms and
  ~1.3-2x the server CPU per request. Finished lists are kept in an LRU cache
  (exact: the model cannot change under a running process) that can be warmed
  at startup with every active user's default list (``--warm-seconds``).
  Analytics handlers are plain ``def`` (pandas, cached) so a slow first
  answer never blocks the event loop.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys_utils import __version__
from recsys_utils.errors import DataError, UnknownFilterError, UnknownItemError
from recsys_utils.paths import ProjectPaths, project_paths

__all__ = [
    "MAX_N",
    "ServingState",
    "create_app",
    "load_state",
    "main",
]

log = logging.getLogger("recsys_utils.serving.api")

#: Largest ``n`` a client may ask for: bounds the work (and the payload) of one request.
MAX_N = 100
#: User ids are int32 in the processed tables; larger ints cannot be a known user.
INT32_MAX = 2**31 - 1
#: Longest title id accepted (ids are a platform prefix plus a show id: a few characters).
MAX_ID_LEN = 64
#: A user id no model knows (negative: ids are >= 0), to ask for the cold-start list.
UNKNOWN_USER_KEY = -1
#: Depth of the per-user ranked list kept in the cache (``RankedList``): any
#: ``n`` up to it, with any filter that leaves enough of it, is served from it.
RANKED_DEPTH = MAX_N
#: Most platforms one request may filter on.
MAX_PLATFORMS = 32
#: Recommendation lists cached per app (LRU). The model and tables never change
#: while a process runs (a new champion means a restart), so a cached list is
#: exactly what recomputing would give; 0 disables the cache.
DEFAULT_CACHE_SIZE = 8192
PIPELINE_HINT = "run `make pipeline` first (it builds data/processed/ and registers a model)"


# --------------------------------------------------------------------------- state


@dataclass
class ServingState:
    """Everything a request needs, loaded once at startup.

    ``titles_by_id`` holds ready-made response objects so ``GET /titles/{id}``
    is a dict lookup; ``ids_by_item`` maps ``(item_id, platform)`` to the title
    id where the two differ (platform copies share an ``item_id`` in the
    ``linked`` source); ``active_users`` lists users by number of ratings.
    """

    recommender: Any
    manifest: dict[str, Any]
    titles: pd.DataFrame
    analytics: pd.DataFrame
    platforms: list[str]
    titles_by_id: dict[str, TitleOut]
    ids_by_item: dict[tuple[str, str], str]
    platforms_by_item: dict[str, tuple[str, ...]]
    n_users: int
    paths: ProjectPaths
    active_users: list[int] = field(default_factory=list)
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0


def load_state(paths: ProjectPaths | None = None) -> ServingState:
    """Load the processed tables and the champion model (checksum verified).

    Raises:
        DataError: a processed table or the model is missing or corrupt; the
            message names the file and says to run ``make pipeline``.
    """
    # Imported here so `recsys-serve --help` and the module import stay fast.
    from recsys_utils.data.cleaning import load_processed
    from recsys_utils.lifecycle.registry import load_champion

    paths = paths if paths is not None else project_paths()
    started = time.perf_counter()
    data = load_processed(paths)
    recommender, manifest = load_champion(paths)
    if not hasattr(recommender, "recommend"):
        raise DataError(
            f"the champion model in {paths.models} is a {type(recommender).__name__}, "
            f"not a Recommender; {PIPELINE_HINT}"
        )
    analytics = data.analytics
    titles_by_id = _title_records(analytics)
    platforms = sorted(str(p) for p in analytics["platform"].dropna().unique())
    # Users by number of ratings, most active first: the order the cache is warmed in.
    counts = data.ratings["user_id"].value_counts(sort=False)
    active = counts.sort_index().sort_values(ascending=False, kind="mergesort")
    n_users = len(active)
    return ServingState(
        recommender=recommender,
        manifest=manifest,
        titles=data.titles,
        analytics=analytics,
        platforms=platforms,
        titles_by_id=titles_by_id,
        ids_by_item=_ids_by_item(data.titles),
        platforms_by_item=_platforms_by_item(data.titles),
        n_users=n_users,
        paths=paths,
        active_users=[int(u) for u in active.index],
        load_seconds=round(time.perf_counter() - started, 3),
    )


# --------------------------------------------------------------------------- JSON helpers


def _clean(value: Any) -> Any:
    """A value safe for JSON: numpy scalars → Python, NaN/NA/NaT/inf → None, recursively."""
    if value is None or value is pd.NaT or value is pd.NA:  # NaT is a datetime instance
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int | date | datetime):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _opt_str(value: Any) -> str | None:
    value = _clean(value)
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    value = _clean(value)
    return None if value is None else int(value)


def _opt_float(value: Any, digits: int = 4) -> float | None:
    value = _clean(value)
    return None if value is None else round(float(value), digits)


def _opt_date(value: Any) -> date | None:
    value = _clean(value)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return pd.Timestamp(value).date()
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- response models


class Kind(StrEnum):
    """Title type, as in the ``type`` column of the processed tables."""

    movie = "Movie"
    tv_show = "TV Show"


class DurationType(StrEnum):
    """Unit of ``duration_int``: minutes for movies, seasons for shows."""

    min = "min"
    season = "season"


# Parameter types shared by several routes (module level: FastAPI resolves the
# string annotations of `from __future__ import annotations` against module globals).
TitleId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LEN,
                              description="Title id (`ml1`, `ns123`, ...).")]
N = Annotated[int, Query(ge=1, le=MAX_N, description=f"How many titles (1-{MAX_N}).")]
#: The default list size (`n`).
DEFAULT_N = 10
Platform = Annotated[str | None, Query(max_length=MAX_ID_LEN,
                                       description="Platform (null = all platforms).")]
Year = Annotated[int | None, Query(ge=1800, le=2100, description="Release year.")]
KindQ = Annotated[Kind | None, Query(alias="type", description="Title type.")]


class FieldErrorOut(BaseModel):
    location: str = Field(description="Where the bad value is, e.g. `query.n` or `path.user_id`.")
    message: str = Field(description="Why it is invalid.")


class ErrorOut(BaseModel):
    """Every 4xx (and the never-expected 5xx) answers with this body."""

    detail: str = Field(description="What was wrong, in one readable sentence.")
    field: str | None = Field(None, description="The parameter at fault, when there is one.")
    valid: list[str] | None = Field(
        None, description="The valid values of that parameter (unknown platform, rating, ...)."
    )
    errors: list[FieldErrorOut] | None = Field(
        None, description="One entry per invalid parameter (422 only)."
    )


_ERRORS_404_422: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Unknown platform, user filter value or title."},
    422: {"model": ErrorOut, "description": "Invalid parameter (type, range or length)."},
}
_ERRORS_422: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "Invalid parameter (type, range or length)."},
}


def _link_to_titles(pointer: str, what: str) -> dict[str, Any]:
    """OpenAPI links from a 200 answer to the title endpoints (clients and schemathesis's
    stateful tests follow them to real ids)."""
    return {200: {"description": "Successful Response", "links": {
        "title": {"operationId": "get_title", "parameters": {"title_id": pointer},
                  "description": f"Details of {what}."},
        "similar": {"operationId": "similar_titles", "parameters": {"title_id": pointer},
                    "description": f"Titles similar to {what}."},
    }}}


class CacheOut(BaseModel):
    hits: int = Field(description="Recommendation lists served from the cache.")
    misses: int = Field(description="Lists computed by the model.")
    size: int = Field(description="Lists in the cache now.")
    max_size: int = Field(description="Capacity (0 = caching disabled).")


class HealthOut(BaseModel):
    status: str = Field(description="`ok` once the tables and the model are loaded.")
    model_version: str = Field(description="Registry version of the champion model in memory.")
    n_titles: int = Field(description="Titles in the processed catalog (one per platform copy).")
    n_users: int = Field(description="Distinct users in the ratings table.")
    platforms: list[str] = Field(description="Platforms in the catalog.")
    uptime_seconds: float = Field(description="Seconds since the state was loaded.")
    load_seconds: float = Field(description="How long loading the tables and model took.")
    recommendation_cache: CacheOut


class VersionOut(BaseModel):
    api_version: str = Field(description="Version of the recsys_utils package serving.")
    version: str = Field(description="Registry version of the champion model (e.g. `v0003`).")
    trained_at: str | None = Field(description="When the model was registered (UTC ISO 8601).")
    data_fingerprint: str | None = Field(
        description="Fingerprint of the training table (`recsys_utils.fingerprint`)."
    )
    metrics: dict[str, float | None] = Field(
        description="Scalar metrics stored in the manifest (rmse, ndcg@10, ...)."
    )
    metrics_details: dict[str, Any] = Field(
        description="Non-scalar metric entries of the manifest (e.g. the holdout protocol)."
    )
    params: dict[str, Any] = Field(description="Training parameters from the manifest.")
    libraries: dict[str, str] = Field(description="Library versions the model was pickled with.")
    notes: str = Field(description="Why this version was registered.")


class TitleOut(BaseModel):
    """One title on one platform, with its audience (``analytics.parquet``)."""

    id: str = Field(description="Unique title id: platform prefix + show id (`ns123`).")
    item_id: str = Field(description="The model's key for this title.")
    platform: str
    show_id: str | None = Field(description="The platform's own id.")
    type: str = Field(description="`Movie` or `TV Show`.")
    title: str
    director: str | None
    cast: str | None = Field(description="Comma-separated cast, as published.")
    country: str | None
    genres: str | None
    description: str | None
    date_added: date | None
    release_year: int | None
    rating: str | None = Field(description="Maturity rating (`PG-13`, `TV-MA`, ...).")
    duration_int: int | None = Field(description="Minutes (movies) or seasons (shows).")
    duration_type: str | None = Field(description="`min` or `season`.")
    mean_score: float | None = Field(description="Mean user score, null when unrated.")
    n_ratings: int = Field(description="Number of ratings of the title.")


class RecommendedTitle(BaseModel):
    rank: int = Field(description="1 = best.")
    id: str = Field(description="Title id for `GET /titles/{id}`.")
    item_id: str
    title: str
    platform: str
    type: str
    score: float | None = Field(description="Predicted rating on the 0.5-5 scale.")


class RecommendationsOut(BaseModel):
    user_id: int
    cold_start: bool = Field(
        description="True when the user has no ratings in the model: the list is the "
        "cold-start (popularity) ranking, not a personal one."
    )
    platforms: list[str] | None = Field(description="The platform filter applied (null = all).")
    type: str | None = Field(description="The type filter applied (null = all).")
    model_version: str
    items: list[RecommendedTitle]


class SimilarTitle(BaseModel):
    id: str = Field(description="Title id for `GET /titles/{id}`.")
    item_id: str
    title: str
    platform: str
    similarity: float | None = Field(description="Similarity to the query title (higher = closer).")


class SimilarOut(BaseModel):
    id: str
    item_id: str
    title: str
    items: list[SimilarTitle]


class LongestOut(BaseModel):
    """The longest title of a platform/year slice (the seed's "longest movie")."""

    found: bool = Field(description="False when no title of the slice has a length.")
    platform: str | None = Field(description="Platform filter as matched (null = all).")
    year: int | None = Field(description="Release-year filter (null = all years).")
    duration_type: str = Field(description="`min` (movies, minutes) or `season` (shows).")
    kind: str | None = Field(description="Type filter (null = both).")
    id: str | None = Field(None, description="Title id of the winner, for `GET /titles/{id}`.")
    item_id: str | None = None
    title: str | None = None
    title_platform: str | None = Field(None, description="Platform the winning title is on.")
    type: str | None = None
    release_year: int | None = None
    duration_int: int | None = Field(None, description="Its length in `duration_type` units.")
    message: str = Field("", description="The answer in words.")


class ScoreCountOut(BaseModel):
    """How many titles of a slice have a mean audience score strictly above ``min_score``."""

    found: bool = Field(description="`count > 0`.")
    platform: str | None
    year: int | None
    kind: str | None
    min_score: float
    count: int = Field(description="Titles with mean score > min_score.")
    n_titles: int = Field(description="Titles in the slice.")
    n_rated: int = Field(description="Titles of the slice with at least one rating.")
    message: str = ""


class ActorOut(BaseModel):
    """The most frequent cast member of a platform/year slice."""

    found: bool = Field(description="False when no title of the slice lists a cast.")
    platform: str | None
    year: int | None
    actor: str | None = None
    n_titles: int = Field(0, description="Titles of the slice the actor appears in.")
    tied_with: list[str] = Field(default_factory=list, description="Actors with the same count.")
    n_titles_with_cast: int = 0
    message: str = ""


class CountsOut(BaseModel):
    """A count table: titles per platform, per country or per maturity rating."""

    found: bool = Field(description="`counts` is not empty.")
    by: str = Field(description="What is counted: `platform`, `country` or `rating`.")
    filters: dict[str, str | int | None] = Field(description="Filters as matched.")
    counts: dict[str, int] = Field(description="Value -> number of titles, largest first.")
    total: int
    n_missing: int = Field(description="Titles of the slice with no value for `by`.")
    message: str = ""


# --------------------------------------------------------------------------- builders


_TITLE_FIELDS = tuple(TitleOut.model_fields)


def _title_records(analytics: pd.DataFrame) -> dict[str, TitleOut]:
    """``TitleOut`` per title id, built once (so the request is a dict lookup)."""
    frame = analytics.copy()
    for column in _TITLE_FIELDS:
        if column not in frame.columns:
            frame[column] = None
    out: dict[str, TitleOut] = {}
    for row in frame[list(_TITLE_FIELDS)].to_dict("records"):
        out[str(row["id"])] = TitleOut(
            id=str(row["id"]),
            item_id=str(row["item_id"]),
            platform=str(row["platform"]),
            show_id=_opt_str(row["show_id"]),
            type=str(row["type"]),
            title=str(row["title"]),
            director=_opt_str(row["director"]),
            cast=_opt_str(row["cast"]),
            country=_opt_str(row["country"]),
            genres=_opt_str(row["genres"]),
            description=_opt_str(row["description"]),
            date_added=_opt_date(row["date_added"]),
            release_year=_opt_int(row["release_year"]),
            rating=_opt_str(row["rating"]),
            duration_int=_opt_int(row["duration_int"]),
            duration_type=_opt_str(row["duration_type"]),
            mean_score=_opt_float(row["mean_score"]),
            n_ratings=_opt_int(row["n_ratings"]) or 0,
        )
    return out


def _cache_out(cached: Any) -> CacheOut:
    if not hasattr(cached, "cache_info"):
        return CacheOut(hits=0, misses=0, size=0, max_size=0)
    info = cached.cache_info()
    return CacheOut(hits=info.hits, misses=info.misses, size=info.currsize,
                    max_size=info.maxsize or 0)


def _version_out(manifest: Mapping[str, Any]) -> VersionOut:
    metrics: dict[str, float | None] = {}
    details: dict[str, Any] = {}
    for key, value in (manifest.get("metrics") or {}).items():
        value = _clean(value)
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            metrics[str(key)] = None if value is None else float(value)
        else:
            details[str(key)] = value
    return VersionOut(
        api_version=__version__,
        version=str(manifest.get("version")),
        trained_at=_opt_str(manifest.get("created_at")),
        data_fingerprint=_opt_str(manifest.get("data_fingerprint")),
        metrics=metrics,
        metrics_details=details,
        params=_clean(manifest.get("params") or {}),
        libraries={str(k): str(v) for k, v in (manifest.get("libraries") or {}).items()},
        notes=str(manifest.get("notes") or ""),
    )


def _split_platforms(platforms: Sequence[str] | None) -> list[str] | None:
    """``?platforms=a&platforms=b`` and ``?platforms=a,b`` both mean ``[a, b]``."""
    if not platforms:
        return None
    names = [p.strip() for value in platforms for p in value.split(",") if p.strip()]
    return list(dict.fromkeys(names)) or None


@dataclass(frozen=True)
class RankedList:
    """A user's best ``RANKED_DEPTH`` titles with no filter, ready to be filtered and cut.

    Why one deep list per user instead of one cached answer per query: the
    ranking does not depend on the filters or on ``n`` (a filter only removes
    candidates; ``Recommendations`` documents the displayed platform as the
    first of the title's platforms, in sorted order, that the filter allows), so
    the top ``n`` within any filter is the first ``n`` entries of this list that
    pass the filter -- whenever at least ``n`` of them do, or when the list holds
    every candidate (``exhaustive``). Otherwise the model is asked directly.
    ``tests/test_api.py`` checks the equivalence against ``Recommender.recommend``.
    """

    cold_start: bool
    exhaustive: bool
    item_ids: tuple[str, ...]
    titles: tuple[str, ...]
    types: tuple[str, ...]
    scores: tuple[float | None, ...]
    platforms: tuple[tuple[str, ...], ...]  # each title's platforms, sorted


def _ranked_list(state: ServingState, recs: Any, depth: int) -> RankedList:
    items = recs.items
    # Whole columns at once: per-row pandas access costs more than the ranking.
    ids = [str(i) for i in items["item_id"].tolist()]
    scores = np.round(items["score"].to_numpy(dtype=np.float64), 3).tolist()
    return RankedList(
        cold_start=bool(recs.cold_start),
        exhaustive=len(ids) < depth,
        item_ids=tuple(ids),
        titles=tuple(str(t) for t in items["title"].tolist()),
        types=tuple(str(t) for t in items["type"].tolist()),
        scores=tuple(v if math.isfinite(v) else None for v in scores),
        platforms=tuple(state.platforms_by_item.get(i, ()) for i in ids),
    )


def _select(state: ServingState, ranked: RankedList, n: int,
            platforms: frozenset[str] | None, kind: str | None) -> list[RecommendedTitle] | None:
    """The first ``n`` entries of ``ranked`` within the filters; ``None`` when the list
    is too short to be sure they are the top ``n`` (then the model is asked)."""
    out: list[RecommendedTitle] = []
    for k, item in enumerate(ranked.item_ids):
        if kind is not None and ranked.types[k] != kind:
            continue
        shown = ranked.platforms[k]
        if platforms is not None:
            shown = tuple(p for p in shown if p in platforms)
            if not shown:
                continue
        platform = shown[0] if shown else ""
        # model_construct: every value comes typed from RankedList, so skip validation
        out.append(RecommendedTitle.model_construct(
            rank=len(out) + 1, id=_first_id(state, item, platform), item_id=item,
            title=ranked.titles[k], platform=platform, type=ranked.types[k],
            score=ranked.scores[k]))
        if len(out) == n:
            return out
    return out if ranked.exhaustive else None


def _recommended_titles(state: ServingState, recs: Any) -> list[RecommendedTitle]:
    """A ``Recommendations.items`` frame as response objects (the uncached path)."""
    items = recs.items
    columns = [items[c].tolist() for c in ("rank", "item_id", "title", "platform", "type",
                                             "score")]
    return [
        RecommendedTitle(rank=int(rank), id=_first_id(state, str(item), str(platform)),
                         item_id=str(item), title=str(title), platform=str(platform),
                         type=str(kind_), score=_opt_float(score, 3))
        for rank, item, title, platform, kind_, score in zip(*columns, strict=True)
    ]


def _first_id(state: ServingState, item_id: str, platform: str) -> str:
    """The title id of ``item_id`` on ``platform`` (ids equal item ids except in `linked`)."""
    return state.ids_by_item.get((item_id, platform), item_id)


def _platforms_by_item(titles: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """``item_id -> its platforms, sorted`` (a film can be on several in `linked`)."""
    frame = titles[["item_id", "platform"]].astype(str).drop_duplicates()
    grouped = frame.sort_values(["item_id", "platform"]).groupby("item_id", sort=False)
    return {str(item): tuple(group["platform"]) for item, group in grouped}


def _ids_by_item(titles: pd.DataFrame) -> dict[tuple[str, str], str]:
    """``(item_id, platform) -> id``; only rows where they differ (the `linked` source)."""
    frame = titles.loc[titles["id"].astype(str) != titles["item_id"].astype(str),
                       ["id", "item_id", "platform"]].astype(str)
    return {(i, p): t for t, i, p in frame.itertuples(index=False, name=None)}


# --------------------------------------------------------------------------- error handlers


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        FieldErrorOut(location=_location(err.get("loc", ())), message=str(err.get("msg", "")))
        for err in exc.errors()
    ]
    first = errors[0] if errors else FieldErrorOut(location="request", message="invalid")
    loc = first.location.split(".")
    where = f"{loc[0]} parameter '{'.'.join(loc[1:])}'" if len(loc) > 1 else first.location
    body = ErrorOut(detail=f"{where}: {first.message}", field=loc[-1], errors=errors)
    return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))


async def _unknown_filter_handler(request: Request, exc: UnknownFilterError) -> JSONResponse:
    # An unknown platform or rating is an unknown *resource* (404); the valid
    # values are listed so the client can fix the call.
    body = ErrorOut(detail=str(exc), field=exc.field, valid=list(exc.valid))
    return JSONResponse(status_code=404, content=body.model_dump(exclude_none=True))


async def _unknown_item_handler(request: Request, exc: UnknownItemError) -> JSONResponse:
    body = ErrorOut(detail=str(exc), field="id")
    return JSONResponse(status_code=404, content=body.model_dump(exclude_none=True))


async def _http_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    body = ErrorOut(detail=str(exc.detail))
    return JSONResponse(status_code=exc.status_code, content=body.model_dump(exclude_none=True),
                        headers=getattr(exc, "headers", None))


async def _value_error_handler(request: Request, exc: ValueError) -> JSONResponse:
    # A library function rejected a value the schema let through: still the
    # client's input, so 422 rather than 500 (logged, as the schema should catch it).
    log.warning("ValueError on %s: %s", request.url.path, exc)
    body = ErrorOut(detail=str(exc))
    return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": "internal error (logged)"})


# --------------------------------------------------------------------------- app


def warm_cache(state: ServingState, ranked: Any, seconds: float, capacity: int) -> int:
    """Fill the cache with the ranked list of the most active users (bounded in time
    and by the cache capacity); returns how many users were warmed. The cold-start
    list goes first: every unknown user shares it."""
    deadline = time.perf_counter() + seconds
    ranked(None)
    warmed = 0
    for user in state.active_users[: max(capacity - 1, 0)]:
        if time.perf_counter() > deadline:
            break
        ranked(user)
        warmed += 1
    return warmed



def create_app(paths: ProjectPaths | None = None, *, state: ServingState | None = None,
               cache_size: int | None = None, warm_seconds: float | None = None) -> FastAPI:
    """The API app. Tables and model load once, in the lifespan (or pass a loaded ``state``).

    Args:
        paths: the project tree to serve (default ``project_paths()``, i.e. the
            repository or ``$RECSYS_ROOT``).
        state: an already loaded ``ServingState`` (``recsys-serve`` loads it before
            binding the port so a missing artifact is a clean error, not a traceback).
        cache_size: users whose ranked list is kept in memory (LRU; 0 disables;
            default ``$RECSYS_CACHE_SIZE`` or ``DEFAULT_CACHE_SIZE``).
        warm_seconds: at startup, spend up to this long computing the ranked lists
            of the most active users into the cache, so their first request is a
            lookup (default ``$RECSYS_WARM_SECONDS`` or 0).
    """
    if cache_size is None:
        cache_size = int(os.environ.get("RECSYS_CACHE_SIZE", DEFAULT_CACHE_SIZE))
    if warm_seconds is None:
        warm_seconds = float(os.environ.get("RECSYS_WARM_SECONDS", 0))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.serving is None:
            try:
                app.state.serving = load_state(paths)
            except DataError as exc:
                # Under a bare `uvicorn --factory recsys_utils.serving.api:create_app` this is
                # the line to read above uvicorn's "Application startup failed".
                log.error("error: %s", exc)
                raise
            log.info("loaded model %s in %.2f s", app.state.serving.manifest.get("version"),
                     app.state.serving.load_seconds)
        if warm_seconds > 0 and cache_size > 0:
            warmed = warm_cache(app.state.serving, ranked, warm_seconds, cache_size)
            log.info("warmed the recommendation cache with %d users", warmed)
        yield

    app = FastAPI(
        title="Streaming recommender API",
        version=__version__,
        description=(
            "Recommendations from the champion model and platform analytics over the "
            "processed catalog. Errors answer `{detail, field, valid, errors}`."
        ),
        lifespan=lifespan,
        # operationIds are the handler names (get_title, recommendations, ...): stable
        # names for generated clients and for the OpenAPI links above.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.serving = state

    def current() -> ServingState:
        return app.state.serving

    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(UnknownFilterError, _unknown_filter_handler)  # type: ignore[arg-type]
    app.add_exception_handler(UnknownItemError, _unknown_item_handler)  # type: ignore[arg-type]
    app.add_exception_handler(ValueError, _value_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_handler)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_handler)

    # ----------------------------------------------------------------- service

    @app.get("/health", response_model=HealthOut, tags=["service"])
    async def health() -> HealthOut:
        """Liveness and readiness: 200 once the tables and the model are in memory."""
        s = current()
        return HealthOut(
            status="ok",
            model_version=str(s.manifest.get("version")),
            n_titles=len(s.titles_by_id),
            n_users=s.n_users,
            platforms=s.platforms,
            uptime_seconds=round(time.time() - s.loaded_at, 3),
            load_seconds=s.load_seconds,
            recommendation_cache=_cache_out(app.state.recommendation_cache),
        )

    @app.get("/version", response_model=VersionOut, tags=["service"])
    async def version() -> VersionOut:
        """The champion model's manifest: version, trained at, data fingerprint, metrics."""
        return _version_out(current().manifest)

    # ----------------------------------------------------------------- titles

    @app.get("/titles/{title_id}", response_model=TitleOut, tags=["titles"],
             responses={**_ERRORS_404_422, **_link_to_titles("$response.body#/id",
                                                               "this title")})
    async def get_title(title_id: TitleId) -> TitleOut:
        """One title with its audience (mean score, number of ratings)."""
        record = current().titles_by_id.get(title_id)
        if record is None:
            raise UnknownItemError(title_id, f"unknown title id {title_id!r}")
        return record

    @app.get("/titles/{title_id}/similar", response_model=SimilarOut, tags=["titles"],
             responses={**_ERRORS_404_422, **_link_to_titles("$response.body#/items/0/id",
                                                               "the most similar title")})
    async def similar_titles(title_id: TitleId, n: N = 10) -> SimilarOut:
        """Titles most similar to this one in the model's item space."""
        s = current()
        record = s.titles_by_id.get(title_id)
        if record is None:
            raise UnknownItemError(title_id, f"unknown title id {title_id!r}")
        try:
            frame = s.recommender.similar(record.item_id, n=n)
        except KeyError as exc:  # UnknownItemError: the title has no ratings in the model
            raise UnknownItemError(
                title_id, f"title {title_id!r} has no ratings in the model, so no neighbours"
            ) from exc
        items = [
            SimilarTitle(id=_first_id(s, str(item), str(platform)), item_id=str(item),
                         title=str(title), platform=str(platform),
                         similarity=_opt_float(sim, 4))
            for item, title, platform, sim in zip(
                frame["item_id"].tolist(), frame["title"].tolist(), frame["platform"].tolist(),
                frame["similarity"].tolist(), strict=True)
        ]
        return SimilarOut(id=record.id, item_id=record.item_id, title=record.title, items=items)

    # ----------------------------------------------------------------- recommendations

    def _deep(user: int | None) -> RankedList:
        """The unfiltered top ``RANKED_DEPTH`` of a known user (``None``: cold start)."""
        recs = current().recommender.recommend(UNKNOWN_USER_KEY if user is None else user,
                                               n=RANKED_DEPTH)
        return _ranked_list(current(), recs, RANKED_DEPTH)

    def _live(user: int | None, n: int, platforms: tuple[str, ...] | None,
              kind: str | None) -> list[RecommendedTitle]:
        """Ask the model for this exact query (a filter that leaves too few of the top)."""
        recs = current().recommender.recommend(UNKNOWN_USER_KEY if user is None else user,
                                               n=n, platforms=list(platforms or ()) or None,
                                               kind=kind)
        return _recommended_titles(current(), recs)

    if cache_size > 0:
        deep, live = lru_cache(maxsize=cache_size)(_deep), lru_cache(maxsize=cache_size)(_live)
    else:
        deep, live = _deep, _live
    app.state.recommendation_cache = deep  # cache_info() for /health and tests
    ranked = deep  # what warm_cache fills

    @app.get("/users/{user_id}/recommendations", response_model=RecommendationsOut,
             tags=["recommendations"],
             responses={**_ERRORS_404_422, **_link_to_titles("$response.body#/items/0/id",
                                                               "the first recommendation")})
    async def recommendations(
        user_id: Annotated[int, Path(ge=0, le=INT32_MAX, description="User id (int32).")],
        n: N = DEFAULT_N,
        platforms: Annotated[
            list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LEN * 8)]]
            | None,
            Query(max_length=MAX_PLATFORMS,
                  description="Only these platforms: repeat the parameter or separate by commas."),
        ] = None,
        kind: Annotated[Kind | None, Query(alias="type", description="Only this type.")] = None,
    ) -> RecommendationsOut:
        """Top-n titles the user has not rated; an unknown user gets the cold-start list."""
        s = current()
        names = _split_platforms(platforms)
        kind_value = kind.value if kind is not None else None
        valid = s.recommender.platforms
        for name in names or ():
            if name not in valid:
                raise UnknownFilterError("platform", name, valid)
        # Every unknown user gets the same cold-start list: one cache entry for all.
        key_user = user_id if s.recommender.known_user(user_id) else None
        ranked_list = deep(key_user)
        items = _select(s, ranked_list, n, frozenset(names) if names else None, kind_value)
        if items is None:
            items = live(key_user, n, tuple(sorted(names)) if names else None, kind_value)
        return RecommendationsOut(
            user_id=user_id, cold_start=ranked_list.cold_start, platforms=names,
            type=kind_value, model_version=str(s.manifest.get("version")), items=items)

    # ----------------------------------------------------------------- analytics
    # Plain `def`: these run a few ms of pandas, so they go to the thread pool and
    # never hold the event loop that the recommendation requests use. Answers are
    # cached per parameter set: the tables never change while the app runs.

    @lru_cache(maxsize=2048)
    def cached(name: str, *args: Any) -> dict[str, Any]:
        from recsys_utils.explore import analytics

        result = getattr(analytics, name)(current().analytics, *args)
        return _clean(result.to_dict())

    def _value(kind: Kind | DurationType | None) -> str | None:
        return None if kind is None else kind.value

    @app.get("/analytics/longest", response_model=LongestOut, responses=_ERRORS_404_422,
             tags=["analytics"])
    def longest(platform: Platform = None, year: Year = None,
                duration_type: Annotated[DurationType, Query(
                    description="`min` (movies, in minutes) or `season` (shows)")] =
                DurationType.min,
                kind: KindQ = None) -> LongestOut:
        """The longest title on a platform released in a year (by minutes or seasons)."""
        answer = dict(cached("longest_title", platform, year, duration_type.value, _value(kind)))
        if answer.get("item_id") is not None and answer.get("title_platform") is not None:
            answer["id"] = _first_id(current(), answer["item_id"], answer["title_platform"])
        return LongestOut(**answer)

    @app.get("/analytics/count-above-score", response_model=ScoreCountOut,
             responses=_ERRORS_404_422, tags=["analytics"])
    def count_above_score(platform: Platform = None, year: Year = None,
                          min_score: Annotated[float, Query(
                              ge=0, le=5, allow_inf_nan=False,
                              description="Mean audience score threshold (strictly above).")]
                          = 4.0,
                          kind: KindQ = None) -> ScoreCountOut:
        """How many titles of a platform/year have a mean audience score above ``min_score``."""
        return ScoreCountOut(**cached("count_titles_above_score", platform, year,
                                      float(min_score), _value(kind)))

    @app.get("/analytics/titles-per-platform", response_model=CountsOut,
             responses=_ERRORS_404_422, tags=["analytics"])
    def per_platform(kind: KindQ = None) -> CountsOut:
        """Number of titles on each platform."""
        return CountsOut(**cached("titles_per_platform", _value(kind)))

    @app.get("/analytics/top-actor", response_model=ActorOut, responses=_ERRORS_404_422,
             tags=["analytics"])
    def top_actor(platform: Platform = None, year: Year = None) -> ActorOut:
        """The actor appearing in the most titles of a platform released in a year."""
        return ActorOut(**cached("top_actor", platform, year))

    @app.get("/analytics/productions-per-country", response_model=CountsOut,
             responses=_ERRORS_404_422, tags=["analytics"])
    def per_country(kind: KindQ = None, year: Year = None,
                    country: Annotated[str | None, Query(max_length=MAX_ID_LEN,
                                                         description="One country only.")] = None,
                    platform: Platform = None,
                    top_n: Annotated[int | None, Query(ge=1, le=1000,
                                                       description="Keep the largest counts.")]
                    = None) -> CountsOut:
        """Number of productions per country, by type and release year."""
        return CountsOut(**cached("productions_per_country", _value(kind), year, country,
                                  platform, top_n))

    @app.get("/analytics/titles-per-rating", response_model=CountsOut,
             responses=_ERRORS_404_422, tags=["analytics"])
    def per_rating(rating: Annotated[str | None, Query(max_length=MAX_ID_LEN,
                                                       description="One maturity rating.")]
                   = None, platform: Platform = None) -> CountsOut:
        """Number of titles per maturity rating (or for one rating)."""
        return CountsOut(**cached("titles_per_maturity_rating", rating, platform))

    return app


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``recsys-serve``: load the artifacts, then serve the API with uvicorn."""
    parser = argparse.ArgumentParser(
        prog="recsys-serve", description="Serve the recommender REST API (docs at /docs)."
    )
    parser.add_argument("--host", default=os.environ.get("RECSYS_HOST", "127.0.0.1"),
                        help="interface to bind (default 127.0.0.1; 0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("RECSYS_PORT", "8000")))
    parser.add_argument("--root", default=None,
                        help="project root holding data/processed and outputs/models "
                             "(default: the repository or $RECSYS_ROOT)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                        help="log every request (off for load tests)")
    parser.add_argument("--cache-size", type=int,
                        default=int(os.environ.get("RECSYS_CACHE_SIZE", DEFAULT_CACHE_SIZE)),
                        help="recommendation lists kept in memory per worker "
                             f"(LRU; 0 disables; default {DEFAULT_CACHE_SIZE})")
    parser.add_argument("--warm-seconds", type=float,
                        default=float(os.environ.get("RECSYS_WARM_SECONDS", 30)),
                        help="at startup, precompute the ranked lists of the most active "
                             "users for up to this long (default 30; 0 = off)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, each with its own copy of the model "
                             "(default 1; up to the number of cores for more throughput)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    paths = project_paths(args.root)
    try:
        # Load before binding the port: a missing artifact is one clear line, not
        # a traceback from inside the server.
        state = load_state(paths)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    common = {"host": args.host, "port": args.port, "log_level": args.log_level,
              "access_log": args.access_log}
    if args.workers > 1:
        # Each worker process imports the app factory and loads its own state in
        # its lifespan; the root reaches them through the environment.
        del state
        os.environ["RECSYS_ROOT"] = str(paths.root)
        os.environ["RECSYS_CACHE_SIZE"] = str(args.cache_size)
        os.environ["RECSYS_WARM_SECONDS"] = str(args.warm_seconds)
        uvicorn.run("recsys_utils.serving.api:create_app", factory=True, workers=args.workers, **common)
    else:
        uvicorn.run(create_app(paths, state=state, cache_size=args.cache_size,
                               warm_seconds=args.warm_seconds), **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
