"""The API serves a promoted Spark batch version from its precomputed lists.

The batch is built without Spark: the frames ``scale_out.batch.save_batch`` gathers
(``top_n`` overall and per platform, ``similar``, the factors), ranked here from random
factors the way ``scale_out.als.top_n`` ranks (rated titles left out, ties by item id),
on the fixture project of ``serving_fixture``; registered with ``register_batch`` and
promoted like any version. The ratings and model tables are then removed: serving the
batch must not need them.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_fixture import RATED_ID, UNKNOWN_USER, serving_project

from recsys_utils.errors import DataError
from recsys_utils.lifecycle import registry
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.ranking.catalog import catalog_rows
from recsys_utils.ranking.content import title_features
from recsys_utils.scale_out.batch import (
    BatchOutput,
    BatchRecommendations,
    BatchRecommender,
    register_batch,
)
from recsys_utils.serving.app import create_app
from recsys_utils.serving.app import main as serve_main
from recsys_utils.serving.state import ChampionWatch, load_state

#: Titles stored per user and list: small, so filters often leave fewer than ``n``.
DEPTH = 5
_PLATFORM_FILTERS = [None, ["netflix"], ["hulu", "netflix"]]


def _top(scores: np.ndarray, items: np.ndarray, users: np.ndarray, valid: np.ndarray,
         platform: str) -> pd.DataFrame:
    scores = np.where(valid, scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :DEPTH]  # ties: smaller item id
    top = np.take_along_axis(scores, order, axis=1)
    rows, cols = np.nonzero(np.isfinite(top))
    return pd.DataFrame({"user": users[rows].astype(np.int64), "rank": (cols + 1).astype(np.int32),
                         "item": items[order[rows, cols]].astype(str),
                         "score": top[rows, cols], "platform": platform})


def build_batch(model_df: pd.DataFrame, titles: pd.DataFrame, seed: int = 0
                ) -> BatchRecommendations:
    """Lists as Spark ALS writes them, from random factors."""
    rng = np.random.default_rng(seed)
    items = np.array(sorted(titles["item_id"].astype(str).unique()), dtype=object)
    users = np.sort(model_df["user"].unique())
    user_f, item_f = rng.normal(size=(len(users), 4)), rng.normal(size=(len(items), 4))
    scores = user_f @ item_f.T
    rated = (np.searchsorted(users, model_df["user"]),
             pd.Index(items).get_indexer(model_df["item"].astype(str)))
    scores[rated] = -np.inf
    parts = [_top(scores, items, users, np.ones(len(items), dtype=bool), "all")]
    for platform in sorted(titles["platform"].unique()):
        on = set(titles.loc[titles["platform"] == platform, "item_id"].astype(str))
        parts.append(_top(scores, items, users, np.isin(items, list(on)), platform))
    unit = item_f / np.linalg.norm(item_f, axis=1)[:, None]
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    similar = _top(sims, items, np.arange(len(items)), np.ones(len(items), dtype=bool), "")
    similar = pd.DataFrame({"item": items[similar["user"]], "rank": similar["rank"],
                            "similar": similar["item"], "similarity": similar["score"]})
    return BatchRecommendations(
        top_n=pd.concat(parts, ignore_index=True).sort_values(["platform", "user", "rank"],
                                                              ignore_index=True),
        similar=similar,
        user_factors=pd.DataFrame({"user": users, "features": list(user_f)}),
        item_factors=pd.DataFrame({"item": items, "features": list(item_f)}))


def batch_project(root: Path, fixture: ProjectPaths) -> tuple[ProjectPaths, str, BatchRecommendations]:
    """A copy of the fixture project with a Spark batch version registered and promoted,
    and without its ratings and model tables."""
    shutil.copytree(fixture.root, root)
    paths = project_paths(root)
    model_df = pd.read_parquet(paths.processed / "model.parquet")
    batch = build_batch(model_df, pd.read_parquet(paths.processed / "titles.parquet"))
    version = register_batch(BatchOutput(batch), model_df, params={"engine": "spark", "k": DEPTH},
                             metrics={"ndcg": 0.1}, paths=paths)
    assert registry.champion_version(paths) != version  # registered, not promoted
    registry.promote(version, paths, reason="serve the Spark lists")
    for table in ("ratings", "model"):
        (paths.processed / f"{table}.parquet").unlink()
    return paths, version, batch


@pytest.fixture(scope="module")
def fixture_paths(tmp_path_factory: pytest.TempPathFactory) -> ProjectPaths:
    return serving_project(tmp_path_factory)


@pytest.fixture(scope="module")
def served(fixture_paths: ProjectPaths, tmp_path_factory: pytest.TempPathFactory):
    paths, version, batch = batch_project(tmp_path_factory.mktemp("batch") / "project",
                                          fixture_paths)
    with TestClient(create_app(paths, state=load_state(paths))) as client:
        yield {"paths": paths, "version": version, "batch": batch, "client": client}


def expected_items(batch: BatchRecommendations, types: dict[str, str], user: int, n: int,
                   platforms: list[str] | None, kind: str | None) -> list[str]:
    """The stored list of the platform (several: merged by score, each title once), the
    type filter applied to it, cut at ``n``."""
    if platforms is None or len(platforms) == 1:
        items = batch.recommend(user, DEPTH, platforms[0] if platforms else None)
    else:
        top = batch.top_n
        rows = top[(top["user"] == user) & top["platform"].isin(platforms)]
        rows = rows.sort_values(["score", "item"], ascending=[False, True])
        items = rows.drop_duplicates("item")["item"].tolist()
    return [i for i in items if kind is None or types[i] == kind][:n]


def test_known_users_get_their_stored_lists_filtered_per_request(served) -> None:
    client, batch = served["client"], served["batch"]
    titles = pd.read_parquet(served["paths"].processed / "titles.parquet")
    types = dict(zip(titles["item_id"], titles["type"], strict=False))
    fewer = 0
    for user in sorted(batch.top_n["user"].unique()):
        for n in (1, 3, DEPTH, 10):
            for platforms in _PLATFORM_FILTERS:
                for kind in (None, "Movie", "TV Show"):
                    params = {"n": n, "platforms": platforms, "type": kind}
                    got = client.get(f"/users/{user}/recommendations",
                                     params={k: v for k, v in params.items() if v}).json()
                    want = expected_items(batch, types, int(user), n, platforms, kind)
                    assert not got["cold_start"]
                    assert [i["item_id"] for i in got["items"]] == want, (user, n, platforms, kind)
                    assert [i["rank"] for i in got["items"]] == list(range(1, len(want) + 1))
                    assert all(platforms is None or i["platform"] in platforms
                               for i in got["items"])
                    fewer += len(want) < n
    assert fewer  # filters (and n > DEPTH) did leave fewer than n: answered with fewer


def test_scores_are_the_stored_scores(served) -> None:
    batch = served["batch"]
    user = int(batch.top_n["user"].iloc[0])
    got = served["client"].get(f"/users/{user}/recommendations", params={"n": DEPTH}).json()
    rows = batch.top_n[(batch.top_n["user"] == user) & (batch.top_n["platform"] == "all")]
    assert [i["score"] for i in got["items"]] == [round(s, 3) for s in rows["score"]]


def test_unknown_user_gets_todays_cold_start_list(served, fixture_paths: ProjectPaths) -> None:
    recommender = load_state(fixture_paths).recommender  # the Recommender champion
    for platforms in _PLATFORM_FILTERS:
        for kind in (None, "TV Show"):
            for n in (3, 30):
                params = {"n": n, "platforms": platforms, "type": kind}
                got = served["client"].get(f"/users/{UNKNOWN_USER}/recommendations",
                                           params={k: v for k, v in params.items() if v}).json()
                want = recommender.recommend(UNKNOWN_USER, n=n, platforms=platforms, kind=kind)
                assert got["cold_start"]
                assert [(i["item_id"], i["platform"], i["score"]) for i in got["items"]] == [
                    (r.item_id, r.platform, round(r.score, 3)) for r in want.items.itertuples()]


def test_new_user_ratings_get_the_cold_start_list_without_the_rated_titles(served) -> None:
    client = served["client"]
    everyone = client.get(f"/users/{UNKNOWN_USER}/recommendations", params={"n": 7}).json()
    rated = [i["id"] for i in everyone["items"][:2]]
    got = client.post("/recommendations", params={"n": 5},
                      json={"ratings": [{"title_id": t, "score": 4.0} for t in rated]}).json()
    assert got["cold_start"] and got["n_ratings"] == 2
    assert [i["id"] for i in got["items"]] == [i["id"] for i in everyone["items"][2:]]
    # the demo says why, instead of asking to rate a title (it told so to one who had)
    from recsys_utils.serving.demo import new_user_recommendations

    table, status = new_user_recommendations(load_state(served["paths"]),
                                             dict.fromkeys(rated, 4.0), None, None, 5)
    assert list(table["id"]) == [i["id"] for i in everyone["items"][2:]]
    assert status.startswith(f"The served model (Spark batch lists, {served['version']}) cannot "
                             "use new ratings") and "without the 2 you rated" in status
    _, status = new_user_recommendations(load_state(served["paths"]), {}, None, None, 5)
    assert status.startswith("Rate at least one title")  # nothing rated: nothing to explain


def test_similar_titles_from_the_stored_table(served) -> None:
    similar = served["batch"].similar
    got = served["client"].get(f"/titles/{RATED_ID}/similar", params={"n": 3}).json()
    rows = similar[similar["item"] == RATED_ID].sort_values("rank").head(3)
    assert [(i["item_id"], i["similarity"]) for i in got["items"]] == [
        (s, round(v, 4)) for s, v in zip(rows["similar"], rows["similarity"], strict=True)]
    assert served["client"].get("/titles/nope/similar").status_code == 404


def test_a_title_without_stored_neighbours_gets_its_nearest_in_content(served) -> None:
    """ALS stores neighbours only for the titles it has factors of; the others get the
    titles closest in content, as from a ``Recommender``, with ``basis`` saying so."""
    batch = served["batch"]
    without = dataclasses.replace(batch, similar=batch.similar[batch.similar["item"] != RATED_ID])
    analytics = pd.read_parquet(served["paths"].processed / "analytics.parquet")
    frame = BatchRecommender(without, analytics).similar(RATED_ID, n=4)
    assert len(frame) == 4 and (frame["basis"] == "content").all()
    assert RATED_ID not in set(frame["item_id"])
    assert frame["similarity"].is_monotonic_decreasing
    first = catalog_rows(analytics)[1].reset_index(drop=True)  # the catalog's title rows
    cosine = title_features(first) @ title_features(first).T
    row = int(np.flatnonzero(first["item_id"] == RATED_ID)[0])
    best = np.sort(cosine[row].toarray().ravel())[::-1][1]  # the nearest other title's cosine
    assert frame["similarity"].iloc[0] == pytest.approx(best, abs=1e-4)
    stored = BatchRecommender(batch, analytics).similar(RATED_ID, n=4)
    assert (stored["basis"] == "ratings").all()


def test_health_and_version_say_the_champion_is_a_spark_batch(served) -> None:
    client, version = served["client"], served["version"]
    health = client.get("/health").json()
    assert (health["model_version"], health["model_kind"]) == (version, "spark_batch")
    assert health["n_users"] == served["batch"].top_n["user"].nunique()
    about = client.get("/version").json()
    assert (about["version"], about["model_kind"]) == (version, "spark_batch")
    assert about["params"]["engine"] == "spark"


def test_serving_the_batch_reads_neither_ratings_nor_model_table(
        fixture_paths: ProjectPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, version, _ = batch_project(tmp_path / "project", fixture_paths)
    read = []
    real = pd.read_parquet

    def reading(path, *args, **kwargs):  # noqa: ANN001, ANN202 - pandas' signature
        read.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", reading)
    state = load_state(paths)
    assert isinstance(state.recommender, BatchRecommender)
    assert state.manifest["version"] == version
    assert {"titles.parquet", "analytics.parquet"} <= set(read)  # the reader is watched
    assert not {"ratings.parquet", "model.parquet"} & set(read)
    # the Recommender champion does need them: rolled back to, it cannot load here
    registry.rollback(paths=paths)
    with pytest.raises(DataError, match="ratings.parquet"):
        load_state(paths)


def test_a_running_app_picks_up_the_promoted_batch(fixture_paths: ProjectPaths,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys_utils.lifecycle.retrain import main as retrain_main

    paths, version, _ = batch_project(tmp_path / "project", fixture_paths)
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    assert retrain_main(["--rollback"]) == 0  # back to the Recommender (its tables restored)
    shutil.copy(fixture_paths.processed / "ratings.parquet", paths.processed)
    shutil.copy(fixture_paths.processed / "model.parquet", paths.processed)
    app = create_app(paths, state=load_state(paths))
    with TestClient(app) as client:
        assert client.get("/health").json()["model_kind"] == "recommender"
        watch: ChampionWatch = app.state.watch
        assert retrain_main(["--rollback", version]) == 0
        assert watch.check()
        health = client.get("/health").json()
        assert (health["model_version"], health["model_kind"]) == (version, "spark_batch")


def test_a_corrupted_batch_version_is_refused_in_one_line(
        fixture_paths: ProjectPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths, version, _ = batch_project(tmp_path / "project", fixture_paths)
    pickled = paths.models / version / registry.MODEL_FILE
    data = bytearray(pickled.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pickled.write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_state(paths)
    assert serve_main(["--root", str(paths.root), "--warm-seconds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: checksum mismatch") and version in err[0]


def test_a_batch_saved_with_another_pandas_major_is_refused(
        fixture_paths: ProjectPaths, tmp_path: Path) -> None:
    import json

    paths, version, _ = batch_project(tmp_path / "project", fixture_paths)
    manifest_path = paths.models / version / registry.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["libraries"]["pandas"] = "99.0.0"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(DataError, match="pandas 99.0.0 when saved"):
        load_state(paths)


def test_a_filter_naming_every_platform_reads_the_overall_list(fixture_paths: ProjectPaths
                                                               ) -> None:
    """A one-platform catalog stores only the overall list (``write_top_n``): filtering on
    its platform must answer from it, not find no list and answer nothing."""
    analytics = pd.read_parquet(fixture_paths.processed / "analytics.parquet")
    titles = pd.read_parquet(fixture_paths.processed / "titles.parquet")
    model_df = pd.read_parquet(fixture_paths.processed / "model.parquet")
    one = titles[titles["platform"] == "netflix"]
    batch = build_batch(model_df[model_df["item"].astype(str).isin(one["item_id"])], one)
    batch.top_n = batch.top_n[batch.top_n["platform"] == "all"]
    rec = BatchRecommender(batch, analytics[analytics["platform"] == "netflix"])
    three = BatchRecommender(build_batch(model_df, titles), analytics)
    for user in rec.user_ids[:10]:
        for n in (3, DEPTH, DEPTH + 5):
            whole = rec.recommend(int(user), n).items["item_id"].tolist()
            assert len(whole) == min(n, DEPTH)
            assert rec.recommend(int(user), n, ["netflix"]).items["item_id"].tolist() == whole
            assert (three.recommend(int(user), n, ["hulu", "netflix", "amazon_prime"])
                    .items["item_id"].tolist() == three.recommend(int(user), n)
                    .items["item_id"].tolist())


def test_a_batch_version_serves_the_cold_start_list_it_was_registered_with(
        fixture_paths: ProjectPaths, tmp_path: Path) -> None:
    """06 registers the champion's cold-start list with the Spark lists
    (``champion_cold_start_list``); the API serves it to unknown users and new ratings."""
    from recsys_utils.scale_out.batch import champion_cold_start_list

    paths, _, batch = batch_project(tmp_path / "project", fixture_paths)
    assert champion_cold_start_list(paths)["cold_start_list"] == "bayes"  # this batch's
    recommender = load_state(fixture_paths).recommender.with_ranking(
        cold_start_list="popularity")
    model_df = pd.read_parquet(fixture_paths.processed / "model.parquet")
    version = register_batch(BatchOutput(batch), model_df, params={
        "engine": "spark", "k": DEPTH, "cold_start_list": "popularity",
        "cold_start_list_from": "a test"}, metrics={"ndcg": 0.1}, paths=paths)
    registry.promote(version, paths, reason="the most rated titles for new users")
    assert champion_cold_start_list(paths) == {"cold_start_list": "popularity",
                                               "cold_start_list_from": "a test"}
    with TestClient(create_app(paths, state=load_state(paths))) as client:
        for platforms in _PLATFORM_FILTERS:
            got = client.get(f"/users/{UNKNOWN_USER}/recommendations",
                             params={"n": 8, **({"platforms": platforms} if platforms else {})}
                             ).json()
            want = recommender.recommend(UNKNOWN_USER, n=8, platforms=platforms)
            assert got["cold_start"]
            assert [i["item_id"] for i in got["items"]] == want.items["item_id"].tolist()
        bayes = load_state(fixture_paths).recommender.recommend(UNKNOWN_USER, n=8)
        assert [i["item_id"] for i in got["items"]] != bayes.items["item_id"].tolist()


def test_the_batch_takes_the_cold_start_list_of_the_champion_it_follows(
        fixture_paths: ProjectPaths, tmp_path: Path) -> None:
    from recsys_utils.fingerprint import data_fingerprint
    from recsys_utils.scale_out.batch import champion_cold_start_list

    shutil.copytree(fixture_paths.root, tmp_path / "project")
    paths = project_paths(tmp_path / "project")
    assert champion_cold_start_list(paths) == {  # a champion registered before the policy
        "cold_start_list": "bayes",
        "cold_start_list_from": "the default (no champion with a new-user policy)"}
    model = load_state(paths).recommender.with_ranking(cold_start_list="popularity")
    version = registry.register_model(
        model, params={"ranking_params": model.ranking_params}, metrics={"rmse": 0.8},
        data_fingerprint=data_fingerprint(pd.read_parquet(paths.processed / "model.parquet")),
        paths=paths, promote=True, notes="a chosen new-user policy")
    assert champion_cold_start_list(paths) == {
        "cold_start_list": "popularity", "cold_start_list_from": f"the champion {version}"}
    older = registry.register_model(  # a manifest from before tuning: ranking_params null
        model, params={"ranking_params": None}, metrics={"rmse": 0.9},
        data_fingerprint=data_fingerprint(pd.read_parquet(paths.processed / "model.parquet")),
        paths=paths, promote=True, notes="no ranking record")
    assert registry.champion_version(paths) == older
    assert champion_cold_start_list(paths)["cold_start_list"] == "bayes"
    shutil.rmtree(paths.models)
    assert champion_cold_start_list(paths)["cold_start_list"] == "bayes"  # no champion
