"""Splits without leakage, the relevance rule, rating and ranking evaluation, tuning."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from ranking_fixtures import svd_recommender, synthetic_ratings, synthetic_titles

from recsys_utils.errors import DataError
from recsys_utils.ranking.evaluation import (
    error_by_activity,
    evaluate_ranking,
    evaluate_rating,
    item_popularity,
    last_n_split,
    random_folds,
    rating_params_for,
    rating_table,
    relevant_items,
    time_split,
    tune_ranking,
    validation_split,
)
from recsys_utils.ranking.recommender import Recommender
from recsys_utils.rating.comparison import kfold_splits
from recsys_utils.rating.predictors import make_component


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_ratings(0)


def _key(df: pd.DataFrame) -> set[tuple]:
    return set(df[["user", "item", "timestamp"]].itertuples(index=False, name=None))


def test_time_split_tests_only_the_future_of_known_users(ratings: pd.DataFrame):
    split = time_split(ratings, 0.8)
    assert split.train["timestamp"].max() < split.test["timestamp"].min()
    assert set(split.test["user"]) <= set(split.train["user"])
    assert not _key(split.train) & _key(split.test)
    later = ratings[ratings["timestamp"] >= split.test["timestamp"].min()]
    dropped = len(later) - len(split.test)
    assert dropped == split.info["later_ratings_of_new_users"]
    assert len(split.train) + len(split.test) + dropped == len(ratings)
    assert 0.75 <= len(split.train) / len(ratings) <= 0.85


def test_time_split_drops_later_ratings_of_new_users():
    t = pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "2020-01-05"])
    df = pd.DataFrame({"user": [1, 1, 2, 1, 3], "item": ["a", "b", "c", "d", "e"],
                       "score": [4.0] * 5, "timestamp": t.astype("datetime64[s]")})
    split = time_split(df, 0.6)  # cut-off at the 3rd time: train = first two ratings
    assert split.train["item"].tolist() == ["a", "b"]
    assert split.test["item"].tolist() == ["d"]  # users 2 and 3 are new
    assert split.info["later_ratings_of_new_users"] == 2
    with pytest.raises(ValueError):
        time_split(df, 1.0)
    with pytest.raises(DataError, match="timestamp"):
        time_split(df.drop(columns="timestamp"), 0.6)


def test_last_fraction_split_holds_out_each_users_latest_ratings(ratings: pd.DataFrame):
    split = last_n_split(ratings, fraction=0.25)
    assert not _key(split.train) & _key(split.test)
    assert len(split.train) + len(split.test) == len(ratings)
    for user, test in split.test.groupby("user"):
        train = split.train[split.train["user"] == user]
        assert train["timestamp"].max() <= test["timestamp"].min()
        assert len(test) == math.ceil(0.25 * (len(test) + len(train)))


def test_last_n_split_keeps_short_users_whole():
    t = pd.date_range("2020-01-01", periods=5, freq="D").astype("datetime64[s]")
    df = pd.DataFrame({"user": [1, 1, 1, 1, 2], "item": ["a", "b", "c", "d", "a"],
                       "score": [3.0, 4.0, 5.0, 2.0, 4.0], "timestamp": t})
    split = last_n_split(df, n=2, fraction=None, min_train=1)
    assert split.test["item"].tolist() == ["c", "d"]  # user 1's last two
    assert split.train["item"].tolist() == ["a", "b", "a"]  # user 2 too short: kept whole
    assert split.info["users_kept_whole"] == 1
    with pytest.raises(ValueError, match="exactly one"):
        last_n_split(df, n=2, fraction=0.2)


def test_last_n_split_says_when_time_does_not_order_the_holdout():
    """An export whose ratings all carry one time: the holdout is by title id, and the
    split says so instead of claiming time order; distinct times leave no tie."""
    t = pd.date_range("2020-01-01", periods=4, freq="D").astype("datetime64[s]")
    df = pd.DataFrame({"user": [1, 1, 1, 1], "item": ["d", "c", "b", "a"],
                       "score": [3.0, 4.0, 5.0, 2.0], "timestamp": t})
    timed = last_n_split(df, n=2, fraction=None)
    assert timed.test["item"].tolist() == ["b", "a"] and timed.info["time_ties"] == 0
    assert "by time (" in timed.description
    untimed = last_n_split(df.assign(timestamp=t[0]), n=2, fraction=None)
    assert untimed.test["item"].tolist() == ["c", "d"]  # by title id
    assert untimed.info["time_ties"] == 1.0
    assert "100% of them share the second" in untimed.description


def test_random_folds_are_the_shared_folds(ratings: pd.DataFrame):
    folds = random_folds(ratings, n_folds=5, seed=7)
    shared = list(kfold_splits(ratings, 5, 7))
    assert len(folds) == 5
    all_test = pd.concat([f.test for f in folds])
    assert len(all_test) == len(ratings) and all_test.index.is_unique
    for fold, (train, test) in zip(folds, shared, strict=True):
        assert fold.test.index.equals(test.index) and fold.train.index.equals(train.index)
        assert not set(fold.train.index) & set(fold.test.index)


def test_relevance_rule_and_popularity():
    test = pd.DataFrame({"user": [1, 1, 2, 3], "item": ["a", "b", "a", "c"],
                         "score": [4.0, 3.5, 5.0, 1.0]})
    assert relevant_items(test) == {1: {"a"}, 2: {"a"}, 3: set()}
    assert relevant_items(test, threshold=3.5) == {1: {"a", "b"}, 2: {"a"}, 3: set()}
    assert item_popularity(test) == {"a": 2 / 3, "b": 1 / 3, "c": 1 / 3}


class _Constant:
    """A rating model predicting a constant (clipped like a real one)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict_items(self, user, items, clip=True):  # noqa: ANN001 - test stub
        return np.full(len(items), self.value)


def test_rating_evaluation_and_error_by_activity():
    train = pd.DataFrame({"user": [1] * 3 + [2] * 30, "item": ["x"] * 33, "score": [3.0] * 33})
    test = pd.DataFrame({"user": [1, 1, 2, 9], "item": ["a", "b", "a", "a"],
                         "score": [4.0, 2.0, 5.0, 3.0]})
    res = evaluate_rating(_Constant(3.0), test)
    # errors 1, -1, 2, 0
    assert res["rmse"] == pytest.approx(math.sqrt(6 / 4))
    assert res["mae"] == pytest.approx(1.0)
    assert res["n"] == 4
    by = error_by_activity(_Constant(3.0), train, test, bins=(0, 5, 50)).set_index("activity")
    assert by.loc["0-5", "n_users"] == 2  # user 1 (3 ratings) and unseen user 9
    assert by.loc["0-5", "rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert by.loc["5-50", "n_ratings"] == 1 and by.loc["5-50", "mae"] == pytest.approx(2.0)
    table = rating_table(_Constant(3.0), train, test).set_index("model")
    assert table.loc["model", "rmse"] == pytest.approx(res["rmse"])
    assert table.loc["global_mean", "rmse"] == pytest.approx(res["rmse"])  # train mean is 3
    assert set(table.index) == {"model", "item_mean", "global_mean", "random"}


def _factory(train: pd.DataFrame) -> Recommender:
    return Recommender(seed=0, rating_model=make_component("baseline")).fit(
        train, synthetic_titles())


def test_evaluate_ranking_reports_model_and_baselines_on_the_same_run(ratings: pd.DataFrame):
    split = last_n_split(ratings, fraction=0.25)
    res = evaluate_ranking(_factory, split.train, split.test, k=5, seed=1)
    assert set(res.metrics) == {"model", "popularity", "random"}
    model, random = res.metrics["model"], res.metrics["random"]
    assert model["ndcg"] > random["ndcg"]
    assert model["n_users"] == random["n_users"] > 0
    assert res.table["strategy"].tolist() == ["model", "popularity", "random"]
    assert res.ratio("ndcg") == pytest.approx(model["ndcg"] / res.metrics["popularity"]["ndcg"])
    # paired gains are taken on the same users, so their mean is the difference of the means
    gain = res.paired["random"]
    assert gain["gain"] == pytest.approx(model["ndcg"] - random["ndcg"])
    assert gain["gain_se"] > 0 and 0 < gain["share_better"] <= 1
    assert gain["share_better"] + gain["share_worse"] <= 1
    assert set(res.paired) == {"popularity", "random"}
    # two platforms -> one row per platform and strategy, on the platform's titles only
    by = res.by_platform
    assert sorted(by["platform"].unique()) == ["alpha", "beta"] and len(by) == 6
    assert (by["coverage"] <= 1).all()
    assert "by_platform" in res.to_dict()
    # a split where popularity finds nothing has no ratio (not a division by zero)
    res.metrics["popularity"] = {**res.metrics["popularity"], "ndcg": 0.0}
    assert math.isnan(res.ratio("ndcg")) and res.ratio("coverage") > 0


def test_no_relevant_test_title_leaves_the_paired_comparison_undefined(ratings: pd.DataFrame):
    """One user whose held-out ratings are all below the threshold (a real small export):
    every baseline still has its paired entry, undefined, so the report can say n/a."""
    split = last_n_split(ratings, fraction=0.25)
    res = evaluate_ranking(_factory, split.train, split.test.assign(score=1.0), k=5, seed=1)
    assert res.metrics["model"]["n_users"] == 0
    assert set(res.paired) == {"popularity", "random"}
    assert all(math.isnan(v) for gain in res.paired.values() for v in gain.values())


def test_rating_model_choice_changes_the_rmse_not_the_top_n(ratings: pd.DataFrame):
    """The large preset evaluates with ``rating_model: baseline``: with ``rating_weight=0``
    the ranked lists (so every top-N metric) are those of the other choices."""
    split = last_n_split(ratings, fraction=0.25)
    titles = synthetic_titles()
    fitted = {choice: Recommender(rating_params_for(choice), seed=0).fit(split.train, titles)
              for choice in ("baseline", "fast")}
    assert set(fitted["baseline"].rating_model.components) == {"baseline"}
    assert set(fitted["fast"].rating_model.components) == {"baseline", "svd"}
    lists = {c: rec.recommend_all(5) for c, rec in fitted.items()}
    assert lists["baseline"] == lists["fast"]
    rmse = {c: evaluate_rating(rec, split.test)["rmse"] for c, rec in fitted.items()}
    assert rmse["baseline"] != rmse["fast"]
    with pytest.raises(ValueError, match="unknown rating model"):
        rating_params_for("svdpp")


def test_same_seed_same_metrics_and_other_seed_other_random_baseline():
    ratings = synthetic_ratings(1)
    split = time_split(ratings, 0.7)

    def run(seed):
        return evaluate_ranking(lambda tr: svd_recommender(tr, seed=seed), split.train,
                                split.test, k=5, seed=seed).metrics

    first, second = run(3), run(3)
    assert first == second
    assert first["model"]["ndcg"] > first["random"]["ndcg"]
    assert run(4)["random"] != first["random"]


def test_tune_ranking_honours_the_coverage_constraint(ratings: pd.DataFrame):
    res = tune_ranking(ratings, synthetic_titles(), {"l2": [10.0, 50.0],
                                                     "pop_weight": [0.0, 0.5, -0.5]},
                       holdout_fraction=0.25, k=5, min_coverage_ratio=3.5)
    assert len(res.table) == 6 and res.constraint_met
    ok = res.table[res.table["coverage_ratio"] >= 3.5]
    assert len(ok) < len(res.table)  # the floor excludes some settings
    best = ok.loc[ok["ndcg"].idxmax()]
    assert best["l2"] == res.best_params["l2"]
    assert best["pop_weight"] == res.best_params["pop_weight"]
    assert res.table["chosen"].sum() == 1 and res.table.loc[res.table["chosen"], "l2"].item() \
        == res.best_params["l2"]
    assert res.table["coverage_ratio"].min() < 3.5
    assert res.key_numbers["coverage_floor"] == 3.5
    assert res.key_numbers["floor_outcome"] == f"{len(ok)} of the 6 configurations reached it"
    # a floor nobody reaches: the best NDCG overall, and the choice says so
    high = tune_ranking(ratings, synthetic_titles(), {"l2": [10.0, 50.0],
                                                      "pop_weight": [0.0, 0.5, -0.5]},
                        holdout_fraction=0.25, k=5, min_coverage_ratio=100.0)
    assert not high.constraint_met
    assert high.best_row["ndcg"] == high.table["ndcg"].max()
    assert high.key_numbers["floor_outcome"].startswith("no configuration reached it")
    with pytest.raises(ValueError, match="cannot tune"):
        tune_ranking(ratings, synthetic_titles(), {"n_factors": [3]})
    with pytest.raises(ValueError, match="cannot tune"):
        tune_ranking(ratings, synthetic_titles(), {"ease": {"l2": [1.0]}, "svd": {}})


def test_tune_ranking_in_worker_processes_gives_the_same_table(ratings: pd.DataFrame):
    grid = {"ease": {"l2": [10.0, 50.0], "pop_weight": [0.0, -0.5]},
            "itemknn": {"neighbours": [5, 20]}}
    one = tune_ranking(ratings, synthetic_titles(), grid, holdout_fraction=0.25, k=5)
    two = tune_ranking(ratings, synthetic_titles(), grid, holdout_fraction=0.25, k=5, n_jobs=2)
    pd.testing.assert_frame_equal(one.table, two.table)
    assert one.best_params == two.best_params and one.popularity == two.popularity
    assert len(one.table) == 6 and one.table["ndcg"].nunique() > 1  # real, distinct scores


def test_tune_ranking_without_a_relevant_validation_title_says_so(ratings: pd.DataFrame):
    """Too few ratings: no validation user holds out a liked title, every NDCG is undefined.
    A DataError names the way out instead of pandas' "all NA values" from deep inside."""
    disliked = ratings.assign(score=np.minimum(ratings["score"], 3.5))
    with pytest.raises(DataError, match=r"no validation user has a relevant title .*"
                                        r"choose_ranking=False"):
        tune_ranking(disliked, synthetic_titles(), {"l2": [10.0]}, holdout_fraction=0.25, k=5)


def test_validation_split_never_sees_the_evaluation_test_window(ratings: pd.DataFrame):
    test_window = last_n_split(ratings, fraction=0.25).test
    val = validation_split(ratings, 0.25)
    used = pd.concat([val.train, val.test])
    assert len(used) + len(test_window) == len(ratings)
    assert used.merge(test_window, on=["user", "item", "timestamp"]).empty
    # per user, validation ratings are the latest of what remains
    last_train = val.train.groupby("user")["timestamp"].max()
    first_val = val.test.groupby("user")["timestamp"].min()
    assert (last_train.loc[first_val.index] <= first_val).all()


def test_rival_rankers_are_tuned_side_by_side_and_recorded(ratings: pd.DataFrame):
    grid = {"ease": {"weighting": ["score", "binary"], "l2": [10.0]},
            "itemknn": {"neighbours": [5]}, "rp3beta": {"neighbours": [5]},
            "als": {"factors": [4], "als_iterations": [3]}, "popularity": {}}
    res = tune_ranking(ratings, synthetic_titles(), grid, holdout_fraction=0.25, k=5,
                       min_coverage_ratio=1.5)
    assert res.table["ranker"].tolist() == ["ease", "ease", "itemknn", "rp3beta", "als",
                                            "popularity"]
    assert set(res.table["n_users"]) == {res.table["n_users"].iloc[0]}  # the same users
    rivals = res.rivals
    assert {"ease (score)", "ease (binary)", "popularity (baseline)"} <= set(rivals["rival"])
    assert rivals["ndcg"].is_monotonic_decreasing and rivals["chosen"].sum() == 1
    chosen = res.table.loc[res.table["chosen"]].iloc[0]
    assert res.best_params["ranker"] == chosen["ranker"]
    ease = res.table[res.table["ranker"] == "ease"]
    assert ease["ndcg"].max() > res.popularity["ndcg"]  # the two groups: EASE finds them
    record = res.record()
    assert record["chosen"] == res.best_params and record["grid"]["itemknn"] == {"neighbours": [5]}
    assert record["validation"]["ndcg"] == pytest.approx(chosen["ndcg"])
    assert record["validation_split"]["split"] == "validation"
    key = res.key_numbers
    assert key["ranker"] == res.best_params["ranker"]
    assert res.summary.startswith(f"chosen {key['ranker']} (")
    assert f"{record['validation']['ndcg']:.4f}" in res.summary
    assert key["rival_ease_binary_ndcg"] == pytest.approx(
        ease.loc[ease["weighting"] == "binary", "ndcg"].max())


def test_the_default_grid_is_the_params_files_grid():
    """The notebook's ``ranking_grid = None`` means DEFAULT_RANKING_GRID: the same grid as
    the pipeline passes from notebooks/params.yaml, so both runs choose alike."""
    import yaml

    from recsys_utils.paths import PROJECT_ROOT
    from recsys_utils.ranking.evaluation import DEFAULT_RANKING_GRID

    params = yaml.safe_load((PROJECT_ROOT / "notebooks" / "params.yaml").read_text("utf-8"))
    assert params["03_modeling"]["ranking_grid"] == DEFAULT_RANKING_GRID
