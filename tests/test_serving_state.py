"""What the routes read (``serving.state``): ``load_state`` and the per-app caches.

The cache must be invisible: a cached or warmed list is exactly what the model
answers for the same query (every ``n``, platform filter and type).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_fixture import KNOWN_USER, PLATFORMS, UNKNOWN_USER, serving_project

from recsys_utils.paths import ProjectPaths
from recsys_utils.serving import state as serving_state
from recsys_utils.serving.app import create_app
from recsys_utils.serving.state import ResponseCache, load_state, warm_cache


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> ProjectPaths:
    return serving_project(tmp_path_factory)


def test_load_state_holds_tables_model_and_lookups(paths: ProjectPaths):
    state = load_state(paths)
    titles = pd.read_parquet(paths.processed / "titles.parquet")
    assert state.platforms == sorted(PLATFORMS)
    assert set(state.titles_by_id) == set(titles["id"].astype(str))
    assert state.manifest["version"] and hasattr(state.recommender, "recommend")
    ratings = pd.read_parquet(paths.processed / "ratings.parquet")
    counts = ratings["user_id"].value_counts()
    assert state.n_users == len(counts)
    # most active first (the warm-up order)
    assert [counts[u] for u in state.active_users] == sorted(counts, reverse=True)
    assert state.load_seconds >= 0


def test_load_state_reads_only_the_ratings_users_and_no_model_table_rows(
        paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch):
    """The API needs the catalog tables and the users' activity, not the ratings or the
    model table: reading them whole only raised its load peak."""
    read: dict[str, object] = {}
    real = pd.read_parquet

    def reading(path, *args, **kwargs):  # noqa: ANN001, ANN202 - pandas' signature
        read[Path(path).name] = kwargs.get("columns")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", reading)
    state = load_state(paths)
    assert {"titles.parquet", "analytics.parquet"} <= set(read)  # the reader is watched
    assert read["ratings.parquet"] == ["user_id"]
    assert "model.parquet" not in read
    monkeypatch.undo()
    counts = pd.read_parquet(paths.processed / "ratings.parquet")["user_id"].value_counts()
    assert state.n_users == len(counts) and set(state.active_users) == set(counts.index)


def test_states_hash_by_identity():
    """The caches key on the state: two loads of the same files are different keys."""
    assert serving_state.ServingState.__eq__ is object.__eq__
    assert serving_state.ServingState.__hash__ is object.__hash__


# --------------------------------------------------------------------------- cache


def _cache(client: TestClient) -> dict[str, int]:
    return client.get("/health").json()["recommendation_cache"]


def test_cached_lists_equal_fresh_computation(paths: ProjectPaths):
    state = load_state(paths)
    queries = [f"/users/{KNOWN_USER}/recommendations?n=7",
               f"/users/{KNOWN_USER}/recommendations?n=7&platforms=hulu,netflix&type=Movie",
               f"/users/{UNKNOWN_USER}/recommendations?n=5&platforms=netflix"]
    with TestClient(create_app(paths, state=state, cache_size=0)) as fresh, \
            TestClient(create_app(paths, state=state)) as cached:
        for url in queries:
            first, second = cached.get(url).json(), cached.get(url).json()
            assert first == second == fresh.get(url).json()
        assert _cache(fresh) == {"hits": 0, "misses": 0, "size": 0, "max_size": 0}
        # one ranked list per user (KNOWN_USER, the cold start) serves every query
        assert _cache(cached)["misses"] == 2 and _cache(cached)["hits"] == 2 * len(queries) - 2


def test_unknown_users_share_one_cache_entry(paths: ProjectPaths):
    with TestClient(create_app(paths, state=load_state(paths))) as test_client:
        for user in (UNKNOWN_USER, UNKNOWN_USER + 1, UNKNOWN_USER + 2):
            body = test_client.get(f"/users/{user}/recommendations").json()
            assert body["user_id"] == user and body["cold_start"] is True
        assert _cache(test_client)["misses"] == 1 and _cache(test_client)["hits"] == 2


def test_errors_are_not_cached(paths: ProjectPaths):
    with TestClient(create_app(paths, state=load_state(paths))) as test_client:
        for _ in range(2):
            url = f"/users/{KNOWN_USER}/recommendations?platforms=disney"
            assert test_client.get(url).status_code == 404
        assert _cache(test_client)["size"] == 0


def test_warm_up_precomputes_every_users_ranked_list(paths: ProjectPaths):
    state = load_state(paths)
    with TestClient(create_app(paths, state=state, warm_seconds=60)) as test_client:
        warmed = _cache(test_client)
        assert warmed["size"] == state.n_users + 1  # every user, plus the cold-start list
        # any n and filter of a warmed user is a lookup
        test_client.get(f"/users/{KNOWN_USER}/recommendations?n=3&platforms=hulu&type=Movie")
        assert _cache(test_client)["hits"] == warmed["hits"] + 1
        assert _cache(test_client)["misses"] == warmed["misses"]


_FILTERS = [None, ["netflix"], ["hulu"], ["amazon_prime"], ["hulu", "netflix"],
            ["amazon_prime", "hulu", "netflix"]]


@pytest.mark.parametrize("depth", [serving_state.RANKED_DEPTH, 6])
def test_cached_ranked_lists_answer_exactly_like_the_recommender(
        paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch, depth: int):
    """Every n and filter served from a user's cached ranked list equals what
    Recommender.recommend answers for that query (depth 6 forces the fallback)."""
    monkeypatch.setattr(serving_state, "RANKED_DEPTH", depth)
    state = load_state(paths)
    recommender = state.recommender
    with TestClient(create_app(paths, state=state)) as test_client:
        for user in (1, 2, 3, 7, 20, UNKNOWN_USER):
            for n in (1, 4, 10, 100):
                for platforms in _FILTERS:
                    for kind in (None, "Movie", "TV Show"):
                        params = {"n": n, "platforms": platforms, "type": kind}
                        got = test_client.get(f"/users/{user}/recommendations",
                                              params={k: v for k, v in params.items() if v})
                        want = recommender.recommend(user, n=n, platforms=platforms, kind=kind)
                        items = got.json()["items"]
                        assert got.json()["cold_start"] == want.cold_start
                        assert [(i["rank"], i["item_id"], i["platform"], i["type"], i["score"])
                                for i in items] == [
                            (int(r.rank), r.item_id, r.platform, r.type, round(r.score, 3))
                            for r in want.items.itertuples()], (user, n, platforms, kind)



def test_warm_cache_is_bounded_by_capacity(paths: ProjectPaths):
    state = load_state(paths)
    cache = ResponseCache(size=5)
    assert warm_cache(state, cache, seconds=60) == 4  # the cold-start list takes one slot
    assert cache.info().size == 5
    assert warm_cache(state, ResponseCache(size=0), seconds=60) == 0


@pytest.mark.parametrize("stored", [False, True])
@pytest.mark.parametrize("above", [0, 1])
def test_the_new_user_policy_reaches_every_route(paths: ProjectPaths, stored: bool, above: int):
    """A champion whose policy asks more training ratings than a known user has answers
    them, cached, stored or not, with the cold-start list without their titles (and the
    others with their personal lists); a new user's too short list of ratings too."""
    import dataclasses

    from recsys_utils.ranking.precomputed import attach_precomputed

    state = load_state(paths)
    counts = state.recommender._user_counts
    cut = int(counts.max()) + above  # above: every user has too few; else none does
    policy = state.recommender.with_ranking(cold_start_list="popularity", personalise_from=cut)
    if stored:
        attach_precomputed(policy, depth=serving_state.RANKED_DEPTH)
    state = dataclasses.replace(state, recommender=policy)
    users = [int(u) for u, c in zip(policy.user_ids, counts, strict=True) if c == cut - above]
    with TestClient(create_app(paths, state=state)) as test_client:
        for user in users[:3]:
            for params in ({"n": 5}, {"n": 3, "platforms": "netflix"}):
                body = test_client.get(f"/users/{user}/recommendations", params=params).json()
                want = policy.recommend(user, n=params["n"],
                                        platforms=[params["platforms"]] if "platforms" in params
                                        else None)
                assert body["cold_start"] is want.cold_start is bool(above)
                assert [i["item_id"] for i in body["items"]] == want.items["item_id"].tolist()
                rated = set(policy.item_ids[policy._rated[policy._user_pos[user]].indices])
                assert not rated & {i["item_id"] for i in body["items"]}
        rated = policy.item_ids[np.argsort(-policy.n_ratings, kind="stable")[:cut - 1]].tolist()
        body = test_client.post("/recommendations", params={"n": 4}, json={
            "ratings": [{"title_id": state.titles.loc[state.titles["item_id"] == item, "id"]
                         .iloc[0], "score": 4.0} for item in rated]}).json()
        assert body["cold_start"] is True and body["n_ratings"] == cut - 1
        assert not set(rated) & {i["item_id"] for i in body["items"]}
