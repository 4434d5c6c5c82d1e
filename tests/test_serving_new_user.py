"""``POST /recommendations``: a new user's ratings in, recommendations out (the fold-in).

The answer must be exactly the Recommender's fold-in (``recommend_for_ratings``) for the
same ratings and filters, and the endpoint validates like ``GET /users/{id}/recommendations``:
scores on the 0.5-5 half-step scale, known title ids (a 404 quoting a short excerpt of the
unknown ones), no title twice, at most ``MAX_RATINGS`` ratings, an empty list flagged as
the cold-start list.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from serving_fixture import (
    PLATFORMS,
    RATED_ID,
    SHARED,
    UNKNOWN_USER,
    UNRATED_ID,
    serving_project,
)

from recsys_utils.paths import ProjectPaths
from recsys_utils.serving.app import create_app
from recsys_utils.serving.schemas import MAX_BODY_BYTES, MAX_RATINGS, NewUserRatingsIn
from recsys_utils.serving.state import (
    RatingsError,
    ServingState,
    UnknownTitlesError,
    get_state,
    load_state,
    recommend_new_user,
)

URL = "/recommendations"


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> ProjectPaths:
    return serving_project(tmp_path_factory)


@pytest.fixture(scope="module")
def state(paths: ProjectPaths) -> ServingState:
    return load_state(paths)


@pytest.fixture(scope="module")
def client(paths: ProjectPaths, state: ServingState):
    with TestClient(create_app(paths, state=state, reload_seconds=0)) as test_client:
        yield test_client


def _body(ratings: dict[str, float]) -> dict:
    return {"ratings": [{"title_id": t, "score": s} for t, s in ratings.items()]}


def _rows(items: list[dict]) -> list[tuple]:
    return [(i["rank"], i["item_id"], i["platform"], i["type"], i["score"]) for i in items]


def _want(recs) -> list[tuple]:  # noqa: ANN001 - a Recommendations
    return [(int(r.rank), r.item_id, r.platform, r.type, round(r.score, 3))
            for r in recs.items.itertuples()]


RATED = {RATED_ID: 5.0, "hs2": 1.5, "as3": 4.0}


def test_answer_is_the_recommenders_fold_in(client: TestClient, state: ServingState):
    response = client.post(URL, json=_body(RATED), params={"n": 7})
    assert response.status_code == 200
    body = response.json()
    assert body["cold_start"] is False and body["n_ratings"] == 3
    assert body["model_version"] == state.manifest["version"]
    want = state.recommender.recommend_for_ratings(RATED, n=7)  # ids equal item ids here
    assert _rows(body["items"]) == _want(want) and len(body["items"]) == 7
    assert not {i["id"] for i in body["items"]} & set(RATED)  # never a rated title
    # the ratings matter: other ratings, another list
    other = client.post(URL, json=_body({RATED_ID: 0.5, "hs2": 5.0}), params={"n": 7}).json()
    assert _rows(other["items"]) != _rows(body["items"])


def test_a_film_rated_on_one_platform_is_not_recommended_on_another(client: TestClient):
    hulu, netflix = f"hs{SHARED}", f"ns{SHARED}"  # one film (item_id as10) on both
    cold = client.post(URL, json=_body({RATED_ID: 4.0}), params={"n": 60}).json()
    assert "as10" in {i["item_id"] for i in cold["items"]}  # recommendable ...
    body = client.post(URL, json=_body({RATED_ID: 4.0, hulu: 5.0}), params={"n": 60}).json()
    assert "as10" not in {i["item_id"] for i in body["items"]}  # ... until rated on hulu
    twice = client.post(URL, json=_body({hulu: 5.0, netflix: 4.0}))
    assert twice.status_code == 422 and "same title on another platform" in twice.text


@pytest.mark.parametrize(("params", "platforms", "kind"), [
    ({"platforms": "NETFLIX"}, ["netflix"], None),
    ({"platforms": "hulu, netflix", "type": "Movie"}, ["hulu", "netflix"], "Movie"),
    ({"platforms": ["amazon_prime", "hulu"], "type": "TV Show"}, ["amazon_prime", "hulu"],
     "TV Show"),
])
def test_same_filters_as_the_user_endpoint(client: TestClient, state: ServingState,
                                           params: dict, platforms: list[str], kind: str | None):
    response = client.post(URL, json=_body(RATED), params={"n": 5, **params})
    assert response.status_code == 200
    body = response.json()
    assert body["platforms"] == platforms and body["type"] == kind
    assert all(i["platform"] in platforms for i in body["items"])
    assert all(kind is None or i["type"] == kind for i in body["items"])
    want = state.recommender.recommend_for_ratings(RATED, n=5, platforms=platforms, kind=kind)
    assert _rows(body["items"]) == _want(want)


def test_empty_ratings_get_the_cold_start_list_flagged(client: TestClient,
                                                       state: ServingState):
    body = client.post(URL, json={"ratings": []}, params={"n": 6}).json()
    assert body["cold_start"] is True and body["n_ratings"] == 0
    assert _rows(body["items"]) == _want(state.recommender.recommend(UNKNOWN_USER, n=6))
    # the same list GET gives an unknown user
    cold = client.get(f"/users/{UNKNOWN_USER}/recommendations", params={"n": 6}).json()
    assert body["items"] == cold["items"]


@pytest.mark.parametrize("score", [0.5, 1, 2.5, 5])
def test_scores_on_the_half_step_scale_are_accepted(client: TestClient, score: float):
    assert client.post(URL, json=_body({RATED_ID: score})).status_code == 200


@pytest.mark.parametrize("score", [0, 0.4, 5.5, 3.3, 4.25, -1, "abc", None, 1e308,
                                   # a JSON number only: not a bool or a numeric string
                                   True, False, "4", "4.5", [4]])
def test_scores_off_the_scale_are_422(client: TestClient, score):
    response = client.post(URL, json=_body({RATED_ID: score}))
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "score" and body["errors"][0]["location"] == "body.ratings.0.score"


def test_unknown_title_ids_are_a_404_quoting_a_short_excerpt(client: TestClient):
    response = client.post(URL, json=_body({RATED_ID: 4.0, "zz404": 3.0}))
    assert response.status_code == 404
    body = response.json()
    assert body["field"] == "title_id"
    assert "'zz404'" in body["detail"] and "1 of 2 ratings" in body["detail"]
    # hundreds of long unknown ids: a few quoted, each cut, the rest counted
    many = {f"{'x' * 60}{k:03d}": 3.0 for k in range(MAX_RATINGS)}
    response = client.post(URL, json=_body(many))
    detail = response.json()["detail"]
    assert response.status_code == 404
    assert f"and {MAX_RATINGS - 5} more" in detail
    assert f"({MAX_RATINGS} of {MAX_RATINGS} ratings)" in detail
    assert len(detail) < 500 and "valid" not in response.json()


def test_a_title_rated_twice_is_a_422_naming_it(client: TestClient):
    body = {"ratings": [{"title_id": RATED_ID, "score": 4.0}, {"title_id": "hs2", "score": 2.0},
                        {"title_id": RATED_ID, "score": 1.0}]}
    response = client.post(URL, json=body)
    assert response.status_code == 422
    answer = response.json()
    assert answer["field"] == "title_id"
    assert answer["errors"][0]["location"] == "body.ratings.2.title_id"
    assert f"'{RATED_ID}' is rated twice" in answer["detail"]


def test_two_platform_copies_of_one_film_are_the_same_title(state: ServingState):
    """In the `linked` source one film has an id per platform; rating both is rating it
    twice (the fixture's ids are all distinct films, so a copy is made here)."""
    linked = load_state(state.paths)
    record = linked.titles_by_id[RATED_ID]
    linked.titles_by_id = {**linked.titles_by_id,
                           "hs99": record.model_copy(update={"id": "hs99", "platform": "hulu"})}
    body = NewUserRatingsIn.model_validate(_body({RATED_ID: 4.0, "hs99": 2.0}))
    with pytest.raises(RatingsError, match="same title on another platform") as err:
        recommend_new_user(linked, body)
    assert err.value.location == ("body", "ratings", 1, "title_id")


def test_a_catalog_title_the_model_does_not_know_is_a_404(state: ServingState,
                                                          paths: ProjectPaths):
    """Tables rebuilt after the model was trained: the title is in the catalog, not in
    the model's item index."""
    newer = load_state(paths)
    record = newer.titles_by_id[UNRATED_ID]
    newer.titles_by_id = {**newer.titles_by_id,
                          "ns999": record.model_copy(update={"id": "ns999", "item_id": "ns999"})}
    with pytest.raises(UnknownTitlesError, match="not in model"):
        recommend_new_user(newer, NewUserRatingsIn.model_validate(_body({"ns999": 3.0})))
    app = create_app(paths, state=newer, reload_seconds=0)
    with TestClient(app) as test_client:
        response = test_client.post(URL, json=_body({"ns999": 3.0}))
    assert response.status_code == 404 and "'ns999'" in response.json()["detail"]


def test_at_most_max_ratings(client: TestClient):
    too_many = {"ratings": [{"title_id": f"t{k}", "score": 3.0} for k in range(MAX_RATINGS + 1)]}
    response = client.post(URL, json=too_many)
    assert response.status_code == 422 and response.json()["field"] == "ratings"
    assert str(MAX_RATINGS) in response.json()["detail"]


@pytest.mark.parametrize("body", [None, {}, {"ratings": None}, {"ratings": {"ns1": 4}},
                                  {"ratings": [], "user": 3},
                                  {"ratings": [{"title_id": "ns1", "score": 4, "x": 1}]},
                                  {"ratings": [{"title_id": "", "score": 4}]},
                                  {"ratings": [{"score": 4}]},
                                  {"ratings": [{"title_id": 1, "score": 4}]},
                                  {"ratings": [{"title_id": True, "score": 4}]}])
def test_malformed_bodies_are_422(client: TestClient, body):
    response = client.post(URL, json=body)
    assert response.status_code == 422 and response.json()["detail"]


def test_bad_filters_are_the_user_endpoints_errors(client: TestClient):
    for params, status in [({"n": 0}, 422), ({"n": 101}, 422), ({"type": "Podcast"}, 422),
                           ({"platforms": "disney"}, 404)]:
        got = client.post(URL, json=_body(RATED), params=params)
        user = client.get("/users/1/recommendations", params=params)
        assert got.status_code == user.status_code == status, params
        assert got.json()["field"] == user.json()["field"], params
    assert sorted(client.post(URL, json=_body(RATED), params={"platforms": "disney"})
                  .json()["valid"]) == sorted(PLATFORMS)


def test_the_answer_follows_an_overridden_state(paths: ProjectPaths, state: ServingState):
    """The handler reads the state through Depends(get_state), like every route."""
    other = load_state(paths)
    other.manifest = {**other.manifest, "version": "v9999"}
    app = create_app(paths, state=state, reload_seconds=0)
    app.dependency_overrides[get_state] = lambda: other
    with TestClient(app) as test_client:
        assert test_client.post(URL, json=_body(RATED)).json()["model_version"] == "v9999"


def test_a_body_that_is_not_json_is_a_readable_error(client: TestClient):
    response = client.post(URL, content=b'{"ratings": [', headers={"content-type":
                                                                   "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body: not valid JSON at character 13")
    response = client.post(URL, content=b"\xff6\xfe", headers={"content-type":
                                                              "application/json"})
    assert response.status_code == 400 and response.json()["detail"]  # documented in the schema


# --------------------------------------------------------------------------- the body itself


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
def test_json_sent_as_another_type_is_415_naming_application_json(client: TestClient,
                                                                  content_type: str | None):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(URL, content=b'{"ratings": []}', headers=headers)
    assert response.status_code == 415
    body = response.json()
    assert "application/json" in body["detail"] and body["field"] == "body"
    assert (content_type or "no Content-Type") in body["detail"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "Application/JSON", "application/vnd.api+json"])
def test_any_json_content_type_is_read(client: TestClient, content_type: str):
    response = client.post(URL, content=b'{"ratings": []}',
                           headers={"content-type": content_type})
    assert response.status_code == 200 and response.json()["cold_start"] is True


def test_no_body_at_all_is_still_the_422_that_says_it_is_missing(client: TestClient):
    response = client.post(URL, headers={"content-type": "text/plain"})
    assert response.status_code == 422 and response.json()["field"] == "body"


def _padded(size: int) -> bytes:
    """A valid body of exactly ``size`` bytes (blanks are valid JSON)."""
    body = b'{"ratings": [{"title_id": "ns1", "score": 4}]}'
    return body + b" " * (size - len(body))


def test_a_body_over_the_limit_is_413_in_the_error_shape(client: TestClient):
    assert client.post(URL, content=_padded(MAX_BODY_BYTES),
                       headers={"content-type": "application/json"}).status_code == 200
    response = client.post(URL, content=_padded(MAX_BODY_BYTES + 1),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    body = response.json()
    assert body["field"] == "body" and f"{MAX_BODY_BYTES:,} bytes" in body["detail"]


def test_a_streamed_body_without_length_is_counted(client: TestClient):
    """Chunked: no Content-Length to refuse up front, so the bytes are counted as read."""
    def chunks(body: bytes):  # noqa: ANN202 - a generator
        yield from (body[i:i + 4096] for i in range(0, len(body), 4096))

    big = client.post(URL, content=chunks(_padded(MAX_BODY_BYTES + 1)),
                      headers={"content-type": "application/json"})
    assert big.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in big.request.headers
    assert big.status_code == 413 and big.json()["field"] == "body"
    small = client.post(URL, content=chunks(_padded(1000)),
                        headers={"content-type": "application/json"})
    assert small.status_code == 200


def test_the_body_limit_is_a_setting(paths: ProjectPaths, state: ServingState,
                                     monkeypatch: pytest.MonkeyPatch):
    body = _padded(2000)
    for app in (create_app(paths, state=state, reload_seconds=0, max_body_bytes=1000),
                _with_env(monkeypatch, "RECSYS_MAX_BODY_BYTES", "1000", paths, state)):
        with TestClient(app) as test_client:
            response = test_client.post(URL, content=body,
                                        headers={"content-type": "application/json"})
        assert response.status_code == 413 and "1,000 bytes" in response.json()["detail"]


def _with_env(monkeypatch: pytest.MonkeyPatch, name: str, value: str, paths: ProjectPaths,
              state: ServingState):  # noqa: ANN202 - a FastAPI app
    monkeypatch.setenv(name, value)
    return create_app(paths, state=state, reload_seconds=0)
