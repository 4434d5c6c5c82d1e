"""The endpoints (``serving.routes``) through FastAPI's TestClient, on artifacts built
from a small fixture.

The fixture project (``serving_fixture``) is cleaned by ``build_processed`` from raw
CSVs, its Recommender trained with fast settings and registered as champion, so the
app loads exactly what ``make pipeline`` would give it, in miniature. The last tests
swap the state with ``app.dependency_overrides[get_state]``.
"""

from __future__ import annotations

import math
import re
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_fixture import (
    KNOWN_USER,
    PLATFORMS,
    RATED_ID,
    SHARED,
    UNKNOWN_USER,
    UNRATED_ID,
    serving_project,
)

from recsys_utils.explore import analytics
from recsys_utils.lifecycle.registry import champion_version, read_manifest
from recsys_utils.paths import ProjectPaths
from recsys_utils.ranking.content import genre_words
from recsys_utils.serving import routes
from recsys_utils.serving.app import create_app
from recsys_utils.serving.schemas import MAX_N
from recsys_utils.serving.state import get_state, load_state

VALID_PLATFORMS = sorted(PLATFORMS)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> ProjectPaths:
    return serving_project(tmp_path_factory)


@pytest.fixture(scope="module")
def client(paths: ProjectPaths):
    # The lifespan loads the artifacts (no preloaded state): the path `make serve` uses.
    with TestClient(create_app(paths)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def ratings(paths: ProjectPaths) -> pd.DataFrame:
    return pd.read_parquet(paths.processed / "ratings.parquet")


@pytest.fixture(scope="module")
def analytics_df(paths: ProjectPaths) -> pd.DataFrame:
    return load_state(paths).analytics


# --------------------------------------------------------------------------- service


def test_health_reports_the_loaded_model(client: TestClient, paths: ProjectPaths):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["model_version"] == champion_version(paths)
    assert body["platforms"] == VALID_PLATFORMS
    assert body["n_titles"] == len(pd.read_parquet(paths.processed / "titles.parquet"))


def test_version_is_the_champion_manifest(client: TestClient, paths: ProjectPaths):
    response = client.get("/version")
    assert response.status_code == 200
    body = response.json()
    manifest = read_manifest(champion_version(paths), paths)
    assert body["version"] == manifest["version"]
    assert body["trained_at"] == manifest["created_at"]
    assert body["data_fingerprint"] == manifest["data_fingerprint"]
    assert body["metrics"] == {"rmse": 0.9}  # scalar metrics ...
    assert body["metrics_details"] == {"note_only": "fixture"}  # ... and the rest
    assert body["libraries"]["numpy"]


# --------------------------------------------------------------------------- recommendations


def test_known_user_gets_unseen_titles(client: TestClient, ratings: pd.DataFrame):
    response = client.get(f"/users/{KNOWN_USER}/recommendations", params={"n": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == KNOWN_USER
    assert body["cold_start"] is False
    items = body["items"]
    assert [item["rank"] for item in items] == [1, 2, 3, 4, 5]
    seen = set(ratings.loc[ratings["user_id"] == KNOWN_USER, "item_id"])
    assert not seen & {item["item_id"] for item in items}
    for item in items:
        assert 0.5 <= item["score"] <= 5.0
        assert item["title"] and item["platform"] in VALID_PLATFORMS
        assert item["type"] in ("Movie", "TV Show")


def test_unknown_user_gets_flagged_cold_start_list(client: TestClient):
    body = client.get(f"/users/{UNKNOWN_USER}/recommendations", params={"n": 3}).json()
    assert body["cold_start"] is True
    assert len(body["items"]) == 3


def test_platform_and_type_filters(client: TestClient):
    body = client.get(f"/users/{KNOWN_USER}/recommendations",
                      params={"platforms": "netflix", "type": "Movie", "n": 4}).json()
    assert body["platforms"] == ["netflix"] and body["type"] == "Movie"
    assert body["items"], "the filter should leave candidates"
    assert {i["platform"] for i in body["items"]} == {"netflix"}
    assert {i["type"] for i in body["items"]} == {"Movie"}


@pytest.mark.parametrize("query", ["platforms=hulu,netflix", "platforms=hulu&platforms=netflix"])
def test_several_platforms_comma_or_repeated(client: TestClient, query: str):
    body = client.get(f"/users/{KNOWN_USER}/recommendations?n=20&{query}").json()
    assert body["platforms"] == ["hulu", "netflix"]
    assert {i["platform"] for i in body["items"]} <= {"hulu", "netflix"}


def test_a_film_on_every_platform_is_one_title(client: TestClient, ratings: pd.DataFrame):
    copies = [f"{prefix}s{SHARED}" for prefix in PLATFORMS.values()]  # as10, hs10, ns10
    assert {client.get(f"/titles/{c}").json()["item_id"] for c in copies} == {"as10"}
    raters = set(ratings.loc[ratings["item_id"] == "as10", "user_id"])
    assert raters and "hs10" not in set(ratings["item_id"])  # ratings of copies count for it
    for user in sorted(set(ratings["user_id"])):
        body = client.get(f"/users/{user}/recommendations", params={"n": 60}).json()
        films = [i for i in body["items"] if i["item_id"] == "as10"]
        if user in raters:  # rated on one platform: never recommended on another
            assert not films
            continue
        assert len(films) <= 1  # once, with every platform
        if films:
            assert films[0]["platforms"] == VALID_PLATFORMS
            assert (films[0]["platform"], films[0]["id"]) == ("amazon_prime", "as10")
            only = client.get(f"/users/{user}/recommendations",
                              params={"n": 60, "platforms": "netflix"}).json()["items"]
            (there,) = [i for i in only if i["item_id"] == "as10"]
            assert (there["id"], there["platforms"]) == ("ns10", ["netflix"])
            return
    pytest.fail("no user was recommended the film on every platform")


def test_tv_show_filter_returns_only_shows(client: TestClient):
    body = client.get(f"/users/{UNKNOWN_USER}/recommendations",
                      params={"type": "TV Show", "n": 50}).json()
    assert body["items"] and {i["type"] for i in body["items"]} == {"TV Show"}


def test_unknown_platform_is_404_listing_valid_ones(client: TestClient):
    response = client.get(f"/users/{KNOWN_USER}/recommendations",
                          params={"platforms": "netflix,disney"})
    assert response.status_code == 404
    body = response.json()
    assert "disney" in body["detail"]
    assert body["field"] == "platforms"  # the parameter's name, as ErrorOut documents
    assert body["valid"] == VALID_PLATFORMS


@pytest.mark.parametrize(("url", "field"), [
    (f"/users/{KNOWN_USER}/recommendations?n=0", "n"),
    (f"/users/{KNOWN_USER}/recommendations?n={MAX_N + 1}", "n"),
    (f"/users/{KNOWN_USER}/recommendations?n=ten", "n"),
    (f"/users/{KNOWN_USER}/recommendations?type=Film", "type"),
    ("/users/abc/recommendations", "user_id"),
    ("/users/-1/recommendations", "user_id"),
    ("/users/99999999999999999999/recommendations", "user_id"),
    # another spelling of an id is not that id (int() would read 1_0 as 10, the rest as 1)
    ("/users/1_0/recommendations", "user_id"),
    ("/users/+1/recommendations", "user_id"),
    ("/users/%201/recommendations", "user_id"),
    ("/users/01/recommendations", "user_id"),
    ("/users/00/recommendations", "user_id"),
    ("/users/1.0/recommendations", "user_id"),
    ("/users/%D9%A1/recommendations", "user_id"),  # an Arabic-Indic digit one
    # an empty filter value is a 422 on every route, never "unknown ''" or an empty answer
    ("/analytics/longest?platform=", "platform"),
    ("/analytics/count-above-score?platform=%20", "platform"),
    ("/analytics/top-actor?platform=", "platform"),
    ("/analytics/titles-per-rating?rating=", "rating"),
    ("/analytics/productions-per-country?country=", "country"),
    ("/analytics/productions-per-country?country=%20%20", "country"),
    (f"/titles/{'x' * 65}", "title_id"),
    ("/analytics/longest?year=abc", "year"),
    ("/analytics/count-above-score?min_score=6", "min_score"),
    ("/analytics/count-above-score?min_score=nan", "min_score"),
    ("/analytics/longest?duration_type=hours", "duration_type"),
])
def test_invalid_parameters_are_readable_422(client: TestClient, url: str, field: str):
    response = client.get(url)
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == field
    assert field in body["detail"] and ":" in body["detail"]  # "query parameter 'n': ..."
    assert body["errors"][0]["location"].endswith(field)


# --------------------------------------------------------------------------- titles


def test_title_detail(client: TestClient, analytics_df: pd.DataFrame):
    body = client.get(f"/titles/{RATED_ID}").json()
    row = analytics_df.set_index("id").loc[RATED_ID]
    assert body["id"] == RATED_ID and body["title"] == row["title"]
    assert body["platform"] == "netflix"
    assert body["n_ratings"] == int(row["n_ratings"]) > 0
    assert math.isclose(body["mean_score"], float(row["mean_score"]), abs_tol=1e-3)


def test_unrated_title_has_null_mean_score_not_nan(client: TestClient):
    response = client.get(f"/titles/{UNRATED_ID}")
    assert response.status_code == 200
    assert "NaN" not in response.text
    assert response.json()["mean_score"] is None and response.json()["n_ratings"] == 0


def test_unknown_title_is_404(client: TestClient):
    for url in ("/titles/zz999", "/titles/zz999/similar"):
        response = client.get(url)
        assert response.status_code == 404
        assert "zz999" in response.json()["detail"]
        assert response.json()["field"] == "title_id"  # the path parameter's name


def test_similar_titles(client: TestClient):
    body = client.get(f"/titles/{RATED_ID}/similar", params={"n": 4}).json()
    assert body["id"] == RATED_ID
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 4 and RATED_ID not in ids
    assert all(i["similarity"] is not None for i in body["items"])
    assert body["basis"] == "ratings"


def test_similar_for_title_without_ratings_is_found_by_content(client: TestClient,
                                                                paths: ProjectPaths):
    """Nobody rated it, so the model has no neighbours for it in its item space: the titles
    closest in content, said so by ``basis``."""
    response = client.get(f"/titles/{UNRATED_ID}/similar", params={"n": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == UNRATED_ID and body["basis"] == "content"
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 5 and body["item_id"] not in ids
    sims = [i["similarity"] for i in body["items"]]
    assert sims == sorted(sims, reverse=True) and 0 < sims[0] <= 1
    titles = pd.read_parquet(paths.processed / "titles.parquet")
    genres = titles.drop_duplicates("item_id").set_index("item_id")["genres"]
    assert genre_words(genres[body["item_id"]]) & genre_words(genres[ids[0]])  # shares one


# --------------------------------------------------------------------------- analytics


def test_analytics_endpoints_answer_like_the_library(client: TestClient,
                                                      analytics_df: pd.DataFrame):
    """Same functions as the notebook: the API only wraps their answers."""
    got = client.get("/analytics/longest",
                     params={"platform": "netflix", "year": 2001, "duration_type": "min"}).json()
    want = analytics.longest_title(analytics_df, "netflix", 2001, "min")
    assert got["found"] == want.found and got["title"] == want.title
    assert got["duration_int"] == want.duration_int and got["id"].startswith("ns")

    got = client.get("/analytics/count-above-score",
                     params={"platform": "hulu", "year": 2002, "min_score": 3}).json()
    assert got["count"] == analytics.count_titles_above_score(analytics_df, "hulu", 2002, 3).count

    got = client.get("/analytics/titles-per-platform").json()
    assert got["counts"] == analytics.titles_per_platform(analytics_df).counts
    assert set(got["counts"]) == set(VALID_PLATFORMS)

    got = client.get("/analytics/top-actor", params={"platform": "amazon_prime"}).json()
    assert got["actor"] == analytics.top_actor(analytics_df, "amazon_prime").actor
    assert got["found"] is True

    got = client.get("/analytics/productions-per-country",
                     params={"type": "Movie", "year": 2003}).json()
    assert got["counts"] == analytics.productions_per_country(analytics_df, "Movie", 2003).counts

    got = client.get("/analytics/titles-per-rating").json()
    assert got["counts"] == analytics.titles_per_maturity_rating(analytics_df).counts
    got = client.get("/analytics/titles-per-rating", params={"rating": "R"}).json()
    assert list(got["counts"]) == ["R"] and got["counts"]["R"] > 0


def test_analytics_empty_slice_is_an_explicit_empty_answer(client: TestClient):
    body = client.get("/analytics/longest", params={"platform": "netflix", "year": 1850}).json()
    assert body["found"] is False and body["title"] is None and body["message"]


@pytest.mark.parametrize("url", [
    "/analytics/longest?platform=disney",
    "/analytics/count-above-score?platform=disney",
    "/analytics/top-actor?platform=disney",
    "/analytics/productions-per-country?platform=disney",
])
def test_analytics_unknown_platform_is_404(client: TestClient, url: str):
    response = client.get(url)
    assert response.status_code == 404
    assert response.json()["valid"] == VALID_PLATFORMS


def test_unknown_maturity_rating_is_404_listing_ratings(client: TestClient):
    response = client.get("/analytics/titles-per-rating", params={"rating": "XXX"})
    assert response.status_code == 404
    assert "R" in response.json()["valid"]


# --------------------------------------------------------------------------- schema


def test_openapi_documents_every_response_field(client: TestClient):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    recs = schemas["RecommendationsOut"]["properties"]
    assert {"user_id", "cold_start", "items", "model_version"} <= set(recs)
    assert set(schemas["RecommendedTitle"]["properties"]) >= {"rank", "title", "platform",
                                                              "score"}
    operations = [(path, op) for path, ops in spec["paths"].items() for op in ops.values()]
    assert {p for p, _ in operations} == set(spec["paths"])
    for path, op in operations:
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in ok, f"{path}: the 200 answer has no response model"
        for code in ("404", "422"):
            if code in op["responses"]:
                ref = op["responses"][code]["content"]["application/json"]["schema"]
                assert ref["$ref"].endswith("/ErrorOut"), path




# --------------------------------------------------------------------------- state through Depends


def test_nan_in_manifest_metrics_becomes_null(paths: ProjectPaths):
    state = load_state(paths)
    state.manifest = {**state.manifest, "metrics": {"rmse": float("nan"), "mae": 0.7}}
    with TestClient(create_app(paths, state=state)) as test_client:
        response = test_client.get("/version")
    assert response.status_code == 200 and "NaN" not in response.text
    assert response.json()["metrics"] == {"rmse": None, "mae": 0.7}



def test_dependency_override_serves_another_state(paths: ProjectPaths):
    """Every route reads the state through Depends(get_state): an override reaches all."""
    original = load_state(paths)
    other = load_state(paths)
    other.manifest = {**other.manifest, "version": "v9999"}
    other.titles_by_id = {RATED_ID: original.titles_by_id[RATED_ID]}
    app = create_app(paths, state=original)
    app.dependency_overrides[get_state] = lambda: other
    with TestClient(app) as test_client:
        assert test_client.get("/health").json()["model_version"] == "v9999"
        assert test_client.get("/health").json()["n_titles"] == 1
        assert test_client.get("/version").json()["version"] == "v9999"
        recs = test_client.get(f"/users/{KNOWN_USER}/recommendations").json()
        assert recs["model_version"] == "v9999"
        assert test_client.get(f"/titles/{RATED_ID}").status_code == 200
        assert test_client.get(f"/titles/{UNRATED_ID}").status_code == 404  # not in `other`
        app.dependency_overrides.clear()
        assert test_client.get(f"/titles/{UNRATED_ID}").status_code == 200
        assert test_client.get("/version").json()["version"] == original.manifest["version"]


def test_overridden_state_never_reads_another_states_cache(paths: ProjectPaths):
    """The cache keys on the state object: a list cached for one state is not served
    for another (here: a state whose model knows no user, so every list is cold start)."""
    real = load_state(paths)
    app = create_app(paths, state=real)
    with TestClient(app) as test_client:
        url = f"/users/{KNOWN_USER}/recommendations?n=3"
        assert test_client.get(url).json()["cold_start"] is False  # now cached for `real`
        cold = load_state(paths)
        cold.recommender.known_user = lambda user: False
        app.dependency_overrides[get_state] = lambda: cold
        assert test_client.get(url).json()["cold_start"] is True


# --------------------------------------------------------------------------- one rule for filter values


@pytest.mark.parametrize("spelling", ["netflix", "NETFLIX", "Netflix", " netflix "])
def test_platform_case_is_one_rule_for_analytics_and_recommendations(client: TestClient,
                                                                      spelling: str):
    """`?platform=` on /analytics/* and `?platforms=` on recommendations match the same
    way (case and blanks do not matter) and answer with the canonical name."""
    analytics_answer = client.get("/analytics/top-actor", params={"platform": spelling})
    recs = client.get(f"/users/{KNOWN_USER}/recommendations",
                      params={"platforms": spelling, "n": 3})
    assert analytics_answer.status_code == recs.status_code == 200
    assert analytics_answer.json()["platform"] == "netflix"
    assert recs.json()["platforms"] == ["netflix"]
    assert {i["platform"] for i in recs.json()["items"]} == {"netflix"}


def test_platform_spellings_of_one_platform_are_one_filter(client: TestClient):
    body = client.get(f"/users/{KNOWN_USER}/recommendations?platforms=Hulu,HULU&n=3").json()
    assert body["platforms"] == ["hulu"]
    mixed = client.get(f"/users/{KNOWN_USER}/recommendations?platforms=Amazon Prime&n=3")
    assert mixed.json()["platforms"] == ["amazon_prime"]  # the analytics rule: blanks = _


@pytest.mark.parametrize(("url", "field"), [
    ("/analytics/top-actor?platform=Disney", "platform"),
    (f"/users/{KNOWN_USER}/recommendations?platforms=Disney", "platforms")])
def test_unknown_platform_in_any_case_is_the_same_404(client: TestClient, url: str,
                                                      field: str):
    response = client.get(url)
    assert response.status_code == 404
    assert response.json()["detail"].startswith("unknown platform 'Disney'")
    assert response.json()["field"] == field  # each route's own parameter
    assert response.json()["valid"] == VALID_PLATFORMS


@pytest.mark.parametrize("value", [",,,", "netflix,", "netflix, ,hulu", " "])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_platforms_value_naming_no_platform_is_422(client: TestClient, value: str,
                                                      method: str):
    """Like the empty `platforms=`: dropping the blank names served the list unfiltered."""
    url = f"/users/{KNOWN_USER}/recommendations" if method == "GET" else "/recommendations"
    response = client.request(method, url, params={"platforms": value},
                              json={"ratings": []} if method == "POST" else None)
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "platforms" and "non-blank" in body["detail"]
    assert body["errors"][0]["location"] == "query.platforms.0"


def test_canonical_user_ids_are_accepted(client: TestClient):
    for user in (0, 10, KNOWN_USER, 2**31 - 1):
        response = client.get(f"/users/{user}/recommendations", params={"n": 1})
        assert response.status_code == 200 and response.json()["user_id"] == user


@pytest.mark.parametrize(("pattern", "url"), [
    (routes.PLATFORM_NAMES, f"/users/{KNOWN_USER}/recommendations?n=1&platforms="),
    (routes.NON_BLANK, "/analytics/top-actor?platform="),
    (routes.NON_BLANK, "/analytics/productions-per-country?country="),
])
@pytest.mark.parametrize("value", ["netflix", " hulu , netflix ", ",,,", "netflix,", " ",
                                   "\t", "a,\x1c", "\x1c", ",netflix", "x"])
def test_the_published_pattern_is_the_rule_applied(client: TestClient, pattern: str,
                                                   url: str, value: str):
    """The schema's `pattern` (what clients and schemathesis go by) accepts exactly the
    values the API does not refuse with a 422."""
    assert pattern in _patterns(client.get("/openapi.json").json())
    refused = client.get(url + quote(value, safe="")).status_code == 422
    assert refused == (re.search(pattern, value) is None), value


def _patterns(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        return found.union(*(_patterns(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_patterns(v) for v in node))
    return set()


# --------------------------------------------------------------------------- bad input, short answers


def test_empty_platforms_names_the_parameter_not_an_index(client: TestClient):
    response = client.get(f"/users/{KNOWN_USER}/recommendations?platforms=")
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "platforms"
    assert body["detail"].startswith("query parameter 'platforms'")
    assert body["errors"][0]["location"] == "query.platforms.0"  # the precise place stays


def test_garbage_platform_is_echoed_as_a_short_printable_excerpt(client: TestClient):
    garbage = "".join(chr(c) for c in range(1, 32)) * 16  # 496 control characters
    response = client.get(f"/users/{KNOWN_USER}/recommendations", params={"platforms": garbage})
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert detail.isprintable() and "..." in detail
    quoted = detail.split("unknown platform ", 1)[1].split("; valid values", 1)[0]
    assert len(quoted) <= 48, quoted  # an excerpt, not the 496 characters
    assert response.json()["valid"] == VALID_PLATFORMS


def test_garbage_title_id_is_echoed_as_a_short_printable_excerpt(client: TestClient):
    garbage = "\x00\x7f\x1b" * 21  # 63 characters, none printable
    response = client.get(f"/titles/{quote(garbage, safe='')}")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert detail.isprintable() and len(detail) < 120
