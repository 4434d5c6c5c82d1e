"""The titles the ranker cannot score are ordered by content (``ranking.content``)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from ranking_fixtures import synthetic_ratings, synthetic_titles

from recsys_utils.ranking.content import ORDER_SCALE, genre_words, title_features
from recsys_utils.ranking.evaluation import rating_params_for
from recsys_utils.ranking.recommender import Recommender

# Unrated titles beside the fixture's: dramas whose ids sort first, comedies last. Even users
# love the fixture's comedies (i00-i19), odd users its dramas (i20-i39).
DRAMAS = [f"a_new_drama_{k}" for k in range(4)]
COMEDIES = [f"z_new_comedy_{k}" for k in range(4)]


@pytest.fixture(scope="module")
def titles() -> pd.DataFrame:
    new = [{"id": f"x{t}", "item_id": t, "platform": "alpha", "type": "TV Show", "title": t,
            "genres": "TV Dramas, TV Thrillers" if "drama" in t else "TV Comedies",
            "release_year": 2001} for t in DRAMAS + COMEDIES]
    return pd.concat([synthetic_titles(), pd.DataFrame(new)], ignore_index=True)


@pytest.fixture(scope="module")
def rec(titles) -> Recommender:
    return Recommender(rating_params_for("baseline"), {"l2": 10.0}).fit(synthetic_ratings(),
                                                                        titles)


def _new_titles_in_order(items: pd.DataFrame) -> list[str]:
    return [t for t in items["item_id"] if t in DRAMAS + COMEDIES]


def test_genre_words_ignore_kind_and_number():
    assert genre_words("TV Dramas, Comedies, Stand-Up Comedy") == {"drama", "comedy", "stand",
                                                                    "up"}
    assert genre_words("Drama") == genre_words("TV Dramas") == {"drama"}
    assert genre_words(None) == set() and genre_words(float("nan")) == set()


def test_title_features_are_unit_rows_sharing_content_tokens(titles):
    f = title_features(titles.drop_duplicates("item_id").reset_index(drop=True))
    norms = np.sqrt(np.asarray(f.multiply(f).sum(axis=1)).ravel())
    assert np.allclose(norms, 1.0)
    pos = {t: k for k, t in enumerate(titles.drop_duplicates("item_id")["item_id"])}
    sim = (f @ f.T).toarray()
    # a TV drama is nearer the fixture's film dramas than its film comedies
    assert sim[pos["a_new_drama_0"], pos["i30"]] > sim[pos["a_new_drama_0"], pos["i05"]]
    bare = title_features(pd.DataFrame({"item_id": ["a"], "genres": [None]}))
    assert bare.nnz == 0  # no content: a zero row, not a division by zero


def test_unrated_titles_follow_each_users_taste_not_their_ids(rec):
    assert set(rec.item_ids[rec._content.unscored]) == set(DRAMAS + COMEDIES)
    for user, first in ((2, COMEDIES), (3, DRAMAS)):  # even: comedy lover; odd: drama lover
        new = _new_titles_in_order(rec.recommend(user, n=len(rec.item_ids)).items)
        assert set(new[:4]) == set(first), (user, new)


def test_the_order_only_reorders_the_unscored_titles(rec):
    plain = pickle.loads(pickle.dumps(rec))
    plain._content = None
    for user in (2, 3):
        with_order, without = rec.ranking_scores(user), plain.ranking_scores(user)
        scored = np.setdiff1d(np.arange(len(rec.item_ids)), rec._content.unscored)
        assert np.array_equal(with_order[scored], without[scored])
        assert np.abs(with_order - without).max() <= 10 * ORDER_SCALE
        # without it, the unscored titles tie and come in title-id order (the old lists)
        new = _new_titles_in_order(plain.recommend(user, n=len(rec.item_ids)).items)
        assert new == sorted(DRAMAS + COMEDIES)


def test_a_new_users_request_and_batch_lists_follow_it_too(rec):
    comedy_fan = {"i01": 5.0, "i02": 4.5, "i03": 5.0, "i04": 4.0}
    items = rec.recommend_for_ratings(comedy_fan, n=len(rec.item_ids)).items
    assert set(_new_titles_in_order(items)[:4]) == set(COMEDIES)
    lists = rec.recommend_all(n=len(rec.item_ids), users=[2, 3])
    assert set(_new_titles_in_order(pd.DataFrame({"item_id": lists[3]}))[:4]) == set(DRAMAS)


def test_a_model_saved_before_the_order_answers_as_before(rec):
    state = dict(rec.__dict__)
    state.pop("_content")
    old = Recommender.__new__(Recommender)
    old.__setstate__(state)
    new = _new_titles_in_order(old.recommend(2, n=len(rec.item_ids)).items)
    assert new == sorted(DRAMAS + COMEDIES)


def test_a_title_nobody_rated_has_neighbours_in_content(rec):
    frame = rec.similar("a_new_drama_0", n=5)
    assert (frame["basis"] == "content").all() and "a_new_drama_0" not in set(frame["item_id"])
    # the other new TV dramas share everything it has; then come the fixture's dramas
    assert set(frame["item_id"][:3]) == set(DRAMAS[1:])
    assert frame["similarity"].is_monotonic_decreasing and frame["similarity"].iloc[0] > 0.99
    assert (rec.similar("i03", n=3)["basis"] == "ratings").all()  # rated: the item factors


def test_a_popularity_penalty_does_not_order_the_unscored_titles(titles):
    """With ``pop_weight`` < 0 the ranking favours the less rated; the titles the ranker
    does not score (here some with a few ratings) still follow the content order's key."""
    ratings = synthetic_ratings()
    few = pd.DataFrame({"user": [1, 2, 3], "item": ["z_new_comedy_3"] * 3, "score": [4.0] * 3,
                        "timestamp": ratings["timestamp"].max()})
    rec = Recommender(rating_params_for("baseline"), {"l2": 10.0, "pop_weight": -0.4}).fit(
        pd.concat([ratings, few], ignore_index=True), titles)
    unscored = rec._content.unscored
    assert rec.n_ratings[unscored].max() == 3  # a rated title among them
    row = rec._user_pos[4]
    key = rec._content(rec._X[[row]])[0]
    served = rec.ranking_scores(4)[unscored]
    assert list(np.argsort(-served, kind="stable")) == list(np.argsort(-key, kind="stable"))
