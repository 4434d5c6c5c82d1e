"""The API's endpoints, one ``APIRouter`` per tag: service, titles, recommendations, analytics.

Every handler gets the loaded state through ``Depends(get_state)`` (``State`` below), so
a test can serve any state with ``app.dependency_overrides[get_state]``, and a request
finishes on the state it started with when a new champion is swapped in (``state.
ChampionWatch``). The app's cache
is reached through the request (``cache_of(request)``), not a second ``Depends``: each
dependency costs FastAPI ~15 us per request, ~10% of a cached recommendation (measured
in-process, 2,000 requests), and the cache needs no override (it keys on the state).
``app.create_app`` includes ``ROUTERS`` in order.

Why the handlers are shaped this way:

* **No 500 for any input.** Every parameter is typed and bounded (``n`` ≤ 100, ids
  are int32 / short strings, the POST body is ``schemas.NewUserRatingsIn``) so bad input
  is a 422 with a readable message; unknown platforms and titles are 404s that list what
  is valid (or, for rated titles, quote a few of the unknown ids). Response models
  (``schemas``) document every field; the schemathesis test fuzzes the schema.
* **The request path is short.** Recommendation handlers are ``async def``: the work
  is a few ms of numpy/scipy that mostly holds the GIL, so threads buy no
  parallelism, and a sync handler pays two thread-pool hops (FastAPI runs sync
  handlers *and* their response validation in the pool). Measured with
  ``benchmarks/bench_load.py`` (2,000 requests, 16 concurrent, same machine and
  minute): ``async def`` p99 128-137 ms vs ``def`` 222-263 ms and ~1.3-2x the server
  CPU per request. ``POST /recommendations`` too: its work grows with the number of
  ratings, which ``MAX_RATINGS`` bounds (~0.1 s at the limit, measured on the default
  data). Analytics handlers are plain ``def`` (pandas, cached) so a slow first answer
  never blocks the event loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException

from recsys_utils import __version__
from recsys_utils.errors import UnknownItemError, excerpt
from recsys_utils.lifecycle import registry
from recsys_utils.serving.schemas import (
    INT32_MAX,
    MAX_BODY_BYTES,
    MAX_ID_LEN,
    MAX_N,
    MAX_PLATFORMS,
    ActorOut,
    CountsOut,
    DurationType,
    ErrorOut,
    HealthOut,
    Kind,
    LongestOut,
    NewUserRatingsIn,
    NewUserRecommendationsOut,
    RecommendationsOut,
    ScoreCountOut,
    SimilarOut,
    SimilarTitle,
    TitleOut,
    VersionOut,
    clean,
    opt_float,
    opt_str,
)
from recsys_utils.serving.state import (
    ServingState,
    cache_of,
    canonical_platforms,
    first_id,
    get_state,
    recommend_new_user,
    watch_of,
)

__all__ = [
    "ROUTERS",
    "BodyError",
    "analytics_routes",
    "recommendation_routes",
    "service_routes",
    "title_routes",
]

# --------------------------------------------------------------------------- parameter rules
# Each rule is one regex, enforced here with Python's `re` and published as the schema's
# `pattern`, which clients and schemathesis read with other engines (ECMA-262, Rust).
# "Blank" is spelled out as the six ASCII blanks because `\s` differs between them
# (Python's counts \x1c-\x1f, ECMA's \ufeff).

#: What "blank" means in these rules (and what a platform name is stripped of).
BLANKS = " \t\n\r\f\v"
_BLANK_CLASS = r" \t\n\r\f\v"  # BLANKS as a regex character class
#: A filter value with something in it: an empty or blank value is a 422, not a filter
#: that matches nothing (to filter on nothing, leave the parameter out).
NON_BLANK = rf"[^{_BLANK_CLASS}]"
_NAME = rf"[{_BLANK_CLASS}]*[^{_BLANK_CLASS},][^,]*"
#: A `platforms` value: comma-separated names, none of them blank (`,,,` or `netflix,`).
PLATFORM_NAMES = rf"^{_NAME}(,{_NAME})*$"


def _rule(pattern: str, message: str) -> AfterValidator:
    """A validator refusing (422, ``message``) a value in which ``pattern`` is not found."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.search(value) is None:
            raise PydanticCustomError("value_error", message)
        return value

    return AfterValidator(check)


def _plain_digits(value: object) -> object:
    """A user id as the URL writes it: ASCII digits, no leading zero. Pydantic reads an int
    loosely, so `1_0` was user 10 and `+1`, ` 1`, `01` or `1.0` user 1: one id, one spelling."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()
                                       and (value == "0" or not value.startswith("0"))):
        raise PydanticCustomError(
            "value_error", "a user id is digits only, without sign, blank, '_', '.' or "
                           "leading zero (e.g. 42)")
    return value


# Parameter types shared by several routes (module level: FastAPI resolves the
# string annotations of `from __future__ import annotations` against module globals).
State = Annotated[ServingState, Depends(get_state)]
TitleId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LEN,
                              description="Title id (`ml1`, `ns123`, ...).")]
UserId = Annotated[int, Path(ge=0, le=INT32_MAX,
                             description="User id (int32; digits only, no leading zero)."),
                   BeforeValidator(_plain_digits)]
N = Annotated[int, Query(ge=1, le=MAX_N, description=f"How many titles (1-{MAX_N}).")]
#: The default list size (`n`).
DEFAULT_N = 10
#: A text filter of the analytics routes (platform, country, maturity rating).
FilterText = Annotated[str, StringConstraints(max_length=MAX_ID_LEN),
                       _rule(NON_BLANK, "must not be empty or blank (leave the parameter "
                                        "out for no filter)"),
                       Field(json_schema_extra={"pattern": NON_BLANK})]
Platform = Annotated[FilterText | None, Query(description="Platform (null = all platforms).")]
Year = Annotated[int | None, Query(ge=1800, le=2100, description="Release year.")]
KindQ = Annotated[Kind | None, Query(alias="type", description="Title type.")]
#: The recommendation filters (`GET /users/{id}/recommendations`, `POST /recommendations`).
Platforms = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LEN * 8),
                   _rule(PLATFORM_NAMES, "every comma-separated platform name must be "
                                         "non-blank"),
                   Field(json_schema_extra={"pattern": PLATFORM_NAMES})]] | None,
    Query(max_length=MAX_PLATFORMS,
          description="Only these platforms: repeat the parameter or separate by commas."),
]
KindFilter = Annotated[Kind | None, Query(alias="type", description="Only this type.")]

_ERRORS_404_422: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Unknown platform, user filter value or title."},
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


# --------------------------------------------------------------------------- service

service_routes = APIRouter(tags=["service"])


@service_routes.get("/health", response_model=HealthOut)
async def health(state: State, request: Request) -> HealthOut:
    """Liveness and readiness: 200 once the tables and the model are in memory
    (`status` is `stale` while a newly promoted champion failed to load: `reload.error`)."""
    reload = watch_of(request).info()
    return HealthOut(
        status="stale" if reload.error else "ok",
        model_version=str(state.manifest.get("version")),
        model_kind=model_kind(state.manifest),
        n_titles=len(state.titles_by_id),
        n_users=state.n_users,
        platforms=state.platforms,
        uptime_seconds=round(time.time() - state.loaded_at, 3),
        load_seconds=state.load_seconds,
        recommendation_cache=cache_of(request).info(),
        reload=reload,
    )


@service_routes.get("/version", response_model=VersionOut)
async def version(state: State) -> VersionOut:
    """The champion model's manifest: version, trained at, data fingerprint, metrics."""
    return version_out(state.manifest)


def model_kind(manifest: Mapping[str, Any]) -> str:
    """``spark_batch`` for a Spark batch version (``scale_out.batch``), else ``recommender``."""
    return "spark_batch" if registry.is_batch_manifest(manifest) else "recommender"


def version_out(manifest: Mapping[str, Any]) -> VersionOut:
    """The manifest as ``VersionOut``: scalar metrics apart from the other entries."""
    metrics: dict[str, float | None] = {}
    details: dict[str, Any] = {}
    for key, value in (manifest.get("metrics") or {}).items():
        value = clean(value)
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            metrics[str(key)] = None if value is None else float(value)
        else:
            details[str(key)] = value
    return VersionOut(
        api_version=__version__,
        version=str(manifest.get("version")),
        model_kind=model_kind(manifest),
        trained_at=opt_str(manifest.get("created_at")),
        data_fingerprint=opt_str(manifest.get("data_fingerprint")),
        metrics=metrics,
        metrics_details=details,
        params=clean(manifest.get("params") or {}),
        libraries={str(k): str(v) for k, v in (manifest.get("libraries") or {}).items()},
        notes=str(manifest.get("notes") or ""),
    )


# --------------------------------------------------------------------------- titles

title_routes = APIRouter(tags=["titles"])


@title_routes.get("/titles/{title_id}", response_model=TitleOut,
            responses={**_ERRORS_404_422, **_link_to_titles("$response.body#/id",
                                                              "this title")})
async def get_title(state: State, title_id: TitleId) -> TitleOut:
    """One title with its audience (mean score, number of ratings)."""
    record = state.titles_by_id.get(title_id)
    if record is None:
        raise UnknownItemError(title_id, f"unknown title id {excerpt(title_id)}")
    return record


@title_routes.get("/titles/{title_id}/similar", response_model=SimilarOut,
            responses={**_ERRORS_404_422, **_link_to_titles("$response.body#/items/0/id",
                                                              "the most similar title")})
async def similar_titles(state: State, title_id: TitleId, n: N = 10) -> SimilarOut:
    """Titles most similar to this one in the model's item space."""
    record = state.titles_by_id.get(title_id)
    if record is None:
        raise UnknownItemError(title_id, f"unknown title id {excerpt(title_id)}")
    try:
        frame = state.recommender.similar(record.item_id, n=n)
    except KeyError as exc:  # UnknownItemError: the title has no ratings in the model
        raise UnknownItemError(
            title_id, f"title {title_id!r} has no ratings in the model, so no neighbours"
        ) from exc
    items = [
        SimilarTitle(id=first_id(state, str(item), str(platform)), item_id=str(item),
                     title=str(title), platform=str(platform),
                     similarity=opt_float(sim, 4))
        for item, title, platform, sim in zip(
            frame["item_id"].tolist(), frame["title"].tolist(), frame["platform"].tolist(),
            frame["similarity"].tolist(), strict=True)
    ]
    basis = str(frame["basis"].iloc[0]) if len(frame) else None
    return SimilarOut(id=record.id, item_id=record.item_id, title=record.title, basis=basis,
                      items=items)


# --------------------------------------------------------------------------- recommendations

recommendation_routes = APIRouter(tags=["recommendations"])


def split_platforms(platforms: Sequence[str] | None) -> list[str] | None:
    """``?platforms=a&platforms=b`` and ``?platforms=a,b`` both mean ``[a, b]`` (``Platforms``
    has refused a blank name)."""
    if not platforms:
        return None
    return list(dict.fromkeys(p.strip(BLANKS) for value in platforms for p in value.split(",")))


@recommendation_routes.get(
    "/users/{user_id}/recommendations", response_model=RecommendationsOut,
    responses={**_ERRORS_404_422, **_link_to_titles("$response.body#/items/0/id",
                                                      "the first recommendation")})
async def recommendations(
    state: State,
    request: Request,
    user_id: UserId,
    n: N = DEFAULT_N,
    platforms: Platforms = None,
    kind: KindFilter = None,
) -> RecommendationsOut:
    """Top-n titles the user has not rated; an unknown user gets the cold-start list."""
    # The analytics routes' rule: case and separators do not matter, the answer
    # names the canonical platform (`NETFLIX` -> `netflix`).
    names = canonical_platforms(state, split_platforms(platforms))
    kind_value = kind.value if kind is not None else None
    cold_start, items = cache_of(request).recommend(state, user_id, n, names, kind_value)
    return RecommendationsOut(
        user_id=user_id, cold_start=cold_start, platforms=names, type=kind_value,
        model_version=str(state.manifest.get("version")), items=items)


class BodyError(HTTPException):
    """A request body refused whole (413: too large, 415: not JSON); ``ErrorOut.field`` is
    ``body``."""

    field = "body"


async def json_body(request: Request) -> None:
    """Dependency: a body must be sent as JSON. FastAPI parses only an ``application/json``
    (or ``+json``) body and validates any other as raw bytes, so JSON sent as ``text/plain``
    was a puzzling 422 "Input should be a valid dictionary"."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or (media.startswith("application/")
                                       and media.endswith("+json")):
        return
    if not await request.body():  # FastAPI has read it already: no cost
        return  # no body: the 422 says it is missing
    sent = f"Content-Type {excerpt(media)}" if media else "no Content-Type"
    raise BodyError(415, f"body: send JSON with Content-Type: application/json ({sent} "
                         "was sent)")


@recommendation_routes.post(
    "/recommendations", response_model=NewUserRecommendationsOut,
    dependencies=[Depends(json_body)],
    responses={400: {"model": ErrorOut, "description": "The body cannot be read (not UTF-8)."},
               413: {"model": ErrorOut, "description": "The body is larger than the "
                     f"server's limit ({MAX_BODY_BYTES // 1024} KiB unless configured)."},
               415: {"model": ErrorOut,
                     "description": "The body is not sent as `application/json`."},
               **_ERRORS_404_422, **_link_to_titles("$response.body#/items/0/id",
                                                      "the first recommendation")})
async def new_user_recommendations(
    state: State,
    body: NewUserRatingsIn,
    n: N = DEFAULT_N,
    platforms: Platforms = None,
    kind: KindFilter = None,
) -> NewUserRecommendationsOut:
    """Top-n for a user the model does not know, from the titles they rated (no refit:
    the ratings are folded into the model); never a rated title. No ratings: the
    cold-start list (`cold_start` true). Same filters as `GET /users/{id}/recommendations`;
    an unknown title id is a 404 quoting it, a title rated twice a 422."""
    return recommend_new_user(state, body, n, split_platforms(platforms),
                              kind.value if kind is not None else None)


# --------------------------------------------------------------------------- analytics
# Plain `def`: these run a few ms of pandas, so they go to the thread pool and
# never hold the event loop that the recommendation requests use. Answers are
# cached per parameter set: the tables never change while the app runs.

analytics_routes = APIRouter(tags=["analytics"], responses=_ERRORS_404_422)


def _value(kind: Kind | DurationType | None) -> str | None:
    return None if kind is None else kind.value


def _answer(request: Request, state: ServingState, question: str, *args: Any) -> dict[str, Any]:
    """``analytics.<question>(state.analytics, *args)`` from the app's cache."""
    return cache_of(request).answer(state, question, *args)


@analytics_routes.get("/analytics/longest", response_model=LongestOut)
def longest(state: State, request: Request, platform: Platform = None, year: Year = None,
            duration_type: Annotated[DurationType, Query(
                description="`min` (movies, in minutes) or `season` (shows)")] =
            DurationType.min,
            kind: KindQ = None) -> LongestOut:
    """The longest title on a platform released in a year (by minutes or seasons)."""
    answer = dict(_answer(request, state, "longest_title", platform, year,
                          duration_type.value, _value(kind)))
    if answer.get("item_id") is not None and answer.get("title_platform") is not None:
        answer["id"] = first_id(state, answer["item_id"], answer["title_platform"])
    return LongestOut(**answer)


@analytics_routes.get("/analytics/count-above-score", response_model=ScoreCountOut)
def count_above_score(state: State, request: Request, platform: Platform = None,
                      year: Year = None,
                      min_score: Annotated[float, Query(
                          ge=0, le=5, allow_inf_nan=False,
                          description="Mean audience score threshold (strictly above).")]
                      = 4.0,
                      kind: KindQ = None) -> ScoreCountOut:
    """How many titles of a platform/year have a mean audience score above ``min_score``."""
    return ScoreCountOut(**_answer(request, state, "count_titles_above_score", platform, year,
                                   float(min_score), _value(kind)))


@analytics_routes.get("/analytics/titles-per-platform", response_model=CountsOut)
def per_platform(state: State, request: Request, kind: KindQ = None) -> CountsOut:
    """Number of titles on each platform."""
    return CountsOut(**_answer(request, state, "titles_per_platform", _value(kind)))


@analytics_routes.get("/analytics/top-actor", response_model=ActorOut)
def top_actor(state: State, request: Request, platform: Platform = None,
              year: Year = None) -> ActorOut:
    """The actor appearing in the most titles of a platform released in a year."""
    return ActorOut(**_answer(request, state, "top_actor", platform, year))


@analytics_routes.get("/analytics/productions-per-country", response_model=CountsOut)
def per_country(
    state: State, request: Request, kind: KindQ = None, year: Year = None,
    country: Annotated[FilterText | None, Query(description="One country only.")] = None,
    platform: Platform = None,
    top_n: Annotated[int | None, Query(ge=1, le=1000,
                                       description="Keep the largest counts.")] = None,
) -> CountsOut:
    """Number of productions per country, by type and release year."""
    return CountsOut(**_answer(request, state, "productions_per_country", _value(kind), year,
                               country, platform, top_n))


@analytics_routes.get("/analytics/titles-per-rating", response_model=CountsOut)
def per_rating(
    state: State, request: Request,
    rating: Annotated[FilterText | None, Query(description="One maturity rating.")] = None,
    platform: Platform = None,
) -> CountsOut:
    """Number of titles per maturity rating (or for one rating)."""
    return CountsOut(**_answer(request, state, "titles_per_maturity_rating", rating, platform))


#: The routers in the order their paths appear in the OpenAPI schema.
ROUTERS = (service_routes, title_routes, recommendation_routes, analytics_routes)
