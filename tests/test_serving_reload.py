"""A new champion is served without a restart (``state.ChampionWatch``), in-process.

Each test works on its own copy of the fixture project: it registers and promotes
versions with the registry's own functions, then calls ``app.state.watch.check()``
(what the lifespan's poller runs every ``reload_seconds``) and reads the API. The
real server, polling on its own, is tested in ``test_serving_server.py``.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_fixture import KNOWN_USER, RATED_ID, register_other_champion, serving_project

from recsys_utils.lifecycle.registry import champion_version, promote, read_manifest, rollback
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.serving.app import create_app
from recsys_utils.serving.state import ResponseCache, load_state, pointer_stamp

BODY = {"ratings": [{"title_id": RATED_ID, "score": 4.5}, {"title_id": "hs2", "score": 1.0}]}


@pytest.fixture
def paths(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> ProjectPaths:
    """A private copy of the fixture project (these tests move its champion pointer)."""
    copy = project_paths(tmp_path / "project")
    shutil.copytree(serving_project(tmp_path_factory).root, copy.root)
    return copy


def _version(client: TestClient) -> str:
    return client.get("/version").json()["version"]


def _user_items(client: TestClient) -> list[str]:
    return [i["item_id"] for i in
            client.get(f"/users/{KNOWN_USER}/recommendations", params={"n": 10}).json()["items"]]


def test_a_promotion_is_served_at_the_next_request(paths: ProjectPaths):
    app = create_app(paths, reload_seconds=0)
    with TestClient(app) as client:
        old = _version(client)
        before = _user_items(client)
        assert client.get("/health").json()["recommendation_cache"]["size"] == 1
        assert app.state.watch.check() is False  # nothing changed: no load
        new = register_other_champion(paths)
        assert app.state.watch.check() is True
        assert _version(client) == new != old
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["model_version"] == new
        assert health["reload"]["reloads"] == 1 and health["reload"]["error"] is None
        assert health["recommendation_cache"]["size"] == 0  # a new, empty cache
        # every route answers from the new model
        want = app.state.serving.recommender.recommend(KNOWN_USER, n=10).items["item_id"]
        assert _user_items(client) == list(want) != before
        assert client.post("/recommendations", json=BODY).json()["model_version"] == new
        assert app.state.cache.state is app.state.serving
        # a rollback is a pointer change too
        rollback(paths=paths)
        assert app.state.watch.check() is True and _version(client) == old


def test_a_rewritten_pointer_naming_the_same_champion_loads_nothing(paths: ProjectPaths):
    app = create_app(paths, reload_seconds=0)
    with TestClient(app):
        state = app.state.serving
        pointer = paths.models / "champion.json"
        text = pointer.read_text(encoding="utf-8")
        pointer.unlink()
        pointer.write_text(text, encoding="utf-8")  # new inode, same version
        assert pointer_stamp(paths) != state.pointer_stamp
        assert app.state.watch.check() is False
        assert app.state.serving is state and app.state.watch.reloads == 0


def test_in_flight_requests_finish_on_the_state_they_started_with(paths: ProjectPaths):
    """A request that resolved its state before the swap answers from the old model,
    and puts nothing in the new state's cache; the next request gets the new model."""
    app = create_app(paths, reload_seconds=0)
    with TestClient(app) as client:
        old_state = app.state.serving
        old = old_state.manifest["version"]
        entered, proceed = threading.Event(), threading.Event()
        fold_in = old_state.recommender.recommend_for_ratings

        def held(*args, **kwargs):  # noqa: ANN002, ANN003 - the Recommender's signature
            entered.set()
            assert proceed.wait(30), "the test never released the request"
            return fold_in(*args, **kwargs)

        old_state.recommender.recommend_for_ratings = held
        answers: dict[str, dict] = {}
        request = threading.Thread(target=lambda: answers.update(
            post=client.post("/recommendations", json=BODY).json()))
        request.start()
        try:
            assert entered.wait(30), "the request never reached the model"
            new = register_other_champion(paths)
            assert app.state.watch.check() is True  # swapped while the request runs
            assert app.state.serving is not old_state
        finally:
            proceed.set()
            request.join(30)
        assert answers["post"]["model_version"] == old  # finished on the old state
        assert [i["item_id"] for i in answers["post"]["items"]] == list(
            fold_in({RATED_ID: 4.5, "hs2": 1.0}, n=10).items["item_id"])
        assert client.post("/recommendations", json=BODY).json()["model_version"] == new


def test_a_request_on_the_old_state_never_fills_the_new_cache(paths: ProjectPaths):
    old, new = load_state(paths), load_state(paths)
    cache = ResponseCache(16, new)
    cold_start, items = cache.recommend(old, KNOWN_USER, 5, None, None)
    assert cache.info().size == 0 and len(items) == 5 and not cold_start
    cache.recommend(new, KNOWN_USER, 5, None, None)
    assert cache.info().size == 1


@pytest.mark.parametrize("damage", ["tamper", "delete"])
def test_a_bad_new_champion_keeps_the_old_one_and_health_says_why(
        paths: ProjectPaths, damage: str, caplog: pytest.LogCaptureFixture):
    app = create_app(paths, reload_seconds=0)
    with TestClient(app) as client:
        old = _version(client)
        new = register_other_champion(paths)
        model_file = paths.models / new / "model.pkl"
        if damage == "tamper":
            model_file.write_bytes(model_file.read_bytes() + b"tampered")
        else:
            model_file.unlink()
        with caplog.at_level("ERROR", logger="recsys_utils.serving.state"):
            assert app.state.watch.check() is False
        assert _version(client) == old  # still the old model, no 500 anywhere
        assert client.post("/recommendations", json=BODY).status_code == 200
        assert client.get(f"/users/{KNOWN_USER}/recommendations").status_code == 200
        health = client.get("/health").json()
        assert health["status"] == "stale" and health["model_version"] == old
        assert health["reload"]["failed_version"] == new
        assert ("checksum mismatch" if damage == "tamper" else "is missing") in (
            health["reload"]["error"])
        # /health is public: the file is named from the project root, the server's own
        # directories are not shown (the log, for the operator, keeps the whole path)
        assert f"outputs/models/{new}/model.pkl" in health["reload"]["error"]
        assert str(paths.root) not in health["reload"]["error"]
        assert str(paths.root.resolve()) not in health["reload"]["error"]
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and f"still serving {old}" in lines[0]
        assert str(model_file) in lines[0]
        # unchanged pointer: not retried (each try would hash the model again)
        assert app.state.watch.check() is False and len(caplog.records) == 1
        # a good promotion clears the error
        promote(old, paths, reason="back to the good one")
        good = register_other_champion(paths)
        assert app.state.watch.check() is True
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["model_version"] == good
        assert health["reload"]["error"] is None and health["reload"]["failed_version"] is None


def test_an_unreadable_pointer_keeps_the_old_champion(paths: ProjectPaths):
    app = create_app(paths, reload_seconds=0)
    with TestClient(app) as client:
        old = _version(client)
        (paths.models / "champion.json").write_text('{"version": "../etc"}', encoding="utf-8")
        assert app.state.watch.check() is False
        assert _version(client) == old
        health = client.get("/health").json()
        assert health["status"] == "stale" and "names no version" in health["reload"]["error"]
        (paths.models / "champion.json").unlink()
        assert app.state.watch.check() is False
        assert "no champion model" in client.get("/health").json()["reload"]["error"]
        assert client.get(f"/users/{KNOWN_USER}/recommendations").status_code == 200


def test_the_lifespan_polls_the_pointer(paths: ProjectPaths):
    """With reload_seconds > 0 the app reloads on its own (no explicit check)."""
    import time

    app = create_app(paths, reload_seconds=0.05)
    with TestClient(app) as client:
        new = register_other_champion(paths)
        deadline = time.monotonic() + 30
        while _version(client) != new and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _version(client) == new == champion_version(paths)
        health = client.get("/health").json()["reload"]
        assert health["check_seconds"] == 0.05 and health["checked_at"]
        assert read_manifest(new, paths)["notes"] == "reload test"
