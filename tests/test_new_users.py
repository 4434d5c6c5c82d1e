"""The new-user policy: what each serving path does with it, and how it is chosen."""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pandas as pd
import pytest
from ranking_fixtures import svd_recommender, synthetic_ratings, synthetic_titles

from recsys_utils.ranking import new_users, rerank
from recsys_utils.ranking.evaluation import last_n_split, relevant_items, tune_ranking
from recsys_utils.ranking.metrics import ndcg_at_k
from recsys_utils.ranking.new_users import (
    choose_new_user_policy,
    choose_policy,
    new_user_curve,
    new_user_lists,
)
from recsys_utils.ranking.precomputed import precompute_lists, recommend_precomputed
from recsys_utils.rating.predictors import make_component

STRUCTURE = {**rerank.DEFAULT_STRUCTURE, "candidates": 6, "window": 4, "decay": 2.0}
FEW = (1, 2, 3)  # users left with only their first two ratings


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    """The synthetic ratings, users 1-3 cut to their first two ratings."""
    df = synthetic_ratings(0).sort_values(["user", "timestamp"], kind="mergesort")
    first_two = df.groupby("user").cumcount() < 2
    return df[~df["user"].isin(FEW) | first_two].reset_index(drop=True)


@pytest.fixture(scope="module")
def weights(ratings) -> dict:
    split = last_n_split(ratings, fraction=0.25)
    rec = svd_recommender(split.train).fit_rerank_context(split.train, STRUCTURE)
    return rerank.fit_weights(*rerank.labelled_candidates(rec, relevant_items(split.test)),
                              STRUCTURE)


@pytest.fixture(scope="module")
def rec(ratings, weights):
    return svd_recommender(ratings, rerank=weights)


def _by_count(rec) -> list[str]:
    """Catalog titles from the most rated, ties to the better Bayesian average, then order."""
    order = sorted(range(len(rec.item_ids)),
                   key=lambda i: (-rec.n_ratings[i], -rec._bayes[i], i))
    return rec.item_ids[order].tolist()


def test_the_popularity_cold_start_list_is_the_most_rated_titles(rec):
    popular = rec.with_ranking(cold_start_list="popularity")
    got = popular.recommend(-1, 12)
    assert got.cold_start
    assert got.items["item_id"].tolist() == _by_count(rec)[:12]
    assert rec.recommend(-1, 12).items["item_id"].tolist() != _by_count(rec)[:12]
    movies = popular.recommend(-1, 5, kind="Movie").items["item_id"].tolist()
    allowed = set(rec.item_ids[rec.candidate_mask(None, "Movie")].tolist())
    assert movies == [i for i in _by_count(rec) if i in allowed][:5]


def test_a_request_with_too_few_ratings_gets_the_cold_start_list_without_them(rec):
    policy = rec.with_ranking(cold_start_list="popularity", personalise_from=3)
    given = dict(zip(_by_count(rec)[:2], (5.0, 4.0), strict=True))
    got = policy.recommend_for_ratings(given, 8)
    assert got.cold_start and got.user is None
    assert got.items["item_id"].tolist() == _by_count(rec)[2:10]
    three = {**given, rec.item_ids[5]: 3.0}
    personal = policy.recommend_for_ratings(three, 8)
    assert not personal.cold_start
    assert personal.items.equals(rec.recommend_for_ratings(three, 8).items)


def test_the_reranker_waits_for_rerank_from_ratings(rec):
    given = {rec.item_ids[k]: 5.0 for k in (0, 3, 7)}
    plain = rec.with_reranker(None).recommend_for_ratings(given, 10).items
    full = rec.recommend_for_ratings(given, 10).items
    assert not plain["item_id"].equals(full["item_id"])  # the re-ranker changes this list
    assert rec.with_ranking(rerank_from=4).recommend_for_ratings(given, 10).items.equals(plain)
    assert rec.with_ranking(rerank_from=3).recommend_for_ratings(given, 10).items.equals(full)


def test_known_users_with_few_ratings_follow_the_policy_on_every_path(rec, ratings):
    policy = rec.with_ranking(cold_start_list="popularity", personalise_from=3, rerank_from=12)
    plain, full = rec.with_reranker(None), rec
    batch = policy.recommend_all(6)
    lists = precompute_lists(policy, depth=8)
    for user in rec.user_ids.tolist():
        got = policy.recommend(user, 6)
        rated = set(ratings.loc[ratings["user"] == user, "item"])
        if user in FEW:  # two ratings: the cold-start list without them
            want = [i for i in _by_count(rec) if i not in rated][:6]
            assert got.cold_start and got.items["item_id"].tolist() == want
        else:  # twelve ratings: personal, and re-ranked (12 >= rerank_from)
            assert not got.cold_start
            assert got.items.equals(full.recommend(user, 6).items)
        assert batch[user] == got.items["item_id"].tolist()
        assert policy.top_items(user, 6) == batch[user]
        stored = recommend_precomputed(policy, lists, user, 6)
        assert stored.cold_start == got.cold_start and stored.items.equals(got.items)
    later = rec.with_ranking(rerank_from=13)  # nobody has 13 ratings: never re-ranked
    assert later.recommend_all(6) == plain.recommend_all(6) != full.recommend_all(6)


def test_a_requests_time_is_what_the_rerankers_time_features_read(rec, ratings, monkeypatch):
    given = {rec.item_ids[k]: 5.0 for k in (0, 3, 7)}
    seen = []
    real = rerank.candidate_features

    def spy(model, scores, rows=None, new_user=None):
        seen.append(new_user[2])
        return real(model, scores, rows, new_user)

    monkeypatch.setattr(rerank, "candidate_features", spy)
    end = rec.recommend_for_ratings(given, 10)
    assert seen == [None]  # a live request: the end of the training data
    same = rec.recommend_for_ratings(given, 10, at=ratings["timestamp"].max())
    assert seen[-1] == rec._rerank.end_time and same.items.equals(end.items)
    early = rec.recommend_for_ratings(given, 10, at="2020-01-02")
    assert seen[-1] == int(pd.Timestamp("2020-01-02").timestamp())
    assert not early.items["ranking_score"].equals(end.items["ranking_score"])


def test_the_policy_is_validated_and_survives_pickling(rec):
    for bad in ({"cold_start_list": "random"}, {"personalise_from": 0},
                {"rerank_from": -1}, {"personalise_from": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            rec.with_ranking(**bad)
    policy = rec.with_ranking(cold_start_list="popularity", personalise_from=3)
    again = pickle.loads(pickle.dumps(policy))
    assert again.recommend_all(5) == policy.recommend_all(5)


def test_a_model_saved_before_the_policy_answers_as_before(rec):
    state = rec.__getstate__()
    state.pop("_user_counts")
    for key in ("cold_start_list", "personalise_from", "rerank_from"):
        state["ranking_params"] = {k: v for k, v in state["ranking_params"].items() if k != key}
    old = type(rec).__new__(type(rec))
    old.__setstate__(state)
    assert old.recommend_all(5) == rec.recommend_all(5)
    assert old.recommend(-1, 5).items.equals(rec.recommend(-1, 5).items)


# ------------------------------------------------------------------ the choice
def _table(**curves: list[float]) -> pd.DataFrame:
    grid = list(new_users.GIVEN)
    table = pd.DataFrame({"users": 50, **curves}, index=pd.Index(grid, name="n_given"))
    table.loc[0, ["personal", "reranked"]] = np.nan
    return table


def test_the_rule_reads_the_curves_as_documented():
    #              n:   0    1    2    3    5    10
    table = _table(popularity=[.30, .30, .30, .30, .30, .30],
                   bayes=[.20, .20, .20, .20, .20, .20],
                   personal=[0, .25, .31, .29, .35, .40],   # dips below at 3: from 5
                   reranked=[0, .10, .10, .36, .30, .41])   # below at 5: from 10
    assert choose_policy(table, reranker=True) == {
        "cold_start_list": "popularity", "personalise_from": 5, "rerank_from": 10}
    assert choose_policy(table, reranker=False)["rerank_from"] == 0
    even = table.assign(bayes=table["popularity"], personal=table["personal"] + 1)
    assert choose_policy(even, reranker=True)["cold_start_list"] == "bayes"  # a tie keeps it
    assert choose_policy(even, reranker=True)["personalise_from"] == 1
    never = table.assign(personal=table["personal"] * 0)
    assert choose_policy(never, reranker=True)["personalise_from"] == 10  # the grid's last


def test_the_curve_scores_the_request_paths_lists(rec, ratings):
    histories = ratings[ratings["user"].isin([4, 5, 6])]
    curve = new_user_curve(rec, histories, given=(0, 2, 4), next_n=6, k=5)
    assert set(curve["user"]) == {4, 5, 6} and set(curve["n_given"]) == {0, 2, 4}
    row = curve[(curve["user"] == 5) & (curve["n_given"] == 2)].iloc[0]
    history = histories[histories["user"] == 5].sort_values(["timestamp", "item"])
    items, scores = history["item"].tolist(), history["score"].tolist()
    relevant = {i for i, s in zip(items[2:8], scores[2:8], strict=True) if s >= 4.0}
    given = dict(zip(items[:2], scores[:2], strict=True))
    at = history["timestamp"].iloc[1]  # the request is made at the user's second rating
    lists = new_user_lists(rec, given, 5, at=at)
    assert lists["reranked"] == rec.recommend_for_ratings(given, 5, at=at).items[
        "item_id"].tolist()
    assert lists["popularity"] == [i for i in _by_count(rec) if i not in given][:5]
    for name in new_users.LISTS:
        assert row[name] == pytest.approx(ndcg_at_k(lists[name], relevant, 5))
    assert curve.loc[curve["n_given"] == 0, "personal"].isna().all()


def test_the_choice_is_the_rule_on_held_out_users_and_tuning_registers_it(ratings, weights):
    factory = functools.partial(make_component, "baseline", seed=0)
    params = {**svd_recommender(ratings).ranking_params, "rerank": weights}
    record = choose_new_user_policy(ratings, synthetic_titles(), params, factory, seed=0)
    table = record["table"].set_index("n_given")
    assert record["held_out_users"] == round(ratings["user"].nunique() * 0.2)
    assert record["chosen"] == choose_policy(table, reranker=True)
    assert table["users"].iloc[0] <= record["held_out_users"]
    tuned = tune_ranking(ratings, synthetic_titles(), {"ease": {"l2": [10.0]}},
                         min_coverage_ratio=0.0)
    off = tune_ranking(ratings, synthetic_titles(), {"ease": {"l2": [10.0]}},
                       min_coverage_ratio=0.0, new_users=False)
    chosen = tuned.new_users["chosen"]
    assert {k: tuned.best_params[k] for k in chosen} == chosen
    assert tuned.record()["new_users"]["chosen"] == chosen
    assert tuned.record()["protocol"]["new_users_tried"]
    assert tuned.new_users["outcome"] in tuned.summary
    assert list(tuned.new_users_table.columns[:3]) == ["users", "popularity", "bayes"]
    assert {k: off.best_params[k] for k in chosen} == new_users.POLICY_OFF
    assert not off.new_users["tried"] and off.new_users_table.empty


def test_the_cold_start_order_follows_a_refit(ratings):
    rec = svd_recommender(ratings, cold_start_list="popularity")
    first = rec.recommend(-1, 5).items["item_id"].tolist()
    assert first == _by_count(rec)[:5]
    rec.fit(ratings[ratings["item"] != first[0]], synthetic_titles())  # the top title unrated
    again = rec.recommend(-1, 5).items["item_id"].tolist()
    assert again == _by_count(rec)[:5] and first[0] not in again
