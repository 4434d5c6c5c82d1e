"""Tuning: the search returns its best grid point on the shared folds; tuned parameters enter the blend."""

from __future__ import annotations

import pandas as pd
import pytest
from rating_fixtures import synthetic_model_table
from surprise import BaselineOnly

from recsys_utils.rating.comparison import (
    cross_validate_model,
)
from recsys_utils.rating.tuning import GRIDS, tune_family


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_model_table()


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
