"""evaluate_recommender: one call runs the protocol; its result knows its tables, figures,
key numbers and report (on the small synthetic catalog of ranking_fixtures)."""

from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from ranking_fixtures import N_USERS, svd_recommender, synthetic_ratings, synthetic_titles

from recsys_utils.errors import DataError
from recsys_utils.paths import PROJECT_ROOT, ProjectPaths
from recsys_utils.plots import missing_labels
from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS
from recsys_utils.ranking.report import (
    CHECKED_NUMBERS,
    REPORT_FILE,
    EvaluationResult,
    evaluate_recommender,
    median_activity_user,
    served_recommender,
)

GRID = {"l2": [10.0, 50.0], "pop_weight": [0.0, -0.5]}
K = 5


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_ratings(0)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> ProjectPaths:
    """An empty project: no registered champion, reports and figures written here."""
    return ProjectPaths(tmp_path_factory.mktemp("project")).ensure()


@pytest.fixture(scope="module")
def result(ratings: pd.DataFrame, project: ProjectPaths) -> EvaluationResult:
    return evaluate_recommender(ratings, synthetic_titles(), k=K, time_quantile=0.7,
                                holdout_fraction=0.25, grid=GRID, min_coverage_ratio=2.0,
                                seed=3, paths=project)


def test_splits_and_their_table(result: EvaluationResult, ratings: pd.DataFrame):
    assert list(result.splits) == ["last_n", "time", "random"]  # the headline first
    table = result.split_table
    assert list(table.index) == ["last_n", "time", "fold1"]  # the random split is fold 1
    # per-user and random splits keep every rating; the time split drops new users' later ones
    for name in ("last_n", "fold1"):
        assert table.loc[name, "train_ratings"] + table.loc[name, "test_ratings"] == len(ratings)
    time = result.splits["time"]
    assert time.train["timestamp"].max() < time.test["timestamp"].min()
    assert table.loc["last_n", "test_users"] == N_USERS


def test_without_a_champion_every_split_retrains_the_choice_made_here(result: EvaluationResult):
    config = result.configuration
    assert config["source"].startswith("chosen here on validation data")
    assert result.tuning == {} and result.tuning_tables() == {}  # nothing re-tuned per split
    for evaluation in result.evaluations.values():
        assert evaluation.recommender.ranking_params == config["ranking_params"]
    assert config["tuning"]["chosen"] == config["ranking_params"]
    assert len(config["tuning"]["grid"]) == len(GRID)
    assert result.rivals is not None and result.rivals["chosen"].sum() == 1


def test_the_registered_configuration_is_what_every_split_retrains(ratings: pd.DataFrame,
                                                                   tmp_path):
    registered = {**DEFAULT_RANKING_PARAMS, "weighting": "binary", "l2": 7.0, "pop_weight": -0.1}
    record = {"chosen": registered, "rivals": [{"rival": "ease (binary)", "ndcg": 0.5,
                                                "chosen": True}]}
    manifest = {"version": "v0042", "params": {"ranking_params": registered,
                                               "tuning": {"ranking": record}}}
    champion = (svd_recommender(ratings, weighting="binary", l2=7.0, pop_weight=-0.1), manifest)
    res = evaluate_recommender(ratings, synthetic_titles(), k=K, time_quantile=0.7,
                               random_fold=False, champion=champion, seed=3,
                               paths=ProjectPaths(tmp_path))
    assert res.configuration["source"] == "registered champion v0042"
    for evaluation in res.evaluations.values():
        assert evaluation.recommender.ranking_params == registered
        assert evaluation.recommender.user_ids.size  # retrained on the split's training part
    assert res.served.recommender is champion[0]
    assert res.rivals is not None and res.rivals["rival"].tolist() == ["ease (binary)"]
    key = res.key_numbers
    assert (key["weighting"], key["l2"], key["pop_weight"]) == ("binary", 7.0, -0.1)
    assert "random_fold_rmse" not in key


def test_retune_chooses_per_split(ratings: pd.DataFrame, tmp_path):
    res = evaluate_recommender(ratings, synthetic_titles(), k=K, time_quantile=0.7,
                               holdout_fraction=0.25, retune=True, grid=GRID,
                               min_coverage_ratio=2.0, seed=3, paths=ProjectPaths(tmp_path))
    assert set(res.tuning) == {"time", "last_n"}
    for name, tuning in res.tuning.items():
        assert len(tuning.table) == 4  # the whole grid was scored on validation data
        assert res.evaluations[name].recommender.ranking_params == tuning.best_params
    assert (res.evaluations["random"].recommender.ranking_params
            == res.evaluations["last_n"].recommender.ranking_params)
    captions = list(res.tuning_tables())
    assert captions[0].startswith("time: chosen {") and f"NDCG@{K}" in captions[0]
    for table in res.tuning_tables().values():
        assert table["ndcg"].is_monotonic_decreasing


def test_tables_hold_every_split_and_strategy(result: EvaluationResult):
    ranking = result.ranking_table
    assert set(ranking.index.get_level_values("split")) == {"time", "last_n", "random"}
    assert list(ranking.loc["time"].index) == ["model", "popularity", "bayes", "random"]
    assert set(result.rating_table.loc["time"].index) == {"model", "item_mean", "global_mean",
                                                          "random"}
    summary = result.summary
    assert summary.loc["time", "NDCG ratio vs popularity"] == pytest.approx(
        ranking.loc[("time", "model"), "ndcg"] / ranking.loc[("time", "popularity"), "ndcg"])
    assert summary.loc["last_n", "test users"] == ranking.loc[("last_n", "model"), "n_users"]
    assert result.platforms == ["alpha", "beta"]
    by_platform = result.platform_table
    assert by_platform is not None
    assert set(by_platform.index.get_level_values("platform")) == {"alpha", "beta"}
    assert result.activity_table.loc["time", "n_ratings"].sum() == len(result.splits["time"].test)


def test_key_numbers_come_from_the_tables(result: EvaluationResult):
    key = result.key_numbers
    ranking, rating = result.ranking_table, result.rating_table
    assert key["k"] == K and key["time_quantile"] == 0.7
    # the headline is the per-user split; time_* the global time split
    assert key["ndcg"] == pytest.approx(ranking.loc[("last_n", "model"), "ndcg"])
    assert key["ndcg_se"] == pytest.approx(ranking.loc[("last_n", "model"), "ndcg_se"])
    assert key["pop_ndcg"] == pytest.approx(ranking.loc[("last_n", "popularity"), "ndcg"])
    assert key["ndcg_ratio"] == pytest.approx(key["ndcg"] / key["pop_ndcg"])
    assert key["ndcg_gain"] == pytest.approx(key["ndcg"] - key["pop_ndcg"])  # same users
    assert key["n_test_users"] == ranking.loc[("last_n", "model"), "n_users"]
    assert key["time_ndcg"] == pytest.approx(ranking.loc[("time", "model"), "ndcg"])
    assert key["time_n_test_users"] == ranking.loc[("time", "model"), "n_users"]
    assert key["rmse"] == pytest.approx(rating.loc[("last_n", "model"), "rmse"])
    assert key["random_fold_rmse"] == pytest.approx(rating.loc[("random", "model"), "rmse"])
    assert key["n_test_ratings"] == len(result.splits["last_n"].test)
    assert key["l2"] in GRID["l2"] and key["pop_weight"] in GRID["pop_weight"]
    json.dumps(key, allow_nan=False)  # plain Python values only: the book formats them
    checked = result.checked_numbers()
    assert tuple(checked) == CHECKED_NUMBERS
    assert checked["ndcg"] == round(key["ndcg"], 4) and checked["l2"] == key["l2"]


def test_a_split_with_an_empty_side_is_not_evaluated_and_says_why(ratings: pd.DataFrame,
                                                                  tmp_path):
    """Ratings imported with one timestamp: nothing is before the time cut-off, so the time
    split has no training part. The headline is still evaluated; the time numbers are
    "not measured" (None: the book shows n/a), and the split table says why."""
    batch = ratings.assign(timestamp=ratings["timestamp"].min())
    res = evaluate_recommender(batch, synthetic_titles(), k=K, time_quantile=0.7,
                               holdout_fraction=0.25, grid=GRID, min_coverage_ratio=2.0,
                               seed=3, paths=ProjectPaths(tmp_path))
    assert set(res.evaluations) == {"last_n", "random"}
    why = res.protocol["not_evaluated"]["time"]
    assert why.startswith("no rating falls in its training part")
    assert res.split_table.loc["time", "evaluated"] == why
    assert res.split_table.loc["last_n", "evaluated"] == "yes"
    key = res.key_numbers
    assert key["time_not_evaluated"] == why and key["time_n_test_users"] == 0
    assert key["time_ndcg"] is None and key["time_rmse"] is None
    assert key["ndcg"] > 0 and key["n_test_users"] > 0
    json.dumps(key, allow_nan=False)
    assert set(res.ranking_table.index.get_level_values("split")) == {"last_n", "random"}


def test_no_headline_without_a_user_with_two_ratings(ratings: pd.DataFrame, tmp_path):
    once = ratings.drop_duplicates("user")
    with pytest.raises(DataError, match=r"per-user split .*every user has a single rating"):
        evaluate_recommender(once, synthetic_titles(), k=K, grid=GRID, seed=3,
                             paths=ProjectPaths(tmp_path))


def test_every_number_the_book_glues_is_a_key_number(result: EvaluationResult):
    glued = set()
    for chapter in (PROJECT_ROOT / "book").glob("*.md"):
        glued |= set(re.findall(r"04_evaluation\.ipynb::eval_(\w+?)(?::|`)",
                                chapter.read_text(encoding="utf-8")))
    assert glued, "the book glues numbers of 04_evaluation"
    assert glued <= set(result.key_numbers)


def test_report_and_figures_are_written(result: EvaluationResult, project: ProjectPaths):
    report = json.loads((project.reports / REPORT_FILE).read_text(encoding="utf-8"))
    assert report["key"] == result.key_numbers
    assert report["protocol"]["k"] == K and set(report["protocol"]["splits"]) == set(result.splits)
    assert set(report["results"]) == set(result.splits)
    assert report["configuration"]["ranking_params"] == result.configuration["ranking_params"]
    assert not [p for p in project.reports.iterdir() if p.name.endswith(".tmp")]
    for name, fig in result.figures.items():
        assert (project.figures / f"{name}.png").stat().st_size > 0
        assert missing_labels(fig) == []
        assert fig.number not in plt.get_fignums()  # closed: Jupyter shows it only on request


def test_write_report_replaces_the_file(result: EvaluationResult, tmp_path):
    path = tmp_path / "nested" / "evaluation.json"
    path.parent.mkdir()
    path.write_text("stale", encoding="utf-8")
    assert result.write_report(path) == path
    assert json.loads(path.read_text(encoding="utf-8")) == result.report()
    assert [p.name for p in path.parent.iterdir()] == ["evaluation.json"]


def test_served_examples_without_a_champion(result: EvaluationResult, ratings: pd.DataFrame):
    served = result.served
    assert served.source.startswith("trained in this notebook")
    assert served.user == 1  # every user has as many ratings: the smallest id
    tables = list(served.examples.values())
    favourites, top, filtered, cold, similar = tables
    rated = set(ratings.loc[ratings["user"] == 1, "item"])
    assert len(favourites) == 5 and favourites["score"].is_monotonic_decreasing
    assert len(top) == K and not set(top["item_id"]) & rated
    assert set(filtered["platform"]) == {"beta"} and set(filtered["type"]) == {"TV Show"}
    assert "cold_start=True" in list(served.examples)[3] and len(cold) == 5
    most_rated = ratings["item"].value_counts().index[0]
    assert most_rated not in set(similar["item_id"]) and len(similar) == K


def test_the_registered_champion_is_what_is_served(ratings: pd.DataFrame):
    champion = svd_recommender(ratings)
    served, source = served_recommender(ratings, synthetic_titles(),
                                        (champion, {"version": "v0007"}))
    assert served is champion and source == "registered champion v0007"
    # standing in for a Spark batch champion (registry.load_evaluated): said so
    served, source = served_recommender(ratings, synthetic_titles(),
                                        (champion, {"version": "v0007", "stand_in_for": "v0009"}))
    assert served is champion and source == (
        "registered recommender v0007 (the champion v0009 is a Spark batch version, "
        "evaluated by 06_scale_out)")
    # a registered object that is not a Recommender cannot answer: one is trained here
    trained, source = served_recommender(ratings, synthetic_titles(), (object(), {}), seed=0)
    assert trained is not champion and source.startswith("trained in this notebook")
    assert trained.recommend(2, n=3).items["item_id"].tolist()


def test_median_activity_user_prefers_the_smallest_id_on_ties():
    df = pd.DataFrame({"user": [5, 5, 5, 2, 2, 9, 7, 7], "item": list("abcdefgh")})
    assert median_activity_user(df) == 2  # counts 3, 2, 1, 2: median 2, users 2 and 7


def test_the_configuration_line_summarises_the_rerankers_weights(result: EvaluationResult):
    import dataclasses

    weights = {"features": ["a", "b"], "candidates": 7, "weights": [0.123456, 0.654321]}
    line = dataclasses.replace(result, configuration={
        **result.configuration, "ranking_params": {**result.configuration["ranking_params"],
                                                   "rerank": weights}}).configuration_line
    assert "'rerank': 'learned re-ranker (2 features, 7 candidates)'" in line
    assert "0.123456" not in line and line.startswith(result.configuration["source"])
    assert "'rerank': None" in result.configuration_line or \
        "learned re-ranker" in result.configuration_line
