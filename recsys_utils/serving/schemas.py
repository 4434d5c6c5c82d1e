"""The API's contract: request limits, the enums and every response model.

Why a module of its own: these classes *are* the OpenAPI schema (``/openapi.json``,
pinned by ``tests/openapi_snapshot.json``); routes, state and the demo build them but
never define them. A response model's docstring and field descriptions are what
``/docs`` shows. The ``clean``/``opt_*`` helpers say how a table value becomes a
JSON field (NaN, NA and NaT become null: NaN never reaches the JSON encoder).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recsys_utils.data.ratings import MAX_SCORE, MIN_SCORE

__all__ = [
    "INT32_MAX",
    "MAX_BODY_BYTES",
    "MAX_ID_LEN",
    "MAX_N",
    "MAX_PLATFORMS",
    "MAX_RATINGS",
    "ActorOut",
    "CacheOut",
    "CountsOut",
    "DurationType",
    "ErrorOut",
    "FieldErrorOut",
    "HealthOut",
    "Kind",
    "LongestOut",
    "NewUserRatingsIn",
    "NewUserRecommendationsOut",
    "RatingIn",
    "RecommendationsOut",
    "RecommendedTitle",
    "ReloadOut",
    "ScoreCountOut",
    "SimilarOut",
    "SimilarTitle",
    "TitleOut",
    "VersionOut",
    "clean",
]

#: Largest ``n`` a client may ask for: bounds the work (and the payload) of one request.
MAX_N = 100
#: User ids are int32 in the processed tables; larger ints cannot be a known user.
INT32_MAX = 2**31 - 1
#: Longest title id accepted (ids are a platform prefix plus a show id: a few characters).
MAX_ID_LEN = 64
#: Most platforms one request may filter on.
MAX_PLATFORMS = 32
#: Most ratings one ``POST /recommendations`` may carry: bounds the body and the time
#: one request holds the event loop (the fold-in itself is ~1-2 ms for 10-200 ratings on
#: the default data, one vectorized id lookup). A new user rates a handful; a user with
#: hundreds of ratings belongs in training.
MAX_RATINGS = 200
#: Scores are on the ratings table's scale: 0.5 to 5 in half steps.
SCORE_STEP = 0.5
#: Largest request body read (bytes; ``$RECSYS_MAX_BODY_BYTES`` or ``--max-body-bytes``
#: change it): ``MAX_RATINGS`` ratings with ids of ``MAX_ID_LEN`` characters are ~20 KB
#: (~10 KB with real ids), so this only refuses bodies no client needs. Without it, a
#: 200 MB body was read and parsed whole (+470 MB of server memory) before its 422.
MAX_BODY_BYTES = 64 * 1024


# --------------------------------------------------------------------------- JSON values


def clean(value: Any) -> Any:
    """A value safe for JSON: numpy scalars → Python, NaN/NA/NaT/inf → None, recursively."""
    if value is None or value is pd.NaT or value is pd.NA:  # NaT is a datetime instance
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [clean(v) for v in value]
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


def opt_str(value: Any) -> str | None:
    value = clean(value)
    return None if value is None else str(value)


def opt_int(value: Any) -> int | None:
    value = clean(value)
    return None if value is None else int(value)


def opt_float(value: Any, digits: int = 4) -> float | None:
    value = clean(value)
    return None if value is None else round(float(value), digits)


def opt_date(value: Any) -> date | None:
    value = clean(value)
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


# --------------------------------------------------------------------------- enums


class Kind(StrEnum):
    """Title type, as in the ``type`` column of the processed tables."""

    movie = "Movie"
    tv_show = "TV Show"


class DurationType(StrEnum):
    """Unit of ``duration_int``: minutes for movies, seasons for shows."""

    min = "min"
    season = "season"


# --------------------------------------------------------------------------- response models


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


class CacheOut(BaseModel):
    hits: int = Field(description="Recommendation lists served from the cache.")
    misses: int = Field(description="Lists computed by the model.")
    size: int = Field(description="Lists in the cache now.")
    max_size: int = Field(description="Capacity (0 = caching disabled).")


class ReloadOut(BaseModel):
    """The champion watch: the server reloads the model when ``champion.json`` changes."""

    check_seconds: float = Field(
        description="How often the champion pointer is checked (0 = never: restart to reload).")
    checked_at: str | None = Field(description="Last check of the pointer (UTC ISO 8601).")
    reloads: int = Field(description="Champions loaded since the server started.")
    reloaded_at: str | None = Field(description="When the model in memory was swapped in.")
    error: str | None = Field(
        description="Why the champion the pointer names could not be loaded (null when the "
        "last attempt succeeded); the previous model keeps serving until the pointer "
        "changes again.")
    failed_version: str | None = Field(description="The version that failed to load.")


_MODEL_KIND_HELP = ("`recommender` (a fitted `Recommender`) or `spark_batch` (a Spark ALS "
                   "batch version: precomputed top-N lists per user and platform, filters "
                   "applied per request; a type filter can leave fewer than `n` titles).")


class HealthOut(BaseModel):
    status: str = Field(
        description="`ok` once the tables and the model are loaded; `stale` when the champion "
        "pointer names a model that failed to load (see `reload.error`): the previous "
        "model is still served.")
    model_version: str = Field(description="Registry version of the champion model in memory.")
    model_kind: str = Field(description=_MODEL_KIND_HELP)
    n_titles: int = Field(description="Titles in the processed catalog (one per platform copy).")
    n_users: int = Field(description="Distinct users in the ratings table (a `spark_batch` "
                         "champion: users with a stored list).")
    platforms: list[str] = Field(description="Platforms in the catalog.")
    uptime_seconds: float = Field(description="Seconds since the state was loaded.")
    load_seconds: float = Field(description="How long loading the tables and model took.")
    recommendation_cache: CacheOut
    reload: ReloadOut


class VersionOut(BaseModel):
    api_version: str = Field(description="Version of the recsys_utils package serving.")
    version: str = Field(description="Registry version of the champion model (e.g. `v0003`).")
    model_kind: str = Field(description=_MODEL_KIND_HELP)
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
    platform: str = Field(description="The first of `platforms`; `id` is the title's id there.")
    platforms: list[str] = Field(description="Every platform the title is on, within the "
                                 "platform filter, sorted (one title listed by several "
                                 "platforms is recommended once).")
    type: str
    score: float | None = Field(description="Predicted rating on the 0.5-5 scale (a "
                                "`spark_batch` champion's known user: the ALS score the "
                                "list is ordered by).")


class RecommendationsOut(BaseModel):
    user_id: int
    cold_start: bool = Field(
        description="True when the user has no ratings in the model, or fewer than the "
        "model's new-user policy asks for: the list is the cold-start ranking (the most "
        "rated or the best Bayesian-average titles, without those rated), not a personal one."
    )
    platforms: list[str] | None = Field(description="The platform filter applied (null = all).")
    type: str | None = Field(description="The type filter applied (null = all).")
    model_version: str
    items: list[RecommendedTitle]


class RatingIn(BaseModel):
    """One title the new user rated."""

    model_config = ConfigDict(extra="forbid")

    # strict: a JSON string only (never a number turned into an id) and a JSON number
    # only (`true` or `"4"` is a client bug, not a score of 1 or 4)
    title_id: str = Field(min_length=1, max_length=MAX_ID_LEN, strict=True,
                          description="Title id, as in `GET /titles/{id}`.")
    score: float = Field(ge=MIN_SCORE, le=MAX_SCORE, multiple_of=SCORE_STEP,
                         allow_inf_nan=False, strict=True,
                         description=f"The user's score, {MIN_SCORE:g} to {MAX_SCORE:g} "
                         f"in steps of {SCORE_STEP:g}.")


class NewUserRatingsIn(BaseModel):
    """What a user the model does not know has rated (each title at most once)."""

    model_config = ConfigDict(extra="forbid")

    ratings: list[RatingIn] = Field(
        max_length=MAX_RATINGS,
        description=f"Up to {MAX_RATINGS} ratings; an empty list (or fewer than the "
        "model's new-user policy asks for) gets the cold-start list.")


class NewUserRecommendationsOut(BaseModel):
    cold_start: bool = Field(
        description="True when no rating was given, or fewer than the model's new-user "
        "policy asks for: the list is the cold-start ranking (without the rated titles), "
        "not a personal one.")
    n_ratings: int = Field(description="Ratings the list was computed from.")
    platforms: list[str] | None = Field(description="The platform filter applied (null = all).")
    type: str | None = Field(description="The type filter applied (null = all).")
    model_version: str
    items: list[RecommendedTitle] = Field(description="Best first; never a rated title.")


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
    basis: str | None = Field(description="`ratings`: neighbours in the model's item space "
                              "(viewers who liked one liked the other); `content`: the title "
                              "has no ratings, so the titles closest in genres, release "
                              "period, kind and age rating; null when there are none.")
    items: list[SimilarTitle]


class LongestOut(BaseModel):
    """The longest title of a platform/year slice (the first version's "longest movie")."""

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
