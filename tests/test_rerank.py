"""The learned re-ranker: its order, its filters, its context, and the rule adopting it."""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pandas as pd
import pytest
from ranking_fixtures import svd_recommender, synthetic_ratings, synthetic_titles

from recsys_utils.ranking import evaluation, rerank
from recsys_utils.ranking.evaluation import (
    choose_reranker,
    last_n_split,
    per_user_split,
    relevant_items,
    tune_ranking,
    validation_split,
)
from recsys_utils.ranking.precomputed import precompute_lists, recommend_precomputed
from recsys_utils.rating.predictors import make_component

#: Few candidates, so some titles are re-ranked and the others follow by ranking score.
STRUCTURE = {**rerank.DEFAULT_STRUCTURE, "candidates": 6, "window": 4, "decay": 2.0}
FILTERS = [(None, None), (["alpha"], None), (["beta"], "Movie"), (None, "TV Show")]


def _weights(ratings: pd.DataFrame) -> dict:
    """Weights fitted on the labels of each user's latest ratings."""
    split = last_n_split(ratings, fraction=0.25)
    rec = svd_recommender(split.train).fit_rerank_context(split.train, STRUCTURE)
    return rerank.fit_weights(*rerank.labelled_candidates(rec, relevant_items(split.test)),
                              STRUCTURE)


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_ratings(0)


@pytest.fixture(scope="module")
def rec(ratings):
    return svd_recommender(ratings, rerank=_weights(ratings))


def test_the_candidates_come_first_in_the_reranker_order_then_the_rest(rec):
    plain = rec.with_reranker(None)
    weights = rec.ranking_params["rerank"]
    for user in rec.user_ids[:12].tolist():
        u = rec._user_pos[user]
        scores = plain._model_scores(np.array([u]), rerank=False)
        top, features, ok = rerank.candidate_features(rec, scores, rows=np.array([u]))
        learned = ((features - weights["mean"]) / weights["scale"]) @ weights["weights"]
        candidates = top[0][ok[0]]
        by_learned = candidates[np.argsort(-learned[ok[0]], kind="stable")]
        unrated = int(np.isfinite(scores).sum())
        rest = plain.recommend(user, unrated).items["item_id"].tolist()
        want = rec.item_ids[by_learned].tolist()
        want += [item for item in rest if item not in set(want)]
        assert rec.recommend(user, unrated).items["item_id"].tolist() == want
        assert len(candidates) == STRUCTURE["candidates"] < unrated


def test_a_filtered_list_is_the_unfiltered_list_filtered(rec):
    for user in rec.user_ids.tolist():
        full = rec.recommend(user, 40).items["item_id"].tolist()
        for platforms, kind in FILTERS[1:]:
            allowed = set(rec.item_ids[rec.candidate_mask(platforms, kind)].tolist())
            got = rec.recommend(user, 5, platforms, kind).items["item_id"].tolist()
            assert got == [item for item in full if item in allowed][:5]


@pytest.mark.parametrize(("platforms", "kind"), FILTERS)
def test_batch_and_precomputed_lists_equal_a_request(rec, platforms, kind):
    batch = rec.recommend_all(5, platforms, kind)
    lists = precompute_lists(rec, depth=8)
    for user in rec.user_ids.tolist():
        want = rec.recommend(user, 5, platforms, kind)
        assert batch[user] == want.items["item_id"].tolist()
        pd.testing.assert_frame_equal(
            recommend_precomputed(rec, lists, user, 5, platforms, kind).items, want.items)


def test_the_reranker_changes_lists_and_survives_pickling(rec):
    plain = rec.with_reranker(None)
    assert rec.recommend_all(5) != plain.recommend_all(5)
    again = pickle.loads(pickle.dumps(rec))
    assert again.recommend_all(5) == rec.recommend_all(5)
    assert again.recommend_for_ratings({"i03": 5.0, "i30": 1.0}).items.equals(
        rec.recommend_for_ratings({"i03": 5.0, "i30": 1.0}).items)


def test_a_new_users_ratings_are_read_in_the_order_given(rec):
    given = {"i01": 5.0, "i02": 4.0, "i05": 4.5, "i07": 5.0, "i09": 4.0, "i11": 4.5}
    pos = rec.catalog.positions(given)
    w = rec.interaction_weights(np.array(list(given.values())))
    row = rec._sequence_row(w, pos).toarray()[0]
    decay = STRUCTURE["decay"]
    # the window keeps the last 4 given; the last one counts fully
    want = np.zeros_like(row)
    for back, j in enumerate(range(len(pos) - 1, len(pos) - 1 - STRUCTURE["window"], -1)):
        want[pos[j]] = w[j] * np.exp(-back / decay)
    np.testing.assert_allclose(row, want, rtol=1e-6)
    got = rec.recommend_for_ratings(given, 10).items["item_id"].tolist()
    assert len(got) == 10 and not set(got) & set(given)


def test_the_time_windows_count_whole_months_before_the_users_month():
    t = pd.to_datetime(["2020-01-15", "2020-02-03", "2020-02-20", "2020-03-01", "2020-03-31",
                        "2019-03-10", "2020-04-02"]).astype("datetime64[s]")
    df = pd.DataFrame({"user": [1, 2, 3, 4, 5, 6, 7], "item": ["i00"] * 7,
                       "score": [4.0] * 7, "timestamp": t})
    filler = synthetic_ratings(1)  # so the title has a column in the ranker
    filler["timestamp"] = pd.Timestamp("2010-06-01")
    rec = svd_recommender(pd.concat([filler, df], ignore_index=True))
    ctx = rerank.fit_context(rec, pd.concat([filler, df], ignore_index=True), STRUCTURE)
    item = rec.catalog.positions(["i00"])
    when = pd.to_datetime(["2020-04-02 12:00"]).astype("datetime64[s]").astype("int64")
    filler_i00 = int((filler["item"] == "i00").sum())
    # month before April 2020: March (2 ratings); year before: April 2019 - March 2020 (5)
    assert ctx.ratings_before(when.to_numpy(), item, 1).tolist() == [2]
    assert ctx.ratings_before(when.to_numpy(), item, 12).tolist() == [5]
    assert ctx.ratings_before(when.to_numpy(), item, 200).tolist() == [6 + filler_i00]


def test_the_sequential_model_is_its_closed_form_in_any_block_size(ratings, monkeypatch):
    rec = svd_recommender(ratings)
    whole = rerank.fit_context(rec, ratings, STRUCTURE)
    monkeypatch.setattr(rerank, "BLOCK_RATINGS", 37)
    blocks = rerank.fit_context(rec, ratings, STRUCTURE)
    np.testing.assert_array_equal(whole.sequential.B, blocks.sequential.B)
    # the definition, densely: S = decayed ratings so far, T = decayed ratings that follow
    df = ratings.sort_values(["user", "timestamp"], kind="mergesort")
    col = whole.sequential.col_of()[rec.catalog.positions(df["item"].astype(str))]
    w = rec.interaction_weights(df["score"].to_numpy(dtype=np.float64))
    users, n, m = df["user"].to_numpy(), len(df), whole.sequential.cols.size
    s, target = np.zeros((n, m)), np.zeros((n, m))
    for a in range(n):
        for lag in range(STRUCTURE["window"]):
            if a - lag >= 0 and users[a - lag] == users[a] and col[a - lag] >= 0:
                s[a, col[a - lag]] += w[a - lag] * np.exp(-lag / STRUCTURE["decay"])
            b = a + lag + 1
            if b < n and users[b] == users[a] and col[b] >= 0:
                target[a, col[b]] += w[b] * np.exp(-lag / STRUCTURE["decay"])
    b = np.linalg.solve(s.T @ s + STRUCTURE["l2"] * np.eye(m), s.T @ target)
    np.testing.assert_allclose(whole.sequential.B, b, atol=2e-3, rtol=2e-3)


def test_the_rule_adopts_only_weights_that_gain_out_of_sample(ratings):
    split = validation_split(ratings)
    factory = lambda: make_component("baseline", seed=0)  # noqa: E731
    params = svd_recommender(ratings).ranking_params
    carve = lambda df: per_user_split(df, 0.2, None)  # noqa: E731
    record = choose_reranker(split, carve, params, synthetic_titles(), factory)
    gain = record["validation"]["gain"]
    assert record["adopted"] == (gain > 0) and (record["weights"] is not None) == (gain > 0)
    assert record["validation"]["ndcg_with"] - record["validation"]["ndcg_without"] == \
        pytest.approx(gain, abs=1e-9)
    held_back = choose_reranker(split, carve, params, synthetic_titles(), factory,
                                min_coverage_ratio=1e9)  # out of reach of every penalty
    assert not held_back["adopted"] and held_back["weights"] is None
    assert "even with popularity penalty 2" in held_back["outcome"]
    # a floor just above the unpenalised coverage: the smallest penalty that reaches it
    floor = record["validation"]["coverage_ratio_with"] + 1e-6
    raised = choose_reranker(split, carve, params, synthetic_titles(), factory,
                             min_coverage_ratio=floor)["validation"]
    assert raised["popularity_penalty"] > 0
    assert raised["coverage_ratio_with"] >= floor or raised["popularity_penalty"] == 2.0
    untimed = choose_reranker(split.__class__(split.name, split.train.drop(columns="timestamp"),
                                              split.test, split.description, split.info),
                              carve, params, synthetic_titles(), factory)
    assert untimed["outcome"] == "not adopted: the ratings have no times"


def test_the_served_weights_keep_the_coverage_floor_too(ratings, monkeypatch):
    """The floor is checked on the lists served, not only on those the gain is judged by:
    served weights that rank by popularity alone (the second fit; the first is the window
    before validation) are refused although the judged weights keep the floor."""
    split = validation_split(ratings)
    factory = lambda: make_component("baseline", seed=0)  # noqa: E731
    params = svd_recommender(ratings).ranking_params
    carve = lambda df: per_user_split(df, 0.2, None)  # noqa: E731
    plain = choose_reranker(split, carve, params, synthetic_titles(), factory)
    fitted = evaluation._fitted_for_reranking(split.train, params, synthetic_titles(), factory,
                                              0)
    served, popular = (len({i for line in lists.values() for i in line})
                       for lists in (fitted.with_reranker(plain["weights"]).recommend_all(10),
                                     fitted.recommend_all(10, strategy="popularity")))
    assert plain["validation"]["coverage_ratio_served"] == pytest.approx(served / popular)
    fits = []

    def popular_when_served(features, labels, structure):
        fits.append(rerank.fit_weights(features, labels, structure))
        if len(fits) == 1:
            return fits[-1]
        return {**fits[-1], "weights": [10.0 * (name == "popularity")
                                        for name in rerank.FEATURES]}

    monkeypatch.setattr(evaluation, "fit_weights", popular_when_served)
    floor = plain["validation"]["coverage_ratio_with"]
    refused = choose_reranker(split, carve, params, synthetic_titles(), factory,
                              min_coverage_ratio=floor)
    assert len(fits) == 2 and not refused["adopted"] and refused["weights"] is None
    assert refused["validation"]["coverage_ratio_served"] < floor
    assert "(the served weights: " in refused["outcome"]


def test_tuning_registers_the_weights_it_adopted(ratings):
    grid = {"ease": {"l2": [10.0]}}
    tuned = tune_ranking(ratings, synthetic_titles(), grid, min_coverage_ratio=0.0)
    off = tune_ranking(ratings, synthetic_titles(), grid, min_coverage_ratio=0.0, rerank=False)
    assert off.best_params["rerank"] is None and not off.rerank["tried"]
    assert tuned.rerank["tried"]
    assert (tuned.best_params["rerank"] is not None) == tuned.rerank["adopted"]
    assert tuned.record()["rerank"]["outcome"] in tuned.summary
    # the ranking is the same; the new-user policy (chosen after) may differ with it
    after = ("rerank", "rerank_from", "personalise_from", "cold_start_list")
    assert {k: v for k, v in tuned.best_params.items() if k not in after} == \
        {k: v for k, v in off.best_params.items() if k not in after}


def test_the_rule_gives_the_same_record_in_two_processes(ratings):
    split = validation_split(ratings)
    factory = functools.partial(make_component, "baseline", seed=0)
    params = svd_recommender(ratings).ranking_params
    carve = functools.partial(per_user_split, fraction=0.2, n=None)
    one, two = (choose_reranker(split, carve, params, synthetic_titles(), factory, n_jobs=n)
                for n in (1, 2))
    assert one == two and one["tried"]


def test_a_popularity_penalty_lowers_the_weight_of_popularity_only(rec):
    weights = rec.ranking_params["rerank"]
    penalised = rerank.with_popularity_penalty(weights, 0.5)
    at = rerank.FEATURES.index("popularity")
    moved = np.subtract(weights["weights"], penalised["weights"])
    assert moved[at] == 0.5 and np.count_nonzero(moved) == 1
    assert penalised["popularity_penalty"] == 0.5 and weights["weights"][at] != \
        penalised["weights"][at]


def test_weights_need_the_context_they_read(ratings):
    with pytest.raises(ValueError, match="fit_rerank_context"):
        svd_recommender(ratings).with_reranker(_weights(ratings))


def test_retraining_keeps_the_weights_and_refits_what_they_read(ratings):
    import json

    from recsys_utils.lifecycle.retrain import default_trainer

    # the parameters as a manifest holds them (JSON), as a retrain reads them back
    params = json.loads(json.dumps({
        "rating_params": {"components": {"baseline": {"bsl_options": {"method": "als"}}},
                          "meta": False},
        "ranking_params": {"rerank": _weights(ratings)}, "seed": 0}))
    later = pd.DataFrame({"user": [1], "item": ["i05"], "score": [4.5],
                          "timestamp": [ratings["timestamp"].max() + pd.Timedelta(days=400)]})
    old = default_trainer(ratings, synthetic_titles(), params)
    new = default_trainer(pd.concat([ratings, later.astype(ratings.dtypes.to_dict())],
                                    ignore_index=True), synthetic_titles(), params)
    assert old.ranking_params["rerank"] == new.ranking_params["rerank"] == \
        params["ranking_params"]["rerank"]
    user = old._user_pos[1]
    assert new._rerank.user_time[user] > old._rerank.user_time[user]
    assert new._rerank.end_time > old._rerank.end_time


def test_the_weights_are_fitted_on_a_seeded_sample_of_users_beyond_the_cap(rec, ratings):
    relevant = relevant_items(last_n_split(ratings, fraction=0.25).test)
    full_x, full_y = rerank.labelled_candidates(rec, relevant)
    x, y = rerank.labelled_candidates(rec, relevant, max_users=10)
    again, _ = rerank.labelled_candidates(rec, relevant, max_users=10)
    per_user = STRUCTURE["candidates"]
    assert len(full_y) == per_user * len(rec.user_ids) and len(y) == per_user * 10
    np.testing.assert_array_equal(x, again)  # the same sample each time
    # the sample's rows are those users' rows of the full set
    rows = {tuple(r) for r in full_x.round(9)}
    assert all(tuple(r) in rows for r in x.round(9))
