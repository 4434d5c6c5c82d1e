"""The modeling step: one call, its tables agree with each other and with a direct re-run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from ranking_fixtures import synthetic_ratings, synthetic_titles

from recsys_utils.paths import project_paths
from recsys_utils.rating.blend import build_rating_model
from recsys_utils.rating.comparison import cross_validate_model
from recsys_utils.rating.modeling import key_numbers, run_modeling
from recsys_utils.rating.tuning import component_params

#: A blend small enough to cross-validate in a fraction of a second.
SMALL_BLEND = {"baseline": {"bsl_options": {"method": "als", "reg_i": 5, "reg_u": 5}},
               "svd": {"n_factors": 3, "n_epochs": 10}, "content": {}}
ALGORITHMS = ["BaselineOnly", "SVD", "KNNBaseline_item"]


@pytest.fixture(scope="module")
def model_df() -> pd.DataFrame:
    return synthetic_ratings()


@pytest.fixture(scope="module")
def titles() -> pd.DataFrame:
    return synthetic_titles()


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return project_paths(tmp_path_factory.mktemp("modeling"))


@pytest.fixture(scope="module")
def result(model_df, titles, paths):
    return run_modeling(model_df, titles, n_folds=3, algorithms=ALGORITHMS, slow_folds=1,
                        tune=True, tune_families=["BaselineOnly"], tune_folds=2,
                        blend_components=SMALL_BLEND, target_rmse=1.0, seed=7, paths=paths)


def test_tables_cover_the_requested_models(result):
    assert set(result.comparison["algorithm"]) == set(ALGORITHMS)
    assert result.comparison.set_index("algorithm").loc["KNNBaseline_item", "n_folds"] == 1
    assert list(result.tuning["family"]) == ["BaselineOnly"]
    assert set(result.blend_table["model"]) == {"blend", *SMALL_BLEND}


def test_tuned_parameters_replace_their_component_in_the_blend(result):
    name, params = component_params("BaselineOnly", result.tuned_params["BaselineOnly"])
    assert result.rating_params["components"][name] == params
    assert result.rating_params["components"]["svd"] == SMALL_BLEND["svd"]  # untuned: kept
    assert SMALL_BLEND["baseline"]["bsl_options"]["reg_i"] == 5  # the input is not modified


def test_blend_cv_is_the_blend_on_the_shared_folds(result, model_df, titles):
    again = cross_validate_model(lambda: build_rating_model(result.rating_params, seed=7,
                                                            titles=titles),
                                 model_df, n_folds=3, seed=7)
    assert result.blend_cv["fold_rmse"] == again["fold_rmse"]
    blend_row = result.blend_table.set_index("model").loc["blend"]
    assert blend_row["rmse"] == result.key_numbers["blend_rmse"] == again["rmse"]


def test_key_numbers_agree_with_the_tables(result, model_df):
    numbers = result.key_numbers
    algo = result.comparison.set_index("algorithm")["rmse"]
    components = result.blend_table.query("model != 'blend'")["rmse"]
    best_single = min(algo.min(), result.tuning["best_rmse"].min(), components.min())
    assert numbers["n_ratings"] == len(model_df) == result.n_ratings
    assert numbers["baseline_rmse"] == algo["BaselineOnly"]
    assert numbers["svd_rmse"] == algo["SVD"]
    assert numbers["best_default_rmse"] == algo.min()
    assert numbers["best_default_algorithm"] == algo.idxmin()
    assert numbers["best_single_rmse"] == best_single
    assert numbers["blend_gain"] == pytest.approx(best_single - numbers["blend_rmse"])
    assert numbers["blend_vs_svd"] == pytest.approx(numbers["blend_rmse"] / algo["SVD"])
    assert numbers["target_met"] == (numbers["blend_rmse"] <= 1.0)
    assert list(result.key_numbers_table()["value"]) == list(numbers.values())
    assert f"{len(model_df):,} ratings" in result.data_summary


def test_figures_are_saved_and_closed(result, paths):
    import matplotlib.pyplot as plt

    assert set(result.figures) == {"algorithm_comparison", "blend_vs_components"}
    for name, fig in result.figures.items():
        assert isinstance(fig, Figure)
        assert result.figure_paths[name] == paths.figures / f"model_{name}.png"
        assert result.figure_paths[name].stat().st_size > 1000
        assert fig.number not in plt.get_fignums()  # the notebook shows it where it wants


def test_registry_record_carries_the_cross_validated_metrics(result):
    metrics = result.registry_metrics()
    assert metrics["rmse"] == result.blend_cv["rmse"]
    assert metrics["fold_rmse"] == result.blend_cv["fold_rmse"]
    assert metrics["surprise_svd_rmse"] == result.key_numbers["svd_rmse"]
    assert "3-fold" in metrics["holdout"]["protocol"] and "random_state=7" in metrics[
        "holdout"]["protocol"]
    params = result.registry_params({"l2": 60.0})
    assert params == {"rating_params": result.rating_params, "ranking_params": {"l2": 60.0},
                      "seed": 7}
    assert result.registry_params()["ranking_params"] == {}


def test_without_tuning_the_blend_keeps_its_components(model_df, titles, paths):
    result = run_modeling(model_df, titles, n_folds=3, algorithms=["BaselineOnly"],
                          tune=False, blend_components=SMALL_BLEND, seed=7, paths=paths)
    assert result.tuning.empty and result.tuned_params == {}
    assert result.rating_params["components"] == SMALL_BLEND
    assert not any("(tuned)" in str(v) for v in result.key_numbers.values())
    assert math.isnan(result.key_numbers["svd_rmse"])  # SVD not compared: no number


def test_key_numbers_name_the_best_single_model_wherever_it_comes_from():
    comparison = pd.DataFrame({"algorithm": ["BaselineOnly", "SVD"], "rmse": [0.90, 0.92]})
    tuned = pd.DataFrame({"family": ["SVD"], "best_rmse": [0.88]})
    blend_table = pd.DataFrame({"model": ["blend", "svd", "baseline"],
                                "rmse": [0.85, 0.89, 0.91]})
    cv = {"rmse": 0.85, "mae": 0.66, "rmse_std": 0.01}
    numbers = key_numbers(comparison, tuned, cv, blend_table, n_ratings=10, n_folds=3,
                          target_rmse=0.8)
    assert numbers["best_single_name"] == "SVD (tuned)"
    assert numbers["best_default_algorithm"] == "BaselineOnly"
    assert numbers["blend_gain"] == pytest.approx(0.03)
    assert numbers["target_met"] is False
    np.testing.assert_allclose(numbers["blend_vs_svd"], 0.85 / 0.92)


# --------------------------------------------------------------------------- CV sample


def test_cv_sample_takes_whole_users_up_to_the_cap_and_depends_on_the_seed(model_df):
    from recsys_utils.rating.modeling import cv_sample

    assert cv_sample(model_df, None) is model_df
    assert cv_sample(model_df, len(model_df)) is model_df
    cap = len(model_df) // 3
    sample = cv_sample(model_df, cap, seed=1)
    assert 0 < len(sample) <= cap
    per_user = model_df.groupby("user").size()
    # every sampled user keeps all of their ratings
    assert (sample.groupby("user").size() == per_user[sample["user"].unique()]).all()
    # the sample is as full as whole users allow: the next user would break the cap
    assert len(sample) > cap - per_user.max()
    assert cv_sample(model_df, cap, seed=1).equals(sample)
    assert set(cv_sample(model_df, cap, seed=2)["user"]) != set(sample["user"])
    with pytest.raises(ValueError, match="positive"):
        cv_sample(model_df, 0)


def test_run_modeling_on_a_sample_says_so_and_records_the_full_size(model_df, titles, paths):
    cap = len(model_df) // 2
    sampled = run_modeling(model_df, titles, n_folds=2, algorithms=["BaselineOnly"],
                           tune=False, blend_components=SMALL_BLEND, target_rmse=1.0,
                           seed=7, cv_max_ratings=cap, paths=paths)
    assert sampled.n_ratings == len(model_df)  # the table the champion trains on
    assert 0 < sampled.n_cv_ratings == sampled.key_numbers["cv_ratings"] <= cap
    assert f"sample of {sampled.n_cv_ratings:,} ratings" in sampled.data_summary
    holdout = sampled.registry_metrics()["holdout"]
    assert holdout["n_ratings"] == sampled.n_cv_ratings and "sample" in holdout["protocol"]
