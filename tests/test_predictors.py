"""Rating predictors: the vectorized components equal surprise, and the numpy ones solve their ridges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rating_fixtures import items_with_unknown, synthetic_model_table, synthetic_titles
from surprise import SVD, BaselineOnly, KNNBaseline, SVDpp
from surprise.similarities import pearson_baseline

from recsys_utils.rating.adapter import TrainIndex, trainset_from_frame
from recsys_utils.rating.predictors import (
    SIMILARITY_BLOCK_ENTRIES,
    CachedSVDpp,
    DenseSimKNNBaseline,
    item_content,
    make_component,
    pearson_baseline_sparse,
)


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_model_table()


@pytest.fixture(scope="module")
def titles() -> pd.DataFrame:
    return synthetic_titles()


SURPRISE_CASES = [
    ("baseline", {}, lambda: BaselineOnly(verbose=False)),
    ("svd", {"n_factors": 5, "n_epochs": 10, "random_state": 3},
     lambda: SVD(n_factors=5, n_epochs=10, random_state=3)),
    ("svd", {"n_factors": 4, "n_epochs": 5, "biased": False, "random_state": 3},
     lambda: SVD(n_factors=4, n_epochs=5, biased=False, random_state=3)),
    ("svdpp", {"n_factors": 4, "n_epochs": 3, "random_state": 3},
     lambda: SVDpp(n_factors=4, n_epochs=3, random_state=3)),
    ("knn_item", {"k": 5, "sim_options": {"shrinkage": 10}},
     lambda: KNNBaseline(k=5, sim_options={"name": "pearson_baseline", "user_based": False,
                                           "shrinkage": 10}, verbose=False)),
    ("knn_item", {"k": 5, "min_k": 3, "sim_options": {"min_support": 3}, "sparse_sim": False},
     lambda: KNNBaseline(k=5, min_k=3, sim_options={"name": "pearson_baseline",
                                                    "user_based": False, "min_support": 3},
                         verbose=False)),
    ("knn_user", {"k": 4, "min_k": 2, "sim_options": {"shrinkage": 10}},
     lambda: KNNBaseline(k=4, min_k=2, sim_options={"name": "pearson_baseline",
                                                    "user_based": True, "shrinkage": 10},
                         verbose=False)),
]


@pytest.mark.parametrize(("name", "params", "reference"), SURPRISE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(SURPRISE_CASES)])
def test_predict_items_equals_surprise_predict(ratings, name, params, reference):
    trainset = trainset_from_frame(ratings)
    comp = make_component(name, params).fit(trainset)
    algo = reference().fit(trainset)
    items = items_with_unknown(comp)
    for user in (1, 7, 23, 999):  # 999: unknown user -> surprise's fallback
        for clip in (True, False):
            fast = comp.predict_items(user, items, clip=clip)
            slow = np.array([algo.predict(user, i, clip=clip).est for i in items])
            np.testing.assert_allclose(fast, slow, atol=1e-6, rtol=0)
            # a short list (a top-N) takes another slicing path in the KNN components
            np.testing.assert_allclose(comp.predict_items(user, items[-4:], clip=clip),
                                       slow[-4:], atol=1e-6, rtol=0)
    assert comp.predict(7, items[3]) == pytest.approx(algo.predict(7, items[3]).est, abs=1e-6)


def test_unclipped_variant_exceeds_the_scale_where_clipped_does_not(ratings):
    comp = make_component("svd", {"n_factors": 5, "n_epochs": 40, "lr_all": 0.02,
                                  "reg_all": 0.0}, seed=1).fit(ratings)
    raw = np.concatenate([comp.predict_items_unclipped(u, comp.item_ids) for u in range(1, 41)])
    clipped = np.concatenate([comp.predict_items(u, comp.item_ids) for u in range(1, 41)])
    assert raw.max() > 5.0 or raw.min() < 0.5
    assert clipped.max() <= 5.0 and clipped.min() >= 0.5
    np.testing.assert_allclose(np.clip(raw, 0.5, 5.0), clipped)


@pytest.mark.parametrize("user_based", [False, True])
@pytest.mark.parametrize(("min_support", "shrinkage"), [(1, 100.0), (3, 0.0)])
@pytest.mark.parametrize("block_entries", [SIMILARITY_BLOCK_ENTRIES, 1])  # 1: a row a block
def test_sparse_pearson_baseline_equals_surprise(ratings, user_based, min_support, shrinkage,
                                                 block_entries):
    trainset = trainset_from_frame(ratings)
    base = BaselineOnly(verbose=False).fit(trainset)
    bu, bi = np.asarray(base.bu), np.asarray(base.bi)
    n_x, yr, bx, by = ((trainset.n_users, trainset.ir, bu, bi) if user_based
                       else (trainset.n_items, trainset.ur, bi, bu))
    dense = pearson_baseline(n_x, yr, min_support, trainset.global_mean, bx, by, shrinkage)
    sparse = pearson_baseline_sparse(TrainIndex.from_trainset(trainset), user_based, bu, bi,
                                     min_support, shrinkage, block_entries=block_entries)
    np.testing.assert_allclose(sparse.toarray(), np.where(dense > 0, dense, 0.0), atol=1e-12)
    assert sparse.nnz > sparse.shape[0]  # more than the diagonal: a real test


def _split_for_surprise(ratings: pd.DataFrame):
    cut = len(ratings) * 4 // 5
    test = ratings.iloc[cut:]
    return trainset_from_frame(ratings.iloc[:cut]), list(zip(
        test["user"].astype("int64").tolist(), test["item"].astype(str).tolist(),
        test["score"].astype(float).tolist(), strict=True))


def test_the_compared_svdpp_predicts_exactly_like_surprises_own(ratings):
    trainset, testset = _split_for_surprise(ratings)
    args = {"n_factors": 4, "n_epochs": 3, "random_state": 3}
    ours = CachedSVDpp(**args).fit(trainset).test(testset)
    theirs = SVDpp(**args).fit(trainset).test(testset)
    got, want = np.array([p.est for p in ours]), np.array([p.est for p in theirs])
    np.testing.assert_array_equal(got, want)  # bit for bit: the same sums, in the same order
    assert [p.details for p in ours] == [p.details for p in theirs]
    assert np.ptp(got) > 0.5


@pytest.mark.parametrize("user_based", [False, True])
def test_the_compared_knn_predicts_like_surprises_own(ratings, user_based):
    trainset, testset = _split_for_surprise(ratings)
    sim = {"name": "pearson_baseline", "user_based": user_based, "shrinkage": 10}
    ours = DenseSimKNNBaseline(k=5, sim_options=sim, verbose=False).fit(trainset).test(testset)
    theirs = KNNBaseline(k=5, sim_options=sim, verbose=False).fit(trainset).test(testset)
    got, want = np.array([p.est for p in ours]), np.array([p.est for p in theirs])
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert [p.details.get("actual_k") for p in ours] == [p.details.get("actual_k") for p in theirs]
    assert np.ptp(got) > 0.5  # real neighbour terms, not one constant


@pytest.mark.parametrize("name", ["item_reg", "user_reg"])
def test_regression_neighbourhood_weights_solve_their_ridge(ratings, name):
    comp = make_component(name, {"k": 6, "reg": 2.0}).fit(ratings)
    idx = comp.index
    users = np.repeat(np.arange(idx.n_users), idx.user_support())
    resid = idx.user_ratings - (idx.global_mean + comp.bu[users] + comp.bi[idx.user_items])
    dense = np.zeros((idx.n_users, idx.n_items))
    dense[users, idx.user_items] = resid
    if name == "user_reg":
        dense = dense.T  # samples = items, entities = users
    w = comp.weights
    entity = int(np.argmax(np.diff(w.indptr)))  # the entity with most neighbours
    nb = w.indices[w.indptr[entity]:w.indptr[entity + 1]]
    samples = (idx.user_items[idx.user_ptr[entity]:idx.user_ptr[entity + 1]] if name == "user_reg"
               else idx.item_users[idx.item_ptr[entity]:idx.item_ptr[entity + 1]])
    x, y = dense[np.ix_(samples, nb)], dense[samples, entity]
    expected = np.linalg.solve(x.T @ x + 2.0 * np.eye(nb.size), x.T @ y)
    np.testing.assert_allclose(w.data[w.indptr[entity]:w.indptr[entity + 1]], expected,
                               atol=1e-10)
    assert nb.size == 6


@pytest.mark.parametrize("name", ["item_reg", "user_reg", "content"])
def test_numpy_components_predict_items_equals_single_predictions(ratings, titles, name):
    feats = item_content(titles)
    comp = make_component(name, {"k": 6} if name != "content" else {}, item_features=feats)
    comp.fit(ratings)
    items = items_with_unknown(comp)
    for user in (2, 9, 999):
        fast = comp.predict_items(user, items)
        single = np.array([comp.predict(user, i) for i in items])
        np.testing.assert_allclose(fast, single, atol=1e-12)
    base = make_component("baseline").fit(ratings)
    # unknown user: the baseline fallback, like surprise
    np.testing.assert_allclose(comp.predict_items(999, items), base.predict_items(999, items))


def test_content_weights_solve_each_users_ridge(ratings, titles):
    comp = make_component("content", {"reg": 3.0}, item_features=item_content(titles))
    comp.fit(ratings)
    idx = comp.index
    u = 5
    rated, r = idx.user_rated(u)
    y = r - (idx.global_mean + comp.bu[u] + comp.bi[rated])
    x = comp.x_items[rated].toarray()
    expected = np.linalg.solve(x.T @ x + 3.0 * np.eye(x.shape[1]), x.T @ y)
    np.testing.assert_allclose(comp.w_users[u], expected, atol=1e-10)
    assert any(n.startswith("genre=") for n in comp.feature_names)
    assert any(n.startswith("decade=") for n in comp.feature_names)


def test_item_content_parses_genres_and_decades(titles):
    feats = item_content(titles)
    assert feats.loc["ml3", "genres"] == ("Action", "Thriller")
    assert feats.loc["ml1", "genres"] == ()  # null genres
    assert feats.loc["ml2", "decade"] == 1950
    with pytest.raises(ValueError, match="release_year"):
        item_content(titles.drop(columns="release_year"))


def test_content_without_metadata_is_its_baseline(ratings, titles):
    feats = item_content(titles[titles["item_id"] != "ml2"])  # ml2 has no catalog row
    comp = make_component("content", {"reg": 1.0}, item_features=feats).fit(ratings)
    idx = comp.index
    i = int(idx.inner_items(["ml2"])[0])
    for user in (1, 5, 9):
        u = idx.inner_user(user)
        assert comp.predict(user, "ml2", clip=False) == pytest.approx(
            idx.global_mean + comp.bu[u] + comp.bi[i])
    assert np.abs(comp.w_users).sum() > 0  # other items do carry content
