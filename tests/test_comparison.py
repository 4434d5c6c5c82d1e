"""Comparing rating models: surprise's folds reproduced, the same folds for every model, parallel = serial."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from rating_fixtures import synthetic_model_table, synthetic_titles
from surprise import SVD
from surprise.model_selection import KFold
from surprise.model_selection import cross_validate as surprise_cross_validate

from recsys_utils.rating import blend as blend_mod
from recsys_utils.rating.adapter import to_dataset, trainset_from_frame
from recsys_utils.rating.blend import BlendedRatingModel, build_rating_model
from recsys_utils.rating.comparison import (
    compare_algorithms,
    compare_and_cross_validate,
    cross_validate_model,
    kfold_indices,
    kfold_splits,
    kfold_train_test,
)
from recsys_utils.rating.predictors import make_component


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_model_table()


@pytest.fixture(scope="module")
def titles() -> pd.DataFrame:
    return synthetic_titles()


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


def test_comparison_and_cross_validation_in_one_pool_equal_the_separate_calls(ratings, titles):
    """03 runs both in one pool; each result is what its own call gives, fold by fold (a
    slow algorithm on fewer folds, so the tasks are reordered around the model's)."""
    def factory():
        return build_rating_model({"components": {"baseline": {}, "svd": {"n_factors": 3}}},
                                  seed=2, titles=titles)

    names = ["NormalPredictor", "SlopeOne", "SVD"]
    table = compare_algorithms(ratings, names, n_folds=3, seed=8, slow_folds=1)
    cv = cross_validate_model(factory, ratings, n_folds=3, seed=8, per_component=True)
    for n_jobs in (1, 2):
        joint_table, joint_cv = compare_and_cross_validate(
            ratings, factory, names, n_folds=3, seed=8, slow_folds=1, per_component=True,
            n_jobs=n_jobs)
        columns = ["algorithm", "rmse", "rmse_std", "mae", "n_folds"]
        pd.testing.assert_frame_equal(joint_table[columns], table[columns])
        assert dict(zip(joint_table["algorithm"], joint_table["n_folds"], strict=True)) == {
            "NormalPredictor": 3, "SlopeOne": 1, "SVD": 3}
        assert joint_cv["fold_rmse"] == cv["fold_rmse"]
        assert joint_cv["components"] == cv["components"]
    with pytest.raises(ValueError, match="unknown algorithms"):
        compare_and_cross_validate(ratings, factory, ["Magic"])


def test_a_workers_warnings_reach_the_notebook_once(ratings):
    """With folds in worker processes, a model's warning is raised again in the caller (the
    notebook shows it) and once, not once per fold on the terminal that started the run."""
    def factory():
        class WarnsOnFit(SVD):
            def fit(self, trainset):
                warnings.warn("blend: too few held-out ratings", UserWarning, stacklevel=2)
                return super().fit(trainset)
        return WarnsOnFit(n_factors=2, n_epochs=1, random_state=0)

    with pytest.warns(UserWarning, match="too few held-out ratings") as record:
        cross_validate_model(factory, ratings, n_folds=3, seed=8, n_jobs=2)
    assert sum("too few held-out" in str(w.message) for w in record) == 1


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


def test_the_largest_seed_the_parameters_accept_runs_every_fold(ratings):
    """Fold k draws with ``seed + k``: at numpy's largest seed that passed its range and
    03_modeling failed on its second fold."""
    largest = 2**32 - 1
    table = compare_algorithms(ratings, ["NormalPredictor", "BaselineOnly"], n_folds=3,
                               seed=largest)
    assert table["rmse"].notna().all() and len(table) == 2


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
