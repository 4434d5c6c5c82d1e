"""What a request reads: the loaded tables and model (``ServingState``) and the caches.

Why it is shaped this way:

* **Everything is loaded once.** ``load_state`` reads the processed tables
  (``cleaning.load_processed``) and the champion model (``registry.load_champion``,
  which verifies the checksum in the manifest before unpickling). A request only
  does array work on objects already in memory. Missing or corrupt artifacts raise
  ``DataError`` naming the file and the command that creates it (``make pipeline``).
* **Handlers reach the state through ``Depends(get_state)``**, never a closure, so a
  test can swap it with ``app.dependency_overrides[get_state]``.
* **Finished lists are cached per app** (``ResponseCache``, an LRU): exact,
  because the model cannot change under a running process (a new champion means a
  restart). The key includes the ``ServingState`` (hashed by identity), so an
  overridden state never sees another state's lists. The cache can be warmed at
  startup with every active user's default list (``warm_cache``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from fastapi import Request

from recsys_utils.errors import DataError
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.serving.schemas import (
    MAX_N,
    CacheOut,
    RecommendedTitle,
    TitleOut,
    clean,
    opt_date,
    opt_float,
    opt_int,
    opt_str,
)

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "ResponseCache",
    "ServingState",
    "cache_of",
    "get_state",
    "load_state",
    "warm_cache",
]

#: A user id no model knows (negative: ids are >= 0), to ask for the cold-start list.
UNKNOWN_USER_KEY = -1
#: Depth of the per-user ranked list kept in the cache (``RankedList``): any
#: ``n`` up to it, with any filter that leaves enough of it, is served from it.
RANKED_DEPTH = MAX_N
#: Recommendation lists cached per app (LRU). The model and tables never change
#: while a process runs (a new champion means a restart), so a cached list is
#: exactly what recomputing would give; 0 disables the cache.
DEFAULT_CACHE_SIZE = 8192
#: Analytics answers cached per app (one per parameter set; they are small).
ANALYTICS_CACHE_SIZE = 2048
PIPELINE_HINT = "run `make pipeline` first (it builds data/processed/ and registers a model)"


# --------------------------------------------------------------------------- state


@dataclass(eq=False)  # hashed by identity: the caches key on the state object
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
    titles_by_id = title_records(analytics)
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
        ids_by_item=ids_by_item(data.titles),
        platforms_by_item=platforms_by_item(data.titles),
        n_users=n_users,
        paths=paths,
        active_users=[int(u) for u in active.index],
        load_seconds=round(time.perf_counter() - started, 3),
    )



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
    """The title id of ``item_id`` on ``platform`` (ids equal item ids except in `linked`)."""
    return state.ids_by_item.get((item_id, platform), item_id)


def platforms_by_item(titles: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """``item_id -> its platforms, sorted`` (a film can be on several in `linked`)."""
    frame = titles[["item_id", "platform"]].astype(str).drop_duplicates()
    grouped = frame.sort_values(["item_id", "platform"]).groupby("item_id", sort=False)
    return {str(item): tuple(group["platform"]) for item, group in grouped}


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


def ranked_list(state: ServingState, recs: Any, depth: int) -> RankedList:
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
            title=ranked.titles[k], platform=platform, type=ranked.types[k],
            score=ranked.scores[k]))
        if len(out) == n:
            return out
    return out if ranked.exhaustive else None


def recommended_titles(state: ServingState, recs: Any) -> list[RecommendedTitle]:
    """A ``Recommendations.items`` frame as response objects (the uncached path)."""
    items = recs.items
    columns = [items[c].tolist() for c in ("rank", "item_id", "title", "platform", "type",
                                             "score")]
    return [
        RecommendedTitle(rank=int(rank), id=first_id(state, str(item), str(platform)),
                         item_id=str(item), title=str(title), platform=str(platform),
                         type=str(kind_), score=opt_float(score, 3))
        for rank, item, title, platform, kind_, score in zip(*columns, strict=True)
    ]




# --------------------------------------------------------------------------- caches


def _ranked(state: ServingState, user: int | None) -> RankedList:
    """The unfiltered top ``RANKED_DEPTH`` of a known user (``None``: cold start)."""
    recs = state.recommender.recommend(UNKNOWN_USER_KEY if user is None else user,
                                       n=RANKED_DEPTH)
    return ranked_list(state, recs, RANKED_DEPTH)


def _live(state: ServingState, user: int | None, n: int, platforms: tuple[str, ...] | None,
          kind: str | None) -> list[RecommendedTitle]:
    """Ask the model for this exact query (a filter that leaves too few of the top)."""
    recs = state.recommender.recommend(UNKNOWN_USER_KEY if user is None else user, n=n,
                                       platforms=list(platforms or ()) or None, kind=kind)
    return recommended_titles(state, recs)


def _analytics_answer(state: ServingState, name: str, *args: Any) -> dict[str, Any]:
    """``analytics.<name>(state.analytics, *args)`` as a JSON-safe dict."""
    from recsys_utils.explore import analytics

    return clean(getattr(analytics, name)(state.analytics, *args).to_dict())


class ResponseCache:
    """One app's caches: users' ranked lists (``size`` entries, LRU; 0 disables) and
    analytics answers (one per parameter set).

    Why one deep list per user: see ``RankedList``. Every unknown user gets the same
    cold-start list, so they share one entry.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        if size > 0:
            self.ranked = lru_cache(maxsize=size)(_ranked)
            self.live = lru_cache(maxsize=size)(_live)
        else:
            self.ranked, self.live = _ranked, _live
        self.analytics = lru_cache(maxsize=ANALYTICS_CACHE_SIZE)(_analytics_answer)

    def recommend(self, state: ServingState, user_id: int, n: int,
                  platforms: list[str] | None, kind: str | None
                  ) -> tuple[bool, list[RecommendedTitle]]:
        """``(cold_start, top n)`` of ``user_id`` within the filters."""
        key_user = user_id if state.recommender.known_user(user_id) else None
        ranked = self.ranked(state, key_user)
        items = select(state, ranked, n, frozenset(platforms) if platforms else None, kind)
        if items is None:
            items = self.live(state, key_user, n,
                              tuple(sorted(platforms)) if platforms else None, kind)
        return ranked.cold_start, items

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
