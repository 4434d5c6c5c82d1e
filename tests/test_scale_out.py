"""The scale-out step: Java detection, Spark cleaning = pandas cleaning, the split and
metrics on the cluster = the single-machine ones, ALS top-N and the batch registry version.

Spark tests (marker ``spark``) run in ``local[2]`` on tiny data; they skip, naming the
reason, when pyspark or Java >= 17 is missing.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_ratings_csv, write_tiny_raw
from ranking_fixtures import synthetic_ratings, synthetic_titles
from spark_fixtures import LOCAL, require_spark

from recsys_utils.data.cleaning import build_processed
from recsys_utils.errors import DataError, UnknownFilterError
from recsys_utils.paths import PROJECT_ROOT, ProjectPaths, project_paths
from recsys_utils.ranking import metrics
from recsys_utils.ranking.catalog import Catalog
from recsys_utils.ranking.evaluation import last_n_split, relevant_items
from recsys_utils.scale_out.session import _java_major, find_java

SHARED_CATALOGS = PROJECT_ROOT.parent / "shared/data/catalogs"


@pytest.fixture(scope="module")
def spark():
    require_spark()
    from recsys_utils.scale_out.session import spark_session

    with spark_session(LOCAL) as session:
        yield session


def _fake_java(folder: Path, version: str) -> Path:
    """A ``$JAVA_HOME`` whose ``bin/java -version`` reports ``version``."""
    (folder / "bin").mkdir(parents=True)
    java = folder / "bin" / "java"
    java.write_text(f'#!/bin/sh\necho \'openjdk version "{version}" 2020-01-01\' >&2\n')
    java.chmod(0o755)
    return folder


# --------------------------------------------------------------------------- Java


def test_java_version_parsing() -> None:
    assert _java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert _java_major('java version "1.8.0_292"') == 8
    assert _java_major('openjdk version "21" 2023-09-19') == 21
    assert _java_major("no version here") is None


def test_find_java_names_a_too_old_or_missing_java(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path / "jdk11", "11.0.2")))
    info = find_java()
    assert not info.ok and info.major == 11 and "too old" in info.problem
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    assert "no Java runtime" in find_java().problem
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path / "jdk17", "17.0.1")))
    assert find_java().ok


def test_step_without_java_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from recsys_utils.scale_out.step import run_scale_out

    pytest.importorskip("pyspark")
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path / "jdk11", "11.0.2")))
    result = run_scale_out(paths=project_paths(tmp_path / "project"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Spark step not run:") and "Java 11" in lines[0]
    assert not result.ran
    numbers = result.key_numbers()
    assert numbers["status"].startswith("did not run: Java 11")
    # every number the book chapter shows is glued either way (as "n/a" here)
    book = (PROJECT_ROOT / "book" / "scale_out.md").read_text(encoding="utf-8")
    referenced = set(re.findall(r"::scale_([a-z_]+):s", book))
    assert referenced and referenced <= set(numbers)
    assert all(numbers[k] is None for k in referenced - {"status"})


# --------------------------------------------------------------------------- cleaning


def _write_more_ratings(raw: Path) -> None:
    """Two more rating files: a repeat of a row of the first file (a duplicate across
    files), a repeat within the file, new good rows, bad rows; and a wrong header."""
    first_good = tiny_ratings_csv().splitlines()[1]
    (raw / "ratings" / "more.csv").write_text("\n".join([
        "userId,rating,timestamp,movieId", first_good, "9,4.5,1600100000,ns1",
        "9,4.5,1600100000,ns1", "9,3.0,1600100001,as3", "9,0.25,1600100002,ns2",
        "10,5.0,1600100003,ns9"]) + "\n", encoding="utf-8")
    (raw / "ratings" / "wrong.csv").write_text("user,score,time,item\n1,4.0,1600000000,ns1\n",
                                               encoding="utf-8")


def _sorted_rejects(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["source_file", "line", "reason"], ignore_index=True)


def _assert_same_cleaning(spark, raw: Path, source: str, tmp_path: Path,
                          history: bool = False) -> None:
    from recsys_utils.scale_out.cleaning import (
        clean_on_spark,
        load_spark_processed,
        load_spark_rejects,
        same_processed,
    )

    paths = project_paths(tmp_path / "project")
    ref = build_processed(raw, source=source, paths=paths, verbose=False)
    got = clean_on_spark(spark, raw, source=source, output_dir=tmp_path / "spark", paths=paths,
                         history=history)
    assert got.source == ref.source == source
    assert same_processed(ref.processed, load_spark_processed(got.output_dir)) == {
        "titles": True, "ratings": True, "analytics": True, "model": True}
    pd.testing.assert_frame_equal(got.accounting.to_frame(), ref.accounting.to_frame())
    rejects = load_spark_rejects(got.output_dir)
    for kind, table in (("titles", ref.rejected_titles), ("ratings", ref.rejected_ratings)):
        pd.testing.assert_frame_equal(_sorted_rejects(rejects[kind]), _sorted_rejects(table))
    for account in got.accounting:
        assert account.read == account.kept + account.rejected + account.duplicates


@pytest.mark.spark
def test_spark_cleaning_equals_pandas_on_the_corrupted_fixture(spark, tmp_path: Path) -> None:
    raw = write_tiny_raw(tmp_path / "raw")
    _write_more_ratings(raw)
    _assert_same_cleaning(spark, raw, "streaming", tmp_path)
    from recsys_utils.data.accounting import Accounting

    accounts = {a.source_file: a for a in Accounting.from_json(
        tmp_path / "spark" / "processed" / "accounting.json")}
    # files are read in name order: more.csv's copy of ratings.csv's first row comes first,
    # so ratings.csv's row is the duplicate (besides its own repeat of that row)
    assert (accounts["ratings/more.csv"].read, accounts["ratings/more.csv"].duplicates) == (6, 1)
    assert accounts["ratings/ratings.csv"].duplicates == 2
    assert accounts["ratings/wrong.csv"].kept == 0 and "wrong header" in \
        accounts["ratings/wrong.csv"].note


@pytest.mark.spark
def test_spark_cleaning_replays_the_history_like_pandas(spark, tmp_path: Path) -> None:
    """``data/history`` (what retrains accepted and held back) is replayed on Spark by the
    single-machine rules: the tables, the accounting and the rejects equal the store the
    cleaning step rebuilds (a retrained project's 06 compares against that store)."""
    from recsys_utils.data import store
    from recsys_utils.scale_out.cleaning import load_spark_processed

    raw = write_tiny_raw(tmp_path / "raw")
    first = tiny_ratings_csv().splitlines()[1]  # a raw rating: userId,rating,timestamp,movieId
    paths = project_paths(tmp_path / "project")
    paths.history.mkdir(parents=True)
    header = "userId,rating,timestamp,movieId\n"
    files = {  # new ratings, a repeat of a raw rating, a bad row; then a hold-back; a return
        ("20260101T000000", store.ACCEPTED): [
            "100,4.5,1700000000,ns1", "100,2.0,1700000100,as3", "101,5.0,1700000200,ns2",
            first, "102,9.0,1700000300,ns1"],
        ("20260102T000000", store.HELD_BACK): [first, "101,5.0,1700000200,ns2"],
        ("20260103T000000", store.ACCEPTED): ["101,5.0,1700000200,ns2",
                                              "100,3.0,1700000000,ns1"]}
    for (stamp, kind), rows in files.items():
        store.history_file(paths, stamp, kind).write_text(header + "\n".join(rows) + "\n",
                                                          encoding="utf-8")
    _assert_same_cleaning(spark, raw, "streaming", tmp_path, history=True)
    from recsys_utils.data.accounting import Accounting

    accounts = {a.source_file: a for a in Accounting.from_json(
        tmp_path / "spark" / "processed" / "accounting.json")}
    accepted = accounts["data/history/20260101T000000_accepted.csv"]
    # 3 new ratings kept, a bad row rejected, the raw repeat a duplicate; then user 101's
    # rating was held back (rejected here) and came back with the third file
    assert (accepted.read, accepted.kept, accepted.rejected, accepted.duplicates) == (5, 2, 2, 1)
    assert "1 held back by data/history/20260102T000000_held_back.csv" in \
        accounts["ratings/ratings.csv"].note
    got = load_spark_processed(tmp_path / "spark")
    assert int((got.ratings["user_id"] == 101).sum()) == 1
    # user 100 re-rated ns1 at the same second: the later file's score is the model's
    # (ns1 is The Matrix's netflix copy: the title's item_id is as1, its amazon_prime id)
    model = got.model
    mine = model[(model["user"] == 100) & (model["item"] == "as1")]
    assert mine["score"].tolist() == [3.0]
    # by default a folder is cleaned alone (a benchmark's data is not the project's raw)
    from recsys_utils.scale_out.cleaning import clean_on_spark

    alone = clean_on_spark(spark, raw, source="streaming", output_dir=tmp_path / "alone",
                           paths=paths)
    assert not [a for a in alone.accounting if a.source_file.startswith("data/history/")]
    assert int((load_spark_processed(tmp_path / "alone").ratings["user_id"] == 101).sum()) == 0


@pytest.mark.spark
def test_spark_cleaning_equals_pandas_for_the_embedded_default(spark, tmp_path: Path) -> None:
    _assert_same_cleaning(spark, tmp_path / "no-raw", "movielens", tmp_path)


@pytest.mark.spark
@pytest.mark.shared_data
def test_spark_cleaning_equals_pandas_on_the_shared_catalogs(spark, tmp_path: Path) -> None:
    if not SHARED_CATALOGS.is_dir():
        pytest.skip(f"shared catalogs not present at {SHARED_CATALOGS}")
    _assert_same_cleaning(spark, SHARED_CATALOGS, "linked", tmp_path)


# --------------------------------------------------------------------------- split, metrics


@pytest.mark.spark
@pytest.mark.parametrize("kwargs", [{"fraction": 0.2}, {"fraction": 0.5, "min_train": 8},
                                    {"n": 3, "fraction": None}])
def test_last_n_split_on_spark_equals_pandas(spark, kwargs) -> None:
    from recsys_utils.scale_out import evaluation as sev

    model = synthetic_ratings(seed=3)
    model.loc[model.index[:24:2], "timestamp"] = model["timestamp"].iloc[0]  # equal times
    ref = last_n_split(model, **kwargs)
    train, test = sev.last_n_split(spark.createDataFrame(model), **kwargs)
    key = ["user", "item"]
    for ours, theirs in ((train, ref.train), (test, ref.test)):
        got = ours.toPandas()[key].sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(got, theirs[key].sort_values(key, ignore_index=True),
                                      check_dtype=False)


@pytest.mark.spark
def test_ranking_report_on_spark_equals_ranking_metrics(spark) -> None:
    from recsys_utils.scale_out import evaluation as sev

    rng = np.random.default_rng(5)
    model = synthetic_ratings(seed=1)
    split = last_n_split(model, fraction=0.3)
    test = split.test.copy()
    test.loc[test["user"].isin([1, 2, 3]), "score"] = 2.0  # users with nothing relevant
    items = sorted(model["item"].unique())
    lists = {}
    for user in sorted(split.train["user"].unique())[:-5]:  # 5 users without a list
        size = int(rng.integers(3, 11))  # some lists shorter than k
        lists[int(user)] = [str(i) for i in rng.choice(items, size, replace=False)]
    popularity = sev.item_popularity(spark.createDataFrame(split.train))
    k, n_catalog = 10, len(items)
    ref = metrics.ranking_report(lists, relevant_items(test), k, popularity, n_catalog)
    frame = pd.DataFrame([(u, r + 1, i) for u, ranked in lists.items()
                          for r, i in enumerate(ranked)], columns=["user", "rank", "item"])
    got = sev.ranking_report(spark.createDataFrame(frame), spark.createDataFrame(test),
                             k, popularity, n_catalog)
    assert set(got) == set(ref)
    assert ref["n_users_no_relevant"] > 0 and ref["n_users"] > 0
    for name, value in ref.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value, abs=1e-12), name


# --------------------------------------------------------------------------- ALS


@pytest.fixture(scope="module")
def fitted(spark):
    """Implicit ALS on the two-taste synthetic data (known structure)."""
    from recsys_utils.scale_out import als

    titles = synthetic_titles()
    catalog = Catalog(titles)
    frame = als.index_frame(spark, catalog).cache()
    train = spark.createDataFrame(synthetic_ratings(seed=0)).cache()
    model = als.fit_als(train, frame, als.AlsParams(rank=4, reg=0.1, alpha=5.0), implicit=True,
                        seed=0)
    return {"catalog": catalog, "frame": frame, "train": train, "model": model,
            "titles": titles}


@pytest.mark.spark
def test_top_n_excludes_rated_titles_and_honours_filters(fitted) -> None:
    from recsys_utils.scale_out import als
    from recsys_utils.scale_out.evaluation import lists_to_dict

    f, ratings = fitted, synthetic_ratings(seed=0)
    rated = ratings.groupby("user")["item"].agg(set).to_dict()
    lists = als.top_n(f["model"], f["train"], f["catalog"], f["frame"], 5)
    frame = lists.toPandas()
    assert set(frame["user"]) == set(rated)
    for user, group in frame.groupby("user"):
        group = group.sort_values("rank")
        assert group["rank"].tolist() == list(range(1, len(group) + 1)) and len(group) == 5
        assert not set(group["item"]) & rated[user]
        assert (np.diff(group["score"].to_numpy()) <= 0).all()
    # the taste groups are found: even users' lists are mostly titles i00-i19
    top = lists_to_dict(lists)
    liked = [np.mean([int(i[1:]) < 20 if u % 2 == 0 else int(i[1:]) >= 20 for i in items])
             for u, items in top.items()]
    assert np.mean(liked) > 0.8
    titles = f["titles"]
    beta = set(titles.loc[titles["platform"] == "beta", "item_id"])
    shows = set(titles.loc[titles["type"] == "TV Show", "item_id"])
    on_beta = als.top_n(f["model"], f["train"], f["catalog"], f["frame"], 5,
                        platforms=["beta"]).toPandas()
    assert len(on_beta) and set(on_beta["item"]) <= beta
    tv = als.top_n(f["model"], f["train"], f["catalog"], f["frame"], 3, kind="TV Show").toPandas()
    assert len(tv) and set(tv["item"]) <= shows
    with pytest.raises(UnknownFilterError):
        f["catalog"].mask(["gamma"])


@pytest.mark.spark
def test_top_n_and_similar_titles_do_not_depend_on_the_block_size(
        fitted, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers score users (titles) in blocks of ``_BLOCK_CELLS`` scores: one user per block
    gives the lists of one block per batch, and both equal a stable argsort over the
    factors (ties to the smaller item id)."""
    from recsys_utils.scale_out import als

    f = fitted

    def lists() -> tuple[pd.DataFrame, pd.DataFrame]:
        top = als.top_n(f["model"], f["train"], f["catalog"], f["frame"], 5).toPandas()
        sims = als.similar_titles(f["model"], f["catalog"], 4).toPandas()
        return (top.sort_values(["user", "rank"]).reset_index(drop=True),
                sims.sort_values(["item", "rank"]).reset_index(drop=True))

    whole = lists()
    monkeypatch.setattr(als, "_BLOCK_CELLS", 1)  # one row per block
    for got, ref in zip(lists(), whole, strict=True):
        pd.testing.assert_frame_equal(got, ref)
    # the reference: every score, rated titles out, a stable sort on -score
    items = f["catalog"].item_ids
    q = f["model"].itemFactors.toPandas().sort_values("id")
    v = np.zeros((len(items), f["model"].rank))
    v[q["id"].to_numpy()] = np.vstack(q["features"].to_numpy())
    u = f["model"].userFactors.toPandas()
    rated = synthetic_ratings(seed=0).groupby("user")["item"].agg(set).to_dict()
    pos = {item: k for k, item in enumerate(items)}
    for user, feats in zip(u["id"], u["features"], strict=True):
        scores = np.asarray(feats) @ v.T
        scores[[pos[i] for i in rated[int(user)]]] = -np.inf
        expected = items[np.argsort(-scores, kind="stable")[:5]].tolist()
        assert whole[0].loc[whole[0]["user"] == user, "item"].tolist() == expected


@pytest.mark.spark
def test_similar_titles_from_item_factors(fitted) -> None:
    from recsys_utils.scale_out import als

    sims = als.similar_titles(fitted["model"], fitted["catalog"], 4).toPandas()
    assert len(sims) == 4 * sims["item"].nunique() and sims["item"].nunique() == 40
    assert not (sims["item"] == sims["similar"]).any()
    assert (sims["similarity"] <= 1 + 1e-9).all()
    for _, group in sims.groupby("item"):
        assert (np.diff(group.sort_values("rank")["similarity"].to_numpy()) <= 0).all()
    # neighbours come from the same taste group
    same = (sims["item"].str[1:].astype(int) < 20) == (sims["similar"].str[1:].astype(int) < 20)
    assert same.mean() > 0.8


def test_als_blocks_follow_the_number_of_ratings_not_the_machine() -> None:
    from recsys_utils.scale_out.als import als_blocks

    assert [als_blocks(n) for n in (0, 2_400, 100_004, 2_000_000)] == [2, 2, 2, 2]
    assert als_blocks(2_000_001) == 3
    assert als_blocks(10_000_000) == 10  # Spark's own default, at the size it suits


@pytest.mark.spark
def test_tuning_picks_the_best_validation_score(spark, fitted) -> None:
    from recsys_utils.scale_out import als

    choice = als.tune_als(fitted["train"], fitted["catalog"], fitted["frame"], implicit=False,
                          ranks=[3], regs=[0.05, 5.0], max_iter=5, blocks=3, seed=0)
    table = choice.table
    assert len(table) == 2 and choice.criterion == "rmse"
    assert choice.best.reg == table.loc[table["rmse"].idxmin(), "reg"]
    assert choice.best.blocks == 3 and als.params_dict(choice.best)["blocks"] == 3
    assert table["rmse"].between(0, 5).all()
    # without a number, the blocks are derived once, from the whole training part, so the
    # choice carries the count the final fit on that part would use
    derived = als.tune_als(fitted["train"], fitted["catalog"], fitted["frame"], implicit=False,
                           ranks=[3], regs=[0.05], max_iter=2, seed=0)
    assert derived.best.blocks == als.als_blocks(fitted["train"].count())


@pytest.mark.spark
def test_batch_lists_registered_with_checksums(fitted, tmp_path: Path) -> None:
    from recsys_utils.lifecycle.registry import (
        champion_version,
        load_version,
        read_manifest,
        sha256_file,
    )
    from recsys_utils.scale_out import als
    from recsys_utils.scale_out.batch import BatchRecommendations, register_batch, save_batch

    paths: ProjectPaths = project_paths(tmp_path / "project").ensure()
    out = paths.outputs / "scale_out" / "als"
    top_dir = als.write_top_n(fitted["model"], fitted["train"], fitted["catalog"],
                              fitted["frame"], out / "top_n.parquet", 5)
    assert {p.name for p in top_dir.iterdir() if p.is_dir()} == {
        "platform=all", "platform=alpha", "platform=beta"}
    similar = als.similar_titles(fitted["model"], fitted["catalog"], 3).toPandas()
    batch = save_batch(fitted["model"], fitted["catalog"], top_dir, similar, out)
    model_df = synthetic_ratings(seed=0)
    version = register_batch(batch, model_df, params={"rank": 4}, metrics={"ndcg": 0.5},
                             paths=paths)
    manifest = read_manifest(version, paths)
    assert manifest["engine"] == "spark" and manifest["kind"] == "batch_top_n"
    assert champion_version(paths) is None  # registered, not promoted
    assert manifest["batch_files"] and all(
        sha256_file(paths.root / rel) == digest for rel, digest in manifest["batch_files"].items())
    loaded, _ = load_version(version, paths)
    assert isinstance(loaded, BatchRecommendations)
    expected = batch.recommendations.top_n
    first = int(expected["user"].iloc[0])
    assert loaded.recommend(first, 5) == expected[(expected["user"] == first)
                                                  & (expected["platform"] == "all")
                                                  ].sort_values("rank")["item"].tolist()
    assert loaded.recommend(10**9) == []
    # the same run again reuses the version instead of adding a copy
    assert register_batch(batch, model_df, params={"rank": 4}, metrics={"ndcg": 0.5},
                          paths=paths) == version
    # no list at all (every user rated every title ALS learned): Spark writes no part file,
    # not even the columns; the step says why instead of failing on a missing column
    from pyspark.sql import functions as F

    from recsys_utils.scale_out.cleaning import write_parquet_dir

    no_rows = als.top_n(fitted["model"], fitted["train"], fitted["catalog"], fitted["frame"],
                        5).withColumn("platform", F.lit("all")).limit(0)
    empty = write_parquet_dir(no_rows, out / "empty.parquet", partition_by=["platform"])
    with pytest.raises(DataError, match="ALS left no title to recommend"):
        save_batch(fitted["model"], fitted["catalog"], empty, similar, out)


@pytest.mark.spark
def test_a_batch_written_by_spark_is_served(spark, tmp_path_factory: pytest.TempPathFactory,
                                            tmp_path: Path) -> None:
    """The real path on the fixture project: ALS on Spark, ``write_top_n``, ``save_batch``,
    ``register_batch``, promoted, then served without the ratings and model tables."""
    from fastapi.testclient import TestClient
    from serving_fixture import RATED_ID, serving_project

    from recsys_utils.lifecycle import registry
    from recsys_utils.scale_out import als
    from recsys_utils.scale_out.batch import register_batch, save_batch
    from recsys_utils.serving.app import create_app
    from recsys_utils.serving.state import load_state

    depth = 5
    shutil.copytree(serving_project(tmp_path_factory).root, tmp_path / "project")
    paths = project_paths(tmp_path / "project")
    model_df = pd.read_parquet(paths.processed / "model.parquet")
    titles = pd.read_parquet(paths.processed / "titles.parquet")
    out = paths.outputs / "scale_out" / "als"
    catalog = Catalog(titles)
    frame = als.index_frame(spark, catalog).cache()
    train = spark.createDataFrame(model_df).cache()
    fitted = als.fit_als(train, frame, als.AlsParams(rank=4, reg=0.1, alpha=5.0, max_iter=5),
                         implicit=True, seed=0)
    top_dir = als.write_top_n(fitted, train, catalog, frame, out / "top_n.parquet", depth)
    similar = als.similar_titles(fitted, catalog, 3).toPandas()
    batch = save_batch(fitted, catalog, top_dir, similar, out)
    version = register_batch(batch, model_df, params={"engine": "spark", "k": depth},
                             metrics={"ndcg": 0.1}, paths=paths)
    registry.promote(version, paths)
    for table in ("ratings", "model"):
        (paths.processed / f"{table}.parquet").unlink()
    lists = batch.recommendations
    with TestClient(create_app(paths, state=load_state(paths))) as client:
        assert client.get("/health").json()["model_kind"] == "spark_batch"
        for user in sorted(lists.top_n["user"].unique())[:10]:
            for platform in (None, "netflix"):
                params = {"n": depth, **({"platforms": platform} if platform else {})}
                got = client.get(f"/users/{user}/recommendations", params=params).json()
                assert not got["cold_start"]
                assert [i["item_id"] for i in got["items"]] == lists.recommend(user, depth,
                                                                               platform)
        got = client.get(f"/titles/{RATED_ID}/similar", params={"n": 3}).json()
        rows = lists.similar[lists.similar["item"] == RATED_ID].sort_values("rank")
        assert [i["item_id"] for i in got["items"]] == rows["similar"].tolist()
