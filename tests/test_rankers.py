"""The rankers on interaction matrices small enough to check by hand (or by an independent
numpy formula), and through the Recommender on the two-taste-group fixture.

That the Recommender never ranks a rated title, whatever the ranker, is checked in
test_recommender.py (``test_every_ranker_serves_through_the_same_interface``).
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from ranking_fixtures import RIVALS, item_id, svd_recommender, synthetic_ratings

from recsys_utils.ranking.rankers import RANKER_PARAMS, RANKERS, fit_ranker

#: 4 users x 3 titles. Columns: t0 = (1,1,1,0), t1 = (1,1,0,0), t2 = (0,0,1,1), so
#: t0.t1 = 2, t0.t2 = 1, t1.t2 = 0 and |t0| = sqrt 3, |t1| = |t2| = sqrt 2.
X_HAND = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1]], dtype=np.float64))
COS01, COS02 = 2 / np.sqrt(6), 1 / np.sqrt(6)


def _n_ratings(x: sp.csr_matrix) -> np.ndarray:
    return np.asarray((x != 0).sum(axis=0)).ravel()


def _fit(name: str, x: sp.csr_matrix = X_HAND, seed: int = 0, **params):
    return fit_ranker({"ranker": name, **params}, x, _n_ratings(x), seed=seed)


def _random_x(seed: int, n_users: int = 30, n_items: int = 8) -> sp.csr_matrix:
    """Score-weighted interactions: centred scores, positive and negative."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n_users, n_items)) < 0.45,
                     rng.choice([-1.5, -0.5, 0.5, 1.0, 1.5], (n_users, n_items)), 0.0)
    return sp.csr_matrix(dense)


# ------------------------------------------------------------------ item-kNN


def test_itemknn_is_the_cosine_similarity_computed_by_hand():
    knn = _fit("itemknn", neighbours=2, shrink=0.0)
    np.testing.assert_allclose(knn.W.toarray(), [[0, COS01, COS02], [COS01, 0, 0],
                                                 [COS02, 0, 0]], rtol=1e-6)
    # a user who rated t0 only: scores x_u W = row t0 of W
    np.testing.assert_allclose(knn.scores(sp.csr_matrix([[1.0, 0, 0]])), [[0, COS01, COS02]],
                               rtol=1e-6)


def test_itemknn_shrinkage_and_neighbour_count():
    shrunk = _fit("itemknn", neighbours=2, shrink=1.0).W.toarray()
    assert shrunk[0, 1] == pytest.approx(2 / (np.sqrt(6) + 1.0), rel=1e-6)
    one = _fit("itemknn", neighbours=1, shrink=0.0).W.toarray()
    # t0 keeps only its best neighbour (t1), t1 and t2 their only one (t0)
    np.testing.assert_allclose(one, [[0, COS01, 0], [COS01, 0, 0], [COS02, 0, 0]], rtol=1e-6)


def test_neighbour_rankers_keep_only_positive_weights():
    x = _random_x(3)
    for name, params in (("itemknn", {"neighbours": 8, "shrink": 0.0}),
                         ("rp3beta", {"neighbours": 8, "alpha": 1.0, "beta": 0.5})):
        w = _fit(name, x, **params).W
        assert w.nnz > 0 and w.data.min() > 0, name


# ------------------------------------------------------------------ RP3beta


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (1.0, 0.5), (0.7, 0.3)])
def test_rp3beta_is_the_three_step_walk_with_a_popularity_discount(alpha: float, beta: float):
    x = _random_x(5)
    b = np.abs(x.toarray())
    p_ui = b / b.sum(axis=1, keepdims=True).clip(min=1e-300)
    p_iu = b.T / b.T.sum(axis=1, keepdims=True).clip(min=1e-300)
    w = (p_iu**alpha) @ (p_ui**alpha) * (b.sum(axis=0) ** -beta)
    np.fill_diagonal(w, 0.0)
    got = _fit("rp3beta", x, neighbours=x.shape[1], alpha=alpha, beta=beta).W.toarray()
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ EASE


def test_ease_is_the_ridge_regression_of_each_title_on_the_others():
    """EASE's closed form ``B = I - P diag(1/diag P)`` equals, column by column, the ridge
    regression of a title's column on the other titles (solved here with numpy)."""
    x, l2 = _random_x(1), 4.0
    ease = _fit("ease", x, l2=l2, min_item_ratings=0, max_ease_items=100)
    dense = x.toarray()
    n = dense.shape[1]
    expected = np.zeros((n, n))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        a = dense[:, others]
        expected[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(n - 1), a.T @ dense[:, j])
    assert np.all(np.diag(ease.B) == 0)
    # B is rounded to float16 at fit: 3 significant digits
    np.testing.assert_allclose(ease.B, expected, rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(ease.scores(x[:3]), dense[:3] @ ease.B, rtol=1e-6)


def test_ease_keeps_the_eligible_titles_and_gives_the_others_the_users_lowest_score():
    x = _random_x(2, n_users=40, n_items=6)
    counts = _n_ratings(x)
    threshold = int(np.sort(counts)[2])  # at least the 3 most rated qualify
    ease = _fit("ease", x, l2=2.0, min_item_ratings=threshold, max_ease_items=100)
    assert ease.cols.tolist() == np.flatnonzero(counts >= threshold).tolist()
    capped = _fit("ease", x, l2=2.0, min_item_ratings=0, max_ease_items=2)
    assert sorted(capped.cols.tolist()) == sorted(np.argsort(-counts, kind="stable")[:2].tolist())
    scores = capped.scores(x[:5])
    outside = np.setdiff1d(np.arange(x.shape[1]), capped.cols)
    inside = scores[:, capped.cols]
    np.testing.assert_allclose(scores[:, outside], np.repeat(inside.min(axis=1, keepdims=True),
                                                             outside.size, axis=1))


def test_ease_pickles_b_as_float16_and_ranks_identically():
    x = _random_x(4)
    ease = _fit("ease", x, l2=3.0, min_item_ratings=0, max_ease_items=100)
    blob = pickle.dumps(ease)
    assert ease.__getstate__()["B"].dtype == np.float16
    again = pickle.loads(blob)
    assert again.B.dtype == np.float32
    np.testing.assert_array_equal(again.scores(x), ease.scores(x))


# ------------------------------------------------------------------ ALS


ALS = {"factors": 3, "als_reg": 0.1, "als_alpha": 10.0, "als_iterations": 4}


def test_als_folds_a_row_in_by_the_exact_least_squares_solve():
    x = _random_x(6)
    als = _fit("als", x, seed=1, **ALS)
    y = als.Y
    row = x[0].toarray().ravel()
    c = 1.0 + ALS["als_alpha"] * np.clip(row, 0.0, None)
    p = (row > 0).astype(float)
    user = np.linalg.solve(y.T @ (c[:, None] * y) + ALS["als_reg"] * np.eye(y.shape[1]),
                           y.T @ (c * p))
    np.testing.assert_allclose(als.scores(x[:1])[0], y @ user, rtol=1e-6, atol=1e-9)


def test_als_ignores_disliked_titles_and_scores_an_empty_row_zero():
    x = _random_x(6)
    als = _fit("als", x, seed=1, **ALS)
    row = x[0].toarray()
    liked_only = sp.csr_matrix(np.clip(row, 0.0, None))
    np.testing.assert_allclose(als.scores(sp.csr_matrix(row)), als.scores(liked_only))
    assert np.all(als.scores(sp.csr_matrix((1, x.shape[1]))) == 0)


def test_als_is_deterministic_given_the_seed():
    x = _random_x(7)
    a = _fit("als", x, seed=3, **ALS).scores(x)
    b = _fit("als", x, seed=3, **ALS).scores(x)
    c = _fit("als", x, seed=4, **ALS).scores(x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# ------------------------------------------------------------------ popularity and dispatch


def test_popularity_scores_log1p_of_the_rating_counts_for_every_user():
    pop = _fit("popularity")
    scores = pop.scores(X_HAND)
    np.testing.assert_allclose(scores, np.tile(np.log1p([3, 2, 2]), (4, 1)))
    assert np.argsort(-scores[0], kind="stable").tolist() == [0, 1, 2]  # most rated first


@pytest.mark.parametrize("name", RANKERS)
def test_fit_ranker_builds_the_named_ranker_and_is_deterministic(name: str):
    x = _random_x(8)
    params = {"l2": 2.0, "min_item_ratings": 0, "max_ease_items": 100, "neighbours": 4,
              "shrink": 1.0, "alpha": 1.0, "beta": 0.5, **ALS}
    assert set(RANKER_PARAMS[name]) <= set(params)
    first = _fit(name, x, **params)
    assert type(first).__name__.lower().startswith(name[:3])
    scores = first.scores(x)
    assert scores.shape == x.shape and np.isfinite(scores).all()
    np.testing.assert_array_equal(_fit(name, x, **params).scores(x), scores)


# ------------------------------------------------------------------ through the Recommender


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_ratings(0)


@pytest.mark.parametrize("ranker", ["itemknn", "rp3beta", "als"])
def test_rivals_find_the_users_group(ratings: pd.DataFrame, ranker: str):
    """Even users like titles 0-19, odd users 20-39 (and each rated 3 of the other group
    badly): a ranker that learns from co-ratings fills most of a user's list with the
    group's titles (RP3beta walks through disliked titles too, hence "most")."""
    rec = svd_recommender(ratings, ranker=ranker, pop_weight=0.0, **RIVALS[ranker])
    for user in (2, 3):
        group = range(0, 20) if user % 2 == 0 else range(20, 40)
        top = rec.recommend(user, n=5).items["item_id"]
        assert len(set(top) & {item_id(k) for k in group}) >= 4


def test_neighbour_rankers_keep_at_most_k_neighbours(ratings: pd.DataFrame):
    for ranker in ("itemknn", "rp3beta"):
        rec = svd_recommender(ratings, ranker=ranker, neighbours=3)
        w = rec._ranker.W
        assert w.shape == (len(rec.item_ids),) * 2
        assert np.diff(w.indptr).max() <= 3
        assert np.all(w.diagonal() == 0)  # a title is not its own neighbour
