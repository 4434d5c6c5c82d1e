"""Precomputed top-N lists: filtered at request time, they equal Recommender.recommend exactly."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest
from ranking_fixtures import svd_recommender

from recsys_utils.errors import UnknownFilterError
from recsys_utils.ranking.precomputed import (
    attach_precomputed,
    precompute_lists,
    recommend_precomputed,
)

FILTERS = [(None, None), (["alpha"], None), (["beta"], "Movie"), (None, "TV Show"),
           (["alpha", "beta"], "TV Show")]


@pytest.fixture(scope="module")
def rec():
    return svd_recommender()


@pytest.mark.parametrize("depth", [40, 6])  # 40 covers every title; 6 forces the fallback
@pytest.mark.parametrize(("platforms", "kind"), FILTERS)
def test_served_lists_equal_recommend_exactly(rec, depth, platforms, kind):
    lists = precompute_lists(rec, depth=depth)
    for user in rec.user_ids.tolist():
        for n in (1, 5, 10):
            want = rec.recommend(user, n, platforms, kind)
            got = recommend_precomputed(rec, lists, user, n, platforms, kind)
            assert got.cold_start is want.cold_start is False
            pd.testing.assert_frame_equal(got.items, want.items)


def test_unknown_users_and_bad_filters_behave_like_recommend(rec):
    lists = precompute_lists(rec, depth=10)
    got = recommend_precomputed(rec, lists, 10_000, 5)
    assert got.cold_start
    pd.testing.assert_frame_equal(got.items, rec.recommend(10_000, 5).items)
    with pytest.raises(UnknownFilterError):
        recommend_precomputed(rec, lists, int(rec.user_ids[0]), 5, ["nope"])


def test_lists_of_other_ranking_parameters_are_not_used(rec):
    lists = precompute_lists(rec, depth=40)
    other = rec.with_ranking(pop_weight=0.5)
    assert lists.fits(rec) and not lists.fits(other)
    user = int(rec.user_ids[1])
    # the other parameters rank differently, so using the stale lists would show
    assert not rec.recommend(user, 10).items.equals(other.recommend(user, 10).items)
    pd.testing.assert_frame_equal(recommend_precomputed(other, lists, user, 10).items,
                                  other.recommend(user, 10).items)


def test_lists_travel_with_the_pickled_model(rec):
    lists = attach_precomputed(rec, depth=12)
    assert lists.positions.shape == (len(rec.user_ids), 12)
    back = pickle.loads(pickle.dumps(rec))
    user = int(rec.user_ids[3])
    pd.testing.assert_frame_equal(
        recommend_precomputed(back, back.precomputed_, user, 5, ["beta"]).items,
        rec.recommend(user, 5, ["beta"]).items)
