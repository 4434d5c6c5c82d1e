"""What a request reads: the loaded tables and model (``ServingState``) and the caches.

Why it is shaped this way:

* **Everything is loaded once per champion.** ``load_state`` reads the catalog tables
  (titles, analytics), the ratings' user column alone (``tables.read_user_ids``: users by
  activity), the model table's footer only (``tables.check_table``), and the champion
  model (``registry.load_champion``, which verifies the checksum in the manifest before
  unpickling). The whole ratings and model tables are never read: at 10 M ratings they
  only raised the load peak. A request only does array work on objects already in
  memory. Missing or corrupt artifacts raise ``DataError`` naming the file and the
  command that creates it (``make pipeline``).
* **A Spark batch champion** (``06_scale_out``'s lists, promoted) is served by
  ``scale_out.batch.BatchRecommender`` from its precomputed lists, filters applied per
  request; loading it reads only the titles and analytics tables (the cold-start list
  and the catalog), never the ratings or the model table.
* **Handlers reach the state through ``Depends(get_state)``**, never a closure, so a
  test can swap it with ``app.dependency_overrides[get_state]``, and a request keeps
  the state it started with even when a new champion is swapped in meanwhile.
* **A promotion is picked up without a restart** (``ChampionWatch``): every few seconds
  the app stats ``champion.json`` (mtime, size, inode: the registry replaces the file on
  every move, so a promotion or rollback always changes them); on a change it loads the
  new state in a worker thread (checksums verified), then swaps it in with one
  assignment. A failed load keeps the old state and is reported by ``/health``.
* **Finished lists are cached per state** (``ResponseCache``, an LRU): exact, because
  a state never changes; a new champion gets a new cache. The cache keeps only its own
  state's answers (``ResponseCache.state``), so neither an overridden state nor a
  request still finishing on the previous champion can put lists in it. The cache can
  be warmed with every active user's default list (``warm_cache``).
* **A new user's ratings** (``recommend_new_user``) are folded into the model
  (``Recommender.recommend_for_ratings``): one function for ``POST /recommendations``
  and the demo's new-user tab, with the same validation.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from fastapi import Request

from recsys_utils.errors import DataError, UnknownFilterError, UnknownItemError, excerpt
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.serving.schemas import (
    MAX_N,
    CacheOut,
    NewUserRatingsIn,
    NewUserRecommendationsOut,
    RecommendedTitle,
    ReloadOut,
    TitleOut,
    clean,
    opt_date,
    opt_float,
    opt_int,
    opt_str,
)

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_RELOAD_SECONDS",
    "ChampionWatch",
    "RatingsError",
    "ResponseCache",
    "ServingState",
    "UnknownPlatformsError",
    "UnknownTitlesError",
    "cache_of",
    "canonical_platforms",
    "get_state",
    "load_state",
    "platforms_within",
    "pointer_stamp",
    "recommend_new_user",
    "warm_cache",
    "watch_of",
]

log = logging.getLogger(__name__)

#: A user id no model knows (negative: ids are >= 0), to ask for the cold-start list.
UNKNOWN_USER_KEY = -1
#: Depth of the per-user ranked list kept in the cache (``RankedList``): any
#: ``n`` up to it, with any filter that leaves enough of it, is served from it.
RANKED_DEPTH = MAX_N
#: Recommendation lists cached per state (LRU). A state's model and tables never
#: change (a new champion is a new state, with a new cache), so a cached list is
#: exactly what recomputing would give; 0 disables the cache.
DEFAULT_CACHE_SIZE = 8192
#: Seconds between two checks of the champion pointer (0 = never: restart to reload).
#: A check is one ``stat``; only a changed pointer costs a load.
DEFAULT_RELOAD_SECONDS = 5.0
#: Unknown title ids quoted in a 404 (the rest are counted, not listed).
MAX_QUOTED_IDS = 5
#: Analytics answers cached per app (one per parameter set; they are small).
ANALYTICS_CACHE_SIZE = 2048
PIPELINE_HINT = "run `make pipeline` first (it builds data/processed/ and registers a model)"


# --------------------------------------------------------------------------- state


@dataclass(eq=False)  # hashed by identity: the caches key on the state object
class ServingState:
    """Everything a request needs, loaded at startup and again for each new champion
    (never changed once loaded: a new champion is a new ``ServingState``).

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
    #: ``pointer_stamp`` of ``champion.json`` taken just before loading (what
    #: ``ChampionWatch`` compares against to notice a promotion).
    pointer_stamp: tuple[int, int, int] | None = None


def load_state(paths: ProjectPaths | None = None) -> ServingState:
    """Load the processed tables and the champion model (checksum verified); for a Spark
    batch champion, only the titles and analytics tables (``scale_out.batch``).

    Raises:
        DataError: a processed table or the model is missing or corrupt; the
            message names the file and says to run ``make pipeline``.
    """
    # Imported here so `recsys-serve --help` and the module import stay fast.
    from recsys_utils.data.tables import check_table, read_table, read_user_ids
    from recsys_utils.lifecycle.registry import load_champion
    from recsys_utils.scale_out.batch import BatchRecommendations, BatchRecommender

    paths = paths if paths is not None else project_paths()
    # Stamp first: a promotion during the load then shows as a change at the next check.
    stamp = pointer_stamp(paths)
    started = time.perf_counter()
    recommender, manifest = load_champion(paths)
    if isinstance(recommender, BatchRecommendations):
        # The lists are the model: only the catalog tables are read (no ratings, no model table).
        titles, analytics = read_table("titles", paths), read_table("analytics", paths)
        recommender = BatchRecommender(recommender, analytics, cold_start_list=manifest.get(
            "params", {}).get("cold_start_list"))
        active = pd.Series(0, index=recommender.user_ids)  # no activity figures: id order
    else:
        if not hasattr(recommender, "recommend"):
            raise DataError(
                f"the champion model in {paths.models} is a {type(recommender).__name__}, "
                f"not a Recommender; {PIPELINE_HINT}"
            )
        titles, analytics = read_table("titles", paths), read_table("analytics", paths)
        # Users by number of ratings, most active first: the order the cache is warmed in.
        counts = read_user_ids(paths).value_counts(sort=False)
        check_table("model", paths)  # not used here, but a store without it is broken
        active = counts.sort_index().sort_values(ascending=False, kind="mergesort")
    titles_by_id = title_records(analytics)
    platforms = sorted(str(p) for p in analytics["platform"].dropna().unique())
    n_users = len(active)
    return ServingState(
        recommender=recommender,
        manifest=manifest,
        titles=titles,
        analytics=analytics,
        platforms=platforms,
        titles_by_id=titles_by_id,
        ids_by_item=ids_by_item(titles),
        platforms_by_item=platforms_by_item(titles),
        n_users=n_users,
        paths=paths,
        active_users=[int(u) for u in active.index],
        load_seconds=round(time.perf_counter() - started, 3),
        pointer_stamp=stamp,
    )


def pointer_stamp(paths: ProjectPaths) -> tuple[int, int, int] | None:
    """``(mtime_ns, size, inode)`` of the champion pointer, ``None`` when it is missing.

    The registry writes the pointer atomically (a new file renamed over the old), so
    every promotion or rollback gives a new inode even within one mtime tick.
    """
    from recsys_utils.lifecycle.registry import CHAMPION_FILE

    try:
        st = os.stat(paths.models / CHAMPION_FILE)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino



async def get_state(request: Request) -> ServingState:
    """FastAPI dependency: the app's loaded state (``Depends(get_state)`` in every route).

    ``async`` so it runs on the event loop: a plain ``def`` dependency would cost
    every request a thread-pool hop.
    """
    return request.app.state.serving


# --------------------------------------------------------------------------- lookups


_TITLE_FIELDS = tuple(TitleOut.model_fields)


def title_records(analytics: pd.DataFrame) -> dict[str, TitleOut]:
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
            show_id=opt_str(row["show_id"]),
            type=str(row["type"]),
            title=str(row["title"]),
            director=opt_str(row["director"]),
            cast=opt_str(row["cast"]),
            country=opt_str(row["country"]),
            genres=opt_str(row["genres"]),
            description=opt_str(row["description"]),
            date_added=opt_date(row["date_added"]),
            release_year=opt_int(row["release_year"]),
            rating=opt_str(row["rating"]),
            duration_int=opt_int(row["duration_int"]),
            duration_type=opt_str(row["duration_type"]),
            mean_score=opt_float(row["mean_score"]),
            n_ratings=opt_int(row["n_ratings"]) or 0,
        )
    return out



def first_id(state: ServingState, item_id: str, platform: str) -> str:
    """The title id of ``item_id`` on ``platform`` (ids equal item ids, except for the
    copies of a title on several platforms)."""
    return state.ids_by_item.get((item_id, platform), item_id)


def platforms_by_item(titles: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """``item_id -> its platforms, sorted`` (copies of a title on several platforms share it)."""
    frame = titles[["item_id", "platform"]].astype(str).drop_duplicates()
    grouped = frame.sort_values(["item_id", "platform"]).groupby("item_id", sort=False)
    return {str(item): tuple(group["platform"]) for item, group in grouped}


def platforms_within(state: ServingState, item_id: str, shown: str,
                     platforms: Sequence[str] | None) -> list[str]:
    """The platforms ``item_id`` is on within the filter (None = all), sorted; ``shown``
    (the list's display platform) for a title the served tables do not list."""
    within = [p for p in state.platforms_by_item.get(item_id, ())
              if platforms is None or p in platforms]
    return within or ([shown] if shown else [])


def ids_by_item(titles: pd.DataFrame) -> dict[tuple[str, str], str]:
    """``(item_id, platform) -> id``; only rows where they differ (the `linked` source)."""
    frame = titles.loc[titles["id"].astype(str) != titles["item_id"].astype(str),
                       ["id", "item_id", "platform"]].astype(str)
    return {(i, p): t for t, i, p in frame.itertuples(index=False, name=None)}


# --------------------------------------------------------------------------- ranked lists


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
    ``tests/test_serving_state.py`` checks the equivalence against ``Recommender.recommend``.
    """

    cold_start: bool
    exhaustive: bool
    item_ids: tuple[str, ...]
    titles: tuple[str, ...]
    types: tuple[str, ...]
    scores: tuple[float | None, ...]
    platforms: tuple[tuple[str, ...], ...]  # each title's platforms, sorted


def _ranked_list(state: ServingState, cold_start: bool, depth: int, ids: list[str],
                 titles: list[str], types: list[str], scores: np.ndarray) -> RankedList:
    rounded = np.round(np.asarray(scores, dtype=np.float64), 3).tolist()
    return RankedList(
        cold_start=cold_start,
        exhaustive=len(ids) < depth,
        item_ids=tuple(ids),
        titles=tuple(titles),
        types=tuple(types),
        scores=tuple(v if math.isfinite(v) else None for v in rounded),
        platforms=tuple(state.platforms_by_item.get(i, ()) for i in ids),
    )


def ranked_list(state: ServingState, recs: Any, depth: int) -> RankedList:
    items = recs.items
    # Whole columns at once: per-row pandas access costs more than the ranking.
    return _ranked_list(state, bool(recs.cold_start), depth,
                        [str(i) for i in items["item_id"].tolist()],
                        [str(t) for t in items["title"].tolist()],
                        [str(t) for t in items["type"].tolist()],
                        items["score"].to_numpy(dtype=np.float64))


def stored_ranked_list(state: ServingState, positions: np.ndarray, ratings: np.ndarray,
                       depth: int) -> RankedList:
    """``ranked_list`` of a precomputed list (catalog positions, displayed ratings) read
    straight from the model's arrays: no DataFrame on the request path (that frame cost
    ~70% of a request's CPU at 1 M ratings). Same values as ``ranked_list`` of
    ``recommend_precomputed`` (tested)."""
    rec = state.recommender
    # the model's catalog arrays hold str objects (``ranking.catalog``): no conversion needed
    catalog = rec.catalog
    return _ranked_list(state, False, depth, catalog.item_ids[positions].tolist(),
                        catalog.titles[positions].tolist(), catalog.types[positions].tolist(),
                        ratings)


def select(state: ServingState, ranked: RankedList, n: int,
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
            rank=len(out) + 1, id=first_id(state, item, platform), item_id=item,
            title=ranked.titles[k], platform=platform, platforms=list(shown),
            type=ranked.types[k], score=ranked.scores[k]))
        if len(out) == n:
            return out
    return out if ranked.exhaustive else None


def recommended_titles(state: ServingState, recs: Any,
                       platforms: Sequence[str] | None = None) -> list[RecommendedTitle]:
    """A ``Recommendations.items`` frame as response objects (the uncached path);
    ``platforms``: the request's platform filter (None = all)."""
    items = recs.items
    columns = [items[c].tolist() for c in ("rank", "item_id", "title", "platform", "type",
                                             "score")]
    return [
        RecommendedTitle(rank=int(rank), id=first_id(state, str(item), str(platform)),
                         item_id=str(item), title=str(title), platform=str(platform),
                         platforms=platforms_within(state, str(item), str(platform), platforms),
                         type=str(kind_), score=opt_float(score, 3))
        for rank, item, title, platform, kind_, score in zip(*columns, strict=True)
    ]




# --------------------------------------------------------------------------- caches


def _ranked(state: ServingState, user: int | None) -> RankedList:
    """The unfiltered top ``RANKED_DEPTH`` of a known user (``None``: cold start).

    A model registered with precomputed lists (``ranking.precomputed``, as deep as
    ``RANKED_DEPTH``) answers from them: the same list without ranking the catalog.
    A Spark batch champion's stored list is only ``depth`` deep: it holds every
    candidate only when shorter than that (otherwise a filter that leaves fewer than
    ``n`` of it is asked of ``BatchRecommender.recommend``, which uses the per-platform
    lists)."""
    rec = state.recommender
    lists = getattr(rec, "precomputed_", None)
    if user is not None and lists is not None and lists.depth >= RANKED_DEPTH:
        from recsys_utils.ranking.precomputed import stored_top

        got = stored_top(rec, lists, user, RANKED_DEPTH, rec.candidate_mask(None, None))
        if got is not None:
            return stored_ranked_list(state, got[0], got[2], RANKED_DEPTH)
    recs = rec.recommend(UNKNOWN_USER_KEY if user is None else user, n=RANKED_DEPTH)
    stored = getattr(rec, "depth", RANKED_DEPTH) if user is not None else RANKED_DEPTH
    return ranked_list(state, recs, min(RANKED_DEPTH, stored))


def _live(state: ServingState, user: int | None, n: int, platforms: tuple[str, ...] | None,
          kind: str | None) -> list[RecommendedTitle]:
    """Ask the model for this exact query (a filter that leaves too few of the top)."""
    names = list(platforms or ()) or None
    recs = state.recommender.recommend(UNKNOWN_USER_KEY if user is None else user, n=n,
                                       platforms=names, kind=kind)
    return recommended_titles(state, recs, names)


def _analytics_answer(state: ServingState, name: str, *args: Any) -> dict[str, Any]:
    """``analytics.<name>(state.analytics, *args)`` as a JSON-safe dict."""
    from recsys_utils.explore import analytics

    return clean(getattr(analytics, name)(state.analytics, *args).to_dict())


class ResponseCache:
    """One state's caches: users' ranked lists (``size`` entries, LRU; 0 disables) and
    analytics answers (one per parameter set).

    Why one deep list per user: see ``RankedList``. Every unknown user gets the same
    cold-start list, so they share one entry. ``state`` is the only state whose answers
    are kept (``None``: any state, each keyed by identity); any other state is answered
    uncached, so a request still running on the previous champion, or a test's
    overridden state, never fills (and never pins in memory) another state's cache.
    """

    def __init__(self, size: int, state: ServingState | None = None) -> None:
        self.size = size
        self.state = state
        if size > 0:
            self.ranked = lru_cache(maxsize=size)(_ranked)
            self.live = lru_cache(maxsize=size)(_live)
        else:
            self.ranked, self.live = _ranked, _live
        self.analytics = lru_cache(maxsize=ANALYTICS_CACHE_SIZE)(_analytics_answer)

    def keeps(self, state: ServingState) -> bool:
        """Whether answers for ``state`` go through this cache."""
        return self.state is None or state is self.state

    def recommend(self, state: ServingState, user_id: int, n: int,
                  platforms: list[str] | None, kind: str | None
                  ) -> tuple[bool, list[RecommendedTitle]]:
        """``(cold_start, top n)`` of ``user_id`` within the filters."""
        ranked_of, live_of = (self.ranked, self.live) if self.keeps(state) else (_ranked, _live)
        key_user = user_id if state.recommender.known_user(user_id) else None
        ranked = ranked_of(state, key_user)
        items = select(state, ranked, n, frozenset(platforms) if platforms else None, kind)
        if items is None:
            items = live_of(state, key_user, n,
                            tuple(sorted(platforms)) if platforms else None, kind)
        return ranked.cold_start, items

    def answer(self, state: ServingState, name: str, *args: Any) -> dict[str, Any]:
        """``analytics.<name>(state.analytics, *args)`` as a JSON-safe dict."""
        if self.keeps(state):
            return self.analytics(state, name, *args)
        return _analytics_answer(state, name, *args)

    def info(self) -> CacheOut:
        """Hits, misses and size of the ranked-list cache (for ``/health``)."""
        if not hasattr(self.ranked, "cache_info"):
            return CacheOut(hits=0, misses=0, size=0, max_size=0)
        info = self.ranked.cache_info()
        return CacheOut(hits=info.hits, misses=info.misses, size=info.currsize,
                        max_size=info.maxsize or 0)


def cache_of(request: Request) -> ResponseCache:
    """The ``ResponseCache`` of the app serving ``request`` (made by ``create_app``)."""
    return request.app.state.cache


def warm_cache(state: ServingState, cache: ResponseCache, seconds: float) -> int:
    """Fill the cache with the ranked list of the most active users (bounded in time
    and by the cache capacity); returns how many users were warmed. The cold-start
    list goes first: every unknown user shares it."""
    deadline = time.perf_counter() + seconds
    cache.ranked(state, None)
    warmed = 0
    for user in state.active_users[: max(cache.size - 1, 0)]:
        if time.perf_counter() > deadline:
            break
        cache.ranked(state, user)
        warmed += 1
    return warmed


# --------------------------------------------------------------------------- a new user


class UnknownPlatformsError(UnknownFilterError):
    """An unknown platform in the recommendations' ``platforms`` filter: the analytics'
    "unknown platform" 404, under the request parameter's name (``ErrorOut.field``)."""

    parameter = "platforms"


def canonical_platforms(state: ServingState, names: Sequence[str] | None) -> list[str] | None:
    """Platform filter values as the model spells them (``NETFLIX`` -> ``netflix``: the
    analytics routes' rule), duplicates dropped; ``UnknownPlatformsError`` (a 404 listing
    the valid platforms) for an unknown one. ``None`` or empty: no filter."""
    from recsys_utils.explore.analytics import match_filter

    if not names:
        return None
    valid = state.recommender.platforms
    try:
        return list(dict.fromkeys(match_filter("platform", name, valid) for name in names))
    except UnknownFilterError as exc:
        raise UnknownPlatformsError(exc.field, exc.value, exc.valid) from None


class RatingsError(ValueError):
    """Ratings that cannot be used together (a title rated twice): a 422 naming the
    rating at fault (``location``, as in a validation error)."""

    def __init__(self, location: tuple[str | int, ...], message: str) -> None:
        self.location = location
        super().__init__(message)


class UnknownTitlesError(UnknownItemError):
    """Rated title ids the catalog (or the model) does not know: a 404 quoting at most
    ``MAX_QUOTED_IDS`` of them, each cut to a short excerpt, and counting the rest."""

    field = "title_id"

    def __init__(self, ids: Sequence[str], n_ratings: int, why: str = "") -> None:
        quoted = ", ".join(excerpt(i) for i in ids[:MAX_QUOTED_IDS])
        more = f" and {len(ids) - MAX_QUOTED_IDS} more" if len(ids) > MAX_QUOTED_IDS else ""
        plural = "s" if len(ids) > 1 else ""
        super().__init__(ids[0], f"unknown title id{plural} {quoted}{more} ({len(ids)} of "
                                 f"{n_ratings} ratings){why}; rate titles by their "
                                 "`GET /titles/{id}` id")


def rated_items(state: ServingState, body: NewUserRatingsIn) -> dict[str, float]:
    """``{item_id: score}`` of a new user's ratings, after the checks the schema cannot
    make: every title known (else ``UnknownTitlesError``), none rated twice, including
    two platform copies of one film (else ``RatingsError``)."""
    unknown: list[str] = []
    rated_as: dict[str, str] = {}  # item_id -> the title id it was rated as
    out: dict[str, float] = {}
    duplicate: RatingsError | None = None
    for k, rating in enumerate(body.ratings):
        record = state.titles_by_id.get(rating.title_id)
        if record is None:
            unknown.append(rating.title_id)
            continue
        first = rated_as.setdefault(record.item_id, rating.title_id)
        if first != rating.title_id or record.item_id in out:
            if duplicate is None:
                same = ("" if first == rating.title_id else
                        f" ({excerpt(first)} is the same title on another platform)")
                duplicate = RatingsError(("body", "ratings", k, "title_id"),
                                         f"title {excerpt(rating.title_id)} is rated "
                                         f"twice{same}; send one score per title")
            continue
        out[record.item_id] = float(rating.score)
    if duplicate is not None:
        raise duplicate
    if unknown:
        raise UnknownTitlesError(unknown, len(body.ratings))
    return out


def recommend_new_user(state: ServingState, body: NewUserRatingsIn, n: int = 10,
                       platforms: Sequence[str] | None = None, kind: str | None = None
                       ) -> NewUserRecommendationsOut:
    """Top ``n`` for a user the model does not know, from the ratings in ``body``: the
    fold-in (``Recommender.recommend_for_ratings``: no refit), never a rated title; no
    ratings gives the cold-start list, flagged. ``POST /recommendations`` and the
    demo's new-user tab both answer with this function.

    Raises:
        UnknownFilterError: an unknown platform or type (a 404 listing the valid ones).
        UnknownTitlesError: a rated title id the catalog or the model does not know.
        RatingsError: a title rated twice.
    """
    names = canonical_platforms(state, platforms)
    ratings = rated_items(state, body)
    try:
        recs = state.recommender.recommend_for_ratings(ratings, n=n, platforms=names,
                                                       kind=kind)
    except UnknownItemError as exc:  # in the catalog, but not in the model's
        title = next(r.title_id for r in body.ratings
                     if state.titles_by_id[r.title_id].item_id == str(exc.item_id))
        raise UnknownTitlesError([title], len(body.ratings),
                                 f" (not in model {state.manifest.get('version')})") from exc
    return NewUserRecommendationsOut(
        cold_start=bool(recs.cold_start), n_ratings=len(ratings), platforms=names, type=kind,
        model_version=str(state.manifest.get("version")),
        items=recommended_titles(state, recs, names))


# --------------------------------------------------------------------------- reload


def _utc(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


_NOT_YET = object()


class ChampionWatch:
    """Swaps a new champion into a running app when ``champion.json`` changes.

    ``check()`` is one ``stat`` of the pointer when nothing changed. On a change (a
    promotion or a rollback) it loads a whole new ``ServingState`` with ``load_state``
    (checksums verified), makes it a new ``ResponseCache``, and swaps both into the app
    with plain assignments: a request that already holds the old state (``Depends``
    resolved it) finishes on it, the next one gets the new. A failed load (bad checksum,
    missing file, unreadable pointer) logs one line, keeps the old state and is shown
    by ``/health`` (``reload.error``); it is retried when the pointer changes again.
    The app's lifespan calls ``check`` every ``check_seconds`` in a worker thread, so
    a load never blocks the event loop; tests call it directly.

    Args:
        app_state: the app's ``app.state`` (holding ``serving`` and ``cache``).
        check_seconds: seconds between checks (0: the lifespan never checks).
        cache_size, warm_seconds: the new cache's capacity, and how long to warm it
            after the swap (still in the worker thread).
    """

    def __init__(self, app_state: Any, check_seconds: float, cache_size: int,
                 warm_seconds: float = 0.0) -> None:
        self.app_state = app_state
        self.check_seconds = float(check_seconds)
        self.cache_size = cache_size
        self.warm_seconds = warm_seconds
        self.seen: Any = _NOT_YET  # the pointer stamp last acted on
        self.checked_at: float | None = None
        self.reloads = 0
        self.reloaded_at: float | None = None
        self.error: str | None = None
        self.failed_version: str | None = None
        self._lock = threading.Lock()  # one check at a time (the poller and a test)

    def check(self) -> bool:
        """Reload if the pointer changed since the last check; True when a new state
        was swapped in. Never raises for a bad artifact."""
        with self._lock:
            current: ServingState = self.app_state.serving
            if self.seen is _NOT_YET:
                self.seen = current.pointer_stamp
            self.checked_at = time.time()
            stamp = pointer_stamp(current.paths)
            if stamp == self.seen:
                return False
            self.seen = stamp
            return self._reload(current)

    def _reload(self, current: ServingState) -> bool:
        from recsys_utils.lifecycle.registry import champion_version

        old = str(current.manifest.get("version"))
        named: str | None = None
        try:
            named = champion_version(current.paths)
            if named == old:  # pointer rewritten, same champion (a no-op promotion)
                self.error = self.failed_version = None
                return False
            new = load_state(current.paths)
        except Exception as exc:  # noqa: BLE001 - whatever the artifact, keep serving
            reason = str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
            # /health is public: paths relative to the project (the log keeps them whole)
            self.error, self.failed_version = relative_paths(reason, current.paths), named
            log.error("champion reload failed, still serving %s: %s", old, reason)
            return False
        cache = ResponseCache(self.cache_size, new)
        # Swap: the cache first, so the new state never meets a cache of another state
        # (an old request meeting the new cache is answered uncached: `keeps`).
        self.app_state.cache = cache
        self.app_state.serving = new
        self.reloads += 1
        self.reloaded_at = time.time()
        self.error = self.failed_version = None
        log.info("champion reloaded: %s -> %s (load %.2f s)", old,
                    new.manifest.get("version"), new.load_seconds)
        if self.warm_seconds > 0 and self.cache_size > 0:
            warm_cache(new, cache, self.warm_seconds)
        return True

    def info(self) -> ReloadOut:
        """The watch as ``/health`` reports it."""
        return ReloadOut(check_seconds=self.check_seconds, checked_at=_utc(self.checked_at),
                         reloads=self.reloads, reloaded_at=_utc(self.reloaded_at),
                         error=self.error, failed_version=self.failed_version)


def relative_paths(message: str, paths: ProjectPaths) -> str:
    """``message`` with the project root cut from the paths it names
    (``/srv/app/outputs/models/v0002/model.pkl`` -> ``outputs/models/v0002/model.pkl``):
    a client has no use for the server's directory layout."""
    roots = {str(paths.root), str(paths.root.resolve())}
    for root in sorted(roots, key=len, reverse=True):  # longest first: one may contain another
        message = message.replace(root.rstrip(os.sep) + os.sep, "")
    return message


def watch_of(request: Request) -> ChampionWatch:
    """The ``ChampionWatch`` of the app serving ``request`` (made by ``create_app``)."""
    return request.app.state.watch
