"""Registering a modeling run's champion: trained on all ratings, recorded, reused on a rerun."""

from __future__ import annotations

import pytest
from ranking_fixtures import synthetic_ratings, synthetic_titles

from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle import registry
from recsys_utils.lifecycle.champion import register_champion
from recsys_utils.paths import project_paths
from recsys_utils.ranking.evaluation import tune_ranking
from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS
from recsys_utils.rating.modeling import run_modeling

SMALL_BLEND = {"baseline": {}, "svd": {"n_factors": 3, "n_epochs": 10}, "content": {}}


@pytest.fixture(scope="module")
def data():
    return synthetic_ratings(), synthetic_titles()


@pytest.fixture()
def paths(tmp_path):
    return project_paths(tmp_path)


@pytest.fixture(scope="module")
def result(data, tmp_path_factory):
    model_df, titles = data
    return run_modeling(model_df, titles, n_folds=3, algorithms=["BaselineOnly", "SVD"],
                        tune=False, blend_components=SMALL_BLEND, seed=3,
                        paths=project_paths(tmp_path_factory.mktemp("figures")))


def test_champion_is_registered_with_the_runs_record(result, data, paths):
    model_df, titles = data
    champion = register_champion(result, model_df, titles, ranking_params={"l2": 60.0},
                                 paths=paths)
    assert not champion.reused
    assert registry.champion_version(paths) == champion.version
    manifest = registry.read_manifest(champion.version, paths)
    assert manifest["metrics"]["rmse"] == pytest.approx(result.blend_cv["rmse"])
    # the full configuration is recorded (given values over the documented fallback)
    assert manifest["params"]["ranking_params"] == {**DEFAULT_RANKING_PARAMS, "l2": 60.0}
    assert manifest["params"]["tuning"]["ranking"]["tuned"] is False
    sources = manifest["params"]["tuning"]["ranking"]["sources"]
    assert sources["l2"] == "set by hand (ranking_params), not validated"
    assert sources["pop_weight"] == "default (DEFAULT_RANKING_PARAMS), not tuned"
    assert manifest["params"]["tuning"]["rating"] == {"tuned": False}
    assert manifest["data_fingerprint"] == data_fingerprint(model_df)
    rating_model = champion.recommender.rating_model
    assert set(rating_model.components) == set(SMALL_BLEND)
    assert rating_model.index.n_users == model_df["user"].nunique()  # all ratings
    assert champion.summary.startswith(f"registered {champion.version}: rating model ")
    assert champion.figure_paths["blend_weights"].is_file()


def test_a_rerun_reuses_the_version(result, data, paths):
    model_df, titles = data
    first = register_champion(result, model_df, titles, paths=paths)
    again = register_champion(result, model_df, titles, paths=paths)
    assert again.reused and again.version == first.version
    assert registry.list_versions(paths) == [first.version]
    assert again.summary.startswith("reused ")


def test_precomputed_lists_are_registered_with_the_champion(result, data, paths):
    """``precompute_depth`` (the large preset): the loaded champion carries every user's
    stored list, they answer as ``recommend`` does, and the depth is a parameter of the
    version (a champion without lists is not reused for one with them)."""
    from recsys_utils.ranking.precomputed import recommend_precomputed

    model_df, titles = data
    plain = register_champion(result, model_df, titles, paths=paths)
    stored = register_champion(result, model_df, titles, precompute_depth=7, paths=paths)
    assert not stored.reused and stored.version != plain.version
    assert "precomputed_depth" not in registry.read_manifest(plain.version, paths)["params"]
    assert registry.read_manifest(stored.version, paths)["params"]["precomputed_depth"] == 7
    rec, _ = registry.load_champion(paths)
    lists = rec.precomputed_
    assert lists.depth == 7 and lists.fits(rec)
    for user in rec.user_ids[:20].tolist():
        got = recommend_precomputed(rec, lists, user, n=5).items
        assert got.equals(rec.recommend(user, n=5).items)
    # a retrain trains with the champion's parameters: the lists come along
    from recsys_utils.lifecycle.retrain import default_trainer

    manifest = registry.read_manifest(stored.version, paths)
    assert default_trainer(model_df, titles, manifest["params"]).precomputed_.depth == 7
    assert not hasattr(default_trainer(model_df, titles, registry.read_manifest(
        plain.version, paths)["params"]), "precomputed_")


def test_the_registered_ranking_is_what_the_validation_chose(result, data, paths):
    model_df, titles = data
    grid = {"ease": {"weighting": ["score", "binary"], "l2": [5.0, 50.0],
                     "pop_weight": [0.0, -0.5]},
            "itemknn": {"neighbours": [5]}}
    ranking = tune_ranking(model_df, titles, grid, holdout_fraction=0.25, k=5,
                           min_coverage_ratio=1.5, seed=3)
    champion = register_champion(result, model_df, titles, ranking=ranking, paths=paths)
    manifest = registry.read_manifest(champion.version, paths)
    params = manifest["params"]
    # served = registered = chosen: every ranking parameter, none edited by hand
    assert params["ranking_params"] == ranking.best_params
    assert champion.recommender.ranking_params == ranking.best_params
    model, _ = registry.load_champion(paths)
    assert model.ranking_params == ranking.best_params
    record = params["tuning"]["ranking"]
    assert record["chosen"] == ranking.best_params
    assert record["grid"] == grid
    chosen_row = ranking.table[ranking.table["chosen"]].iloc[0]
    assert record["validation"]["ndcg"] == pytest.approx(chosen_row["ndcg"])
    assert record["validation"]["coverage_ratio"] == pytest.approx(chosen_row["coverage_ratio"])
    assert {r["rival"] for r in record["rivals"]} >= {"ease (score)", "ease (binary)",
                                                      "itemknn (score)"}
    assert "coverage >= 1.5 x popularity" in record["rule"]
    # and it says where every served parameter came from
    sources = record["sources"]
    assert list(sources) == list(DEFAULT_RANKING_PARAMS)
    assert sources == champion.sources
    assert sources["ranker"].startswith("validation: the best of 9 configurations of 3 rivals")
    for key in ("weighting", "l2", "pop_weight"):
        assert sources[key] == f"validation: chosen among {grid['ease'][key]}"
    assert sources["neighbours"].startswith("unused by the served ranker (ease")
    assert sources["min_item_ratings"].startswith("default, not tuned: ")
    assert sources["cold_start_list"].startswith("validation on ")
    table = champion.sources_table
    assert table.loc["l2", "value"] == str(ranking.best_params["l2"])
    assert table.loc["l2", "source"] == sources["l2"]


def test_the_rating_blends_tuned_parameters_are_recorded_with_their_scores(data, paths):
    from recsys_utils.lifecycle.champion import rating_tuning_record
    from recsys_utils.rating.tuning import GRIDS

    model_df, titles = data
    tuned = run_modeling(model_df, titles, n_folds=3, algorithms=["BaselineOnly"],
                         tune=True, tune_families=["BaselineOnly"], tune_folds=2,
                         blend_components=SMALL_BLEND, seed=3, paths=paths)
    record = rating_tuning_record(tuned, "small")
    family = record["families"]["BaselineOnly"]
    assert record["tuned"] is True
    assert family["chosen"] == tuned.tuned_params["BaselineOnly"]
    assert family["validation"]["rmse"] == pytest.approx(tuned.tuning["best_rmse"].iloc[0])
    assert family["grid"] == GRIDS["BaselineOnly"]["small"]
