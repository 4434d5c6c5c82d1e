"""The API answers from a model's precomputed lists exactly what Recommender.recommend answers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from serving_fixture import UNKNOWN_USER, serving_project

from recsys_utils.paths import ProjectPaths
from recsys_utils.ranking import precomputed
from recsys_utils.serving.app import create_app
from recsys_utils.serving.state import RANKED_DEPTH, load_state

_FILTERS = [None, ["netflix"], ["hulu", "netflix"]]


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> ProjectPaths:
    return serving_project(tmp_path_factory)


def test_served_lists_from_precomputed_lists_equal_recommend(paths: ProjectPaths,
                                                             monkeypatch: pytest.MonkeyPatch):
    state = load_state(paths)
    recommender = state.recommender
    precomputed.attach_precomputed(recommender, depth=RANKED_DEPTH)
    used = []
    real = precomputed.stored_top

    def counting(*args, **kwargs):
        got = real(*args, **kwargs)
        used.append(args[2] if got is not None else None)
        return got

    monkeypatch.setattr(precomputed, "stored_top", counting)
    with TestClient(create_app(paths, state=state)) as client:
        for user in (1, 2, 3, 7, 20, UNKNOWN_USER):
            for n in (1, 10, 100):
                for platforms in _FILTERS:
                    for kind in (None, "Movie"):
                        params = {"n": n, "platforms": platforms, "type": kind}
                        got = client.get(f"/users/{user}/recommendations",
                                         params={k: v for k, v in params.items() if v}).json()
                        want = recommender.recommend(user, n=n, platforms=platforms, kind=kind)
                        assert got["cold_start"] == want.cold_start
                        assert [(i["rank"], i["item_id"], i["platform"], i["type"], i["score"])
                                for i in got["items"]] == [
                            (int(r.rank), r.item_id, r.platform, r.type, round(r.score, 3))
                            for r in want.items.itertuples()], (user, n, platforms, kind)
    assert set(used) == {1, 2, 3, 7, 20}  # every known user was answered from the lists
