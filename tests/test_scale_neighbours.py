"""Large data: the bounded neighbour similarity and the blend's exclusion rule."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from rating_fixtures import synthetic_model_table
from surprise import BaselineOnly

from recsys_utils.rating import blend
from recsys_utils.rating.adapter import TrainIndex, trainset_from_frame
from recsys_utils.rating.predictors import make_component, pearson_baseline_sparse


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_model_table()


def _inputs(ratings: pd.DataFrame):
    trainset = trainset_from_frame(ratings)
    base = BaselineOnly(verbose=False).fit(trainset)
    return TrainIndex.from_trainset(trainset), np.asarray(base.bu), np.asarray(base.bi)


@pytest.mark.parametrize("user_based", [True, False])
@pytest.mark.parametrize(("min_support", "shrinkage"), [(1, 100.0), (3, 0.0)])
def test_bounded_similarity_equals_exact_when_k_covers_every_neighbour(ratings, user_based,
                                                                       min_support, shrinkage):
    index, bu, bi = _inputs(ratings)
    exact = pearson_baseline_sparse(index, user_based, bu, bi, min_support, shrinkage)
    n = exact.shape[0]
    # tiny blocks: many blocks, so the block seams are exercised
    bounded = pearson_baseline_sparse(index, user_based, bu, bi, min_support, shrinkage,
                                      max_neighbours=n, block_entries=3 * n)
    assert exact.nnz > 2 * n  # real neighbours, not only the diagonal
    np.testing.assert_allclose(bounded.toarray(), exact.toarray(), atol=1e-12)


def test_bounded_similarity_keeps_each_rows_largest(ratings):
    index, bu, bi = _inputs(ratings)
    exact = pearson_baseline_sparse(index, True, bu, bi).toarray()
    m = 3
    bounded = pearson_baseline_sparse(index, True, bu, bi, max_neighbours=m,
                                      block_entries=50).toarray()
    for r in range(exact.shape[0]):
        off = np.delete(np.arange(exact.shape[0]), r)
        kept = np.flatnonzero(bounded[r, off] > 0)
        assert len(kept) == min(m, int((exact[r, off] > 0).sum()))
        assert bounded[r, r] == 1.0
        np.testing.assert_allclose(bounded[r, off][kept], exact[r, off][kept])
        dropped = np.setdiff1d(np.flatnonzero(exact[r, off] > 0), kept)
        if len(dropped) and len(kept):
            assert exact[r, off][dropped].max() <= exact[r, off][kept].min()


def test_bounded_user_knn_predicts_like_the_exact_one_when_k_covers_all(ratings):
    params = {"k": 10, "sim_options": {"user_based": True, "shrinkage": 10}}
    exact = make_component("knn_user", params).fit(ratings)
    n_users = ratings["user"].nunique()
    bounded = make_component("knn_user", {**params, "max_neighbours": n_users}).fit(ratings)
    small = make_component("knn_user", {**params, "max_neighbours": 2}).fit(ratings)
    users = sorted(ratings["user"].unique())[:15]
    a = np.concatenate([exact.predict_items(u, exact.item_ids) for u in users])
    b = np.concatenate([bounded.predict_items(u, bounded.item_ids) for u in users])
    c = np.concatenate([small.predict_items(u, small.item_ids) for u in users])
    np.testing.assert_allclose(a, b, atol=1e-9)
    assert np.abs(a - c).max() > 1e-6  # a bound below the neighbours does change predictions
    assert small.sim.nnz <= 3 * n_users


def test_bounded_item_knn_predicts_a_title_the_same_whatever_is_asked_with_it(ratings):
    """A bounded matrix keeps each title's own neighbours (not symmetric): a top-N list
    (few titles) and the whole catalog take different slicing paths, and must agree."""
    knn = make_component("knn_item", {"k": 5, "max_neighbours": 4}).fit(ratings)
    assert (knn.sim != knn.sim.T).nnz > 0  # the bound made it asymmetric
    for user in sorted(ratings["user"].unique())[:20]:
        every = knn.predict_items(user, knn.item_ids, clip=False)
        few = knn.predict_items(user, knn.item_ids[:3], clip=False)
        np.testing.assert_allclose(few, every[:3], atol=1e-12)
    # the transpose is derived: not pickled, rebuilt at load
    assert "_sim_t" not in knn.__getstate__()
    loaded = pickle.loads(pickle.dumps(knn))
    user = sorted(ratings["user"].unique())[0]
    np.testing.assert_array_equal(loaded.predict_items(user, knn.item_ids, clip=False),
                                  knn.predict_items(user, knn.item_ids, clip=False))


def test_exclusion_rule_names_unbounded_neighbours_above_the_limits():
    users, items = blend.USER_NEIGHBOURS_MAX_USERS, blend.ITEM_NEIGHBOURS_MAX_ITEMS
    comps = blend.DEFAULT_COMPONENTS
    assert blend.excluded_components(comps, users, items) == {}
    over = blend.excluded_components(comps, users + 1, items)
    assert set(over) == {"knn_user"} and "max_neighbours" in over["knn_user"]
    assert set(blend.excluded_components(comps, users, items + 1)) == {"knn_item"}
    assert set(blend.excluded_components(comps, users + 1, items + 1)) == {"knn_user",
                                                                         "knn_item"}
    bounded = {name: {**p, "max_neighbours": 200} if name.startswith("knn") else p
               for name, p in comps.items()}
    assert blend.excluded_components(bounded, 10 * users, 10 * items) == {}
    # an item-based component configured as user-based counts users
    custom = {"knn_item": {"sim_options": {"user_based": True}}}
    assert set(blend.excluded_components(custom, users + 1, 0)) == {"knn_item"}


def test_blend_leaves_the_excluded_component_out_and_records_it(ratings, monkeypatch):
    monkeypatch.setattr(blend, "USER_NEIGHBOURS_MAX_USERS", 5)
    comps = {"baseline": {}, "knn_user": {"k": 5, "sim_options": {"user_based": True}}}
    model = blend.BlendedRatingModel(components=comps, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(ratings)
    assert any("knn_user" in str(w.message) for w in caught)
    assert set(model.excluded_components_) == {"knn_user"}
    assert set(model.components) == {"baseline"}
    assert model.get_params()["components"] == comps  # the request is kept as given
    user = int(ratings["user"].iloc[0])
    assert np.isfinite(model.predict_items(user, model.item_ids)).all()


def test_large_preset_is_a_valid_params_file_with_bounded_neighbours():
    from recsys_utils.paths import PROJECT_ROOT
    from recsys_utils.run import pipeline

    path = PROJECT_ROOT / "notebooks" / "params_large.yaml"
    params = pipeline.load_params_file(path)
    steps = pipeline.discover_steps(PROJECT_ROOT / "notebooks")
    pipeline.resolve_parameters(steps, params, [])  # raises on an unknown name or a bad type
    # the same names as params.yaml, section by section (a renamed parameter shows here)
    default = pipeline.load_params_file(PROJECT_ROOT / "notebooks" / "params.yaml")
    assert {k: set(v) for k, v in params.sections.items()} == \
        {k: set(v) for k, v in default.sections.items()}
    comps = params.sections["03_modeling"]["blend_components"]
    # user neighbours (time ~ users^2) are left out; the rest are the defaults
    assert set(comps) == set(blend.DEFAULT_COMPONENTS) - {"knn_user"}
    for name in ("knn_item",):
        assert comps[name]["max_neighbours"] >= 5 * comps[name]["k"]
        # otherwise the default components: the preset only adds the bound
        assert {k: v for k, v in comps[name].items() if k != "max_neighbours"} == \
            blend.DEFAULT_COMPONENTS[name]
    assert blend.excluded_components(comps, 10**6, 10**6) == {}  # bounded: kept at any size
