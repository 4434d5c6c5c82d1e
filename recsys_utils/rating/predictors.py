"""Vectorized rating predictors: surprise algorithms and three numpy models.

Why wrappers around surprise: surprise predicts one ``(user, item)`` pair per Python
call, so ranking every title for a user is a loop of thousands of calls. The wrappers
here fit the surprise algorithm unchanged, keep only the fitted arrays (biases, factors,
a sparse similarity matrix) and score *many* items for one user with array operations.
``predict_items`` reproduces surprise's ``predict`` item by item (tested to 1e-6),
including the fallback for unknown users/items and the clipping to the rating scale.

The numpy models (``item_reg``/``user_reg``: neighbourhoods with learned weights;
``content``: per-user regression on genres and release decade) follow the same
interface and the same fallback (the baseline) for unknown users and items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from surprise import SVD, BaselineOnly, KNNBaseline, SVDpp, Trainset

from recsys_utils.rating.adapter import (
    BatchPredictions,
    TrainIndex,
    as_trainset,
)

__all__ = [
    "COMPONENTS",
    "FastBaseline",
    "BaselineComponent",
    "CachedSVDpp",
    "ContentComponent",
    "DenseSimKNNBaseline",
    "KNNBaselineComponent",
    "RegressionNeighbourhoodComponent",
    "SVDComponent",
    "SVDppComponent",
    "SurpriseComponent",
    "item_content",
    "make_component",
    "pearson_baseline_sparse",
]


class SurpriseComponent(BatchPredictions):
    """Base class: fit a surprise algorithm, keep its arrays, score items vectorized.

    Subclasses set ``name``, implement ``_make_algo`` (the surprise algorithm built from
    ``self.params``), ``_extract`` (copy the fitted arrays) and ``_estimate_inner(u,
    inner_items)``: the unclipped estimate for inner user ``u`` (``None`` if unknown)
    and inner item ids (``-1`` if unknown), following surprise's ``estimate``.

    Args:
        keep_algo: keep the fitted surprise algorithm as ``self.algo``; by default it
            is dropped after fit, because e.g. KNN's dense item-item matrix would make a
            saved model hundreds of MB. (A kept KNN algorithm built with ``sparse_sim``
            holds a sparse matrix, which surprise's own ``predict`` reads slowly.)
        **params: the surprise algorithm's keyword arguments.
    """

    name: str = "component"

    def __init__(self, keep_algo: bool = False, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)
        self.keep_algo = keep_algo
        self.algo: Any = None
        self.index: TrainIndex | None = None

    def _make_algo(self) -> Any:
        raise NotImplementedError

    def _extract(self, algo: Any) -> None:
        raise NotImplementedError

    def _estimate_inner(self, u: int | None, inner_items: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, data: pd.DataFrame | Trainset, index: TrainIndex | None = None
            ) -> SurpriseComponent:
        """Fit on the model table or a trainset (``index``: a prebuilt ``TrainIndex`` of it)."""
        trainset = as_trainset(data)
        self.index = index if index is not None else TrainIndex.from_trainset(trainset)
        algo = self._make_algo().fit(trainset)
        self._extract(algo)
        self.algo = algo if self.keep_algo else None
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    @property
    def item_ids(self) -> np.ndarray:
        """Raw ids of the items known to the model, in inner order."""
        return self._idx.item_ids

    @property
    def _idx(self) -> TrainIndex:
        if self.index is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        return self.index

    def known_user(self, user: Any) -> bool:
        return self._idx.inner_user(user) is not None

    def predict_items(self, user: Any, items: Sequence[Any] | np.ndarray, clip: bool = True
                      ) -> np.ndarray:
        """Predicted ratings of ``items`` (raw ids) for ``user``, in one vectorized call."""
        est = self._estimate_inner(self._idx.inner_user(user), self._idx.inner_items(items))
        return self._clip(est) if clip else est

    def predict_all(self, user: Any, clip: bool = True) -> np.ndarray:
        """Predicted ratings of every known item (``item_ids`` order) for ``user``."""
        est = self._estimate_inner(self._idx.inner_user(user),
                                   np.arange(self._idx.n_items, dtype=np.int64))
        return self._clip(est) if clip else est

    def _clip(self, est: np.ndarray) -> np.ndarray:
        lo, hi = self._idx.rating_scale
        return np.clip(est, lo, hi)


class BaselineComponent(SurpriseComponent):
    """surprise ``BaselineOnly``: ``mu + b_u + b_i`` (an unknown user/item adds no bias).

    Params: ``bsl_options`` (surprise's dict; default ALS, ``reg_i=10``, ``reg_u=15``,
    ``n_epochs=10``).
    """

    name = "baseline"

    def _make_algo(self) -> Any:
        return BaselineOnly(bsl_options=dict(self.params.get("bsl_options", {})), verbose=False)

    def _extract(self, algo: Any) -> None:
        self.bu = np.asarray(algo.bu, dtype=np.float64)
        self.bi = np.asarray(algo.bi, dtype=np.float64)

    def _estimate_inner(self, u: int | None, inner_items: np.ndarray) -> np.ndarray:
        return _biases(self._idx.global_mean, self.bu, self.bi, u, inner_items)


class SVDComponent(SurpriseComponent):
    """surprise ``SVD`` (biased matrix factorization by SGD).

    ``mu + b_u + b_i + q_i . p_u``; the product only when both are known; an unbiased SVD
    predicts the global mean for unknown pairs (surprise's ``default_prediction``).
    Params: surprise's (``n_factors``, ``n_epochs``, ``lr_all``, ``reg_all``, ...,
    ``random_state``).
    """

    name = "svd"

    def _make_algo(self) -> Any:
        return SVD(**self.params)

    def _extract(self, algo: Any) -> None:
        self.biased = bool(getattr(algo, "biased", True))  # SVDpp is always biased
        self.bu = np.asarray(algo.bu, dtype=np.float64)
        self.bi = np.asarray(algo.bi, dtype=np.float64)
        self.pu = np.asarray(algo.pu, dtype=np.float64)
        self.qi = np.asarray(algo.qi, dtype=np.float64)

    def _user_vector(self, u: int) -> np.ndarray:
        return self.pu[u]

    def _estimate_inner(self, u: int | None, inner_items: np.ndarray) -> np.ndarray:
        known = inner_items >= 0
        if self.biased:
            est = _biases(self._idx.global_mean, self.bu, self.bi, u, inner_items)
        else:
            est = np.full(inner_items.shape, self._idx.global_mean, dtype=np.float64)
            if u is not None:
                est[known] = 0.0
        if u is not None and known.any():
            est[known] += self.qi[inner_items[known]] @ self._user_vector(u)
        return est

    def user_vectors(self) -> np.ndarray:
        """The user side of the dot product for every inner user (``p_u`` for SVD)."""
        return self.pu

    def train_estimates_by_item(self) -> np.ndarray:
        """Unclipped estimates of every training rating, in ``TrainIndex.item_ratings`` order."""
        idx = self._idx
        items = np.repeat(np.arange(idx.n_items), idx.item_support())
        users = idx.item_users
        est = np.einsum("ij,ij->i", self.user_vectors()[users], self.qi[items])
        if self.biased:
            est += idx.global_mean + self.bu[users] + self.bi[items]
        return est

    @property
    def item_factors(self) -> np.ndarray:
        """``q_i`` rows in ``item_ids`` order (for item-item similarity in factor space)."""
        return self.qi


class SVDppComponent(SVDComponent):
    """surprise ``SVDpp``: SVD plus implicit feedback ``|I_u|^-1/2 sum_j y_j`` of rated items."""

    name = "svdpp"

    def _make_algo(self) -> Any:
        params = {"cache_ratings": True, **self.params}
        return SVDpp(**params)

    def _extract(self, algo: Any) -> None:
        super()._extract(algo)
        self.yj = np.asarray(algo.yj, dtype=np.float64)

    def _user_vector(self, u: int) -> np.ndarray:
        rated, _ = self._idx.user_rated(u)
        return self.pu[u] + self.yj[rated].sum(axis=0) / np.sqrt(len(rated))

    def user_vectors(self) -> np.ndarray:
        idx = self._idx
        n_u = idx.user_support().astype(np.float64)
        implicit = sp.csr_matrix(
            (np.repeat(1.0 / np.sqrt(np.maximum(n_u, 1)), idx.user_support()),
             idx.user_items, idx.user_ptr), shape=(idx.n_users, idx.n_items))
        return self.pu + implicit @ self.yj


#: Entries of the similarity matrix computed at once by ``pearson_baseline_sparse``
#: (rows per block = this / n): bounds its working memory (~0.1 GB per million entries).
SIMILARITY_BLOCK_ENTRIES = 4_000_000


def pearson_baseline_sparse(index: TrainIndex, user_based: bool, bu: np.ndarray,
                            bi: np.ndarray, min_support: int = 1, shrinkage: float = 100.0,
                            max_neighbours: int | None = None,
                            block_entries: int = SIMILARITY_BLOCK_ENTRIES) -> sp.csr_matrix:
    """surprise's shrunk ``pearson_baseline`` similarity, as sparse matrix products.

    Same formula as ``surprise.similarities.pearson_baseline`` (baseline-centred
    Pearson over common raters, times ``(n-1)/(n-1+shrinkage)``, 0 below
    ``max(2, min_support)`` common raters, 1 on the diagonal) but computed as sparse
    products instead of a Python-level loop over every co-rated pair into five dense
    n x n arrays. Only positive entries are kept (all KNNBaseline uses). Assumes at most
    one rating per (user, item), like the model table.

    Rows are computed ``block_entries / n`` at a time. Why, even for the exact matrix:
    the whole item-item products are hundreds of MB each, and fresh memory that size
    costs page faults: on MovieLens 4.6 s at once against 2.5 s in blocks, peak 1.48 GB
    against 0.44 GB, the same user CPU time (``benchmarks/bench_neighbours.py
    --item-based``).

    ``max_neighbours`` (None: all) keeps each row's largest ``max_neighbours`` positive
    similarities (ties: lower index first) plus the diagonal. Why: the exact user-user
    matrix has an entry for every pair of users who share a title, which is nearly every
    pair (memory ~ users^2: gigabytes at 10 k users); cut block by block, memory is
    ~ n x max_neighbours plus one block. Equal to the exact matrix when ``max_neighbours``
    covers every positive neighbour. Prediction (KNNBaseline) then takes the ``k`` most
    similar *of these* who rated the title, so ``max_neighbours`` should be well above ``k``.
    """
    n_u, n_i = index.n_users, index.n_items
    users = np.repeat(np.arange(n_u), index.user_support())
    items = index.user_items
    diff = index.user_ratings - (index.global_mean + bu[users] + bi[items])
    y, x, n_y, n_x = (items, users, n_i, n_u) if user_based else (users, items, n_u, n_i)

    def mat(values: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((values, (y, x)), shape=(n_y, n_x))

    d, m, d2 = mat(diff), mat(np.ones_like(diff)), mat(diff * diff)
    d_t, m_t, d2_t = d.T.tocsr(), m.T.tocsr(), d2.T.tocsr()
    min_sprt = max(2, int(min_support))
    rows_per_block = max(1, int(block_entries) // max(n_x, 1))
    parts = []
    for lo in range(0, n_x, rows_per_block):
        hi = min(n_x, lo + rows_per_block)
        freq = (m_t[lo:hi] @ m).tocsr()
        prods = (d_t[lo:hi] @ d).tocsr()
        # sums over common raters of diff_x^2 (this block's rows) and diff_x'^2 (columns)
        denom = (d2_t[lo:hi] @ m).multiply(m_t[lo:hi] @ d2).tocsr()
        enough = freq.data >= min_sprt  # >= 2, so the denominator below is positive
        freq.data = np.where(enough, (freq.data - 1) / np.where(
            enough, freq.data - 1 + shrinkage, 1.0), 0.0)
        freq.eliminate_zeros()
        denom.data = 1.0 / np.sqrt(denom.data)
        sim = prods.multiply(denom).multiply(freq).tocoo()
        keep = (sim.data > 0) & (sim.row + lo != sim.col)  # the diagonal is set to 1 below
        row, col, val = sim.row[keep], sim.col[keep], sim.data[keep]
        if max_neighbours is not None:
            order = np.lexsort((col, -val, row))  # per row: largest first, ties by index
            row, col, val = row[order], col[order], val[order]
            starts = np.searchsorted(row, np.arange(hi - lo))
            top = np.arange(row.size) - starts[row] < int(max_neighbours)
            row, col, val = row[top], col[top], val[top]
        diag = np.arange(hi - lo)
        parts.append(sp.csr_matrix(
            (np.concatenate([val, np.ones(hi - lo)]),
             (np.concatenate([row, diag]), np.concatenate([col, diag + lo]))),
            shape=(hi - lo, n_x)))
    out = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((n_x, n_x))
    out.sort_indices()
    return out


class _SparseSimKNNBaseline(KNNBaseline):
    """KNNBaseline whose pearson_baseline matrix comes from ``pearson_baseline_sparse``
    (each row's ``max_neighbours`` most similar only, when set)."""

    max_neighbours: int | None = None

    def compute_similarities(self) -> Any:
        opts = self.sim_options
        if opts.get("name", "msd").lower() != "pearson_baseline":
            return super().compute_similarities()
        bu, bi = self.compute_baselines()
        args = (TrainIndex.from_trainset(self.trainset), bool(opts["user_based"]),
                np.asarray(bu), np.asarray(bi), opts.get("min_support", 1),
                opts.get("shrinkage", 100))
        return pearson_baseline_sparse(*args, max_neighbours=self.max_neighbours)


class DenseSimKNNBaseline(_SparseSimKNNBaseline):
    """surprise's ``KNNBaseline``, its pearson_baseline matrix from
    ``pearson_baseline_sparse`` handed back dense for surprise's own ``estimate``.

    What ``comparison.ALGORITHMS`` runs: the same predictions (the matrices agree to
    1e-12 on the positive entries, the only ones ``estimate`` averages over) with one
    dense n x n array instead of the five surprise's loop fills: the MovieLens item-based
    fit 5.7 -> 3.1 s (numpy's huge pages off, as ``make`` runs; 33.7 -> 10.9 s with
    them).
    """

    def compute_similarities(self) -> Any:
        sim = super().compute_similarities()
        return sim.toarray() if sp.issparse(sim) else sim


class CachedSVDpp(SVDpp):
    """surprise's ``SVDpp`` whose ``estimate`` sums a user's implicit factors once, not
    once per prediction: the same sum in the same order, so the same estimates, and the
    MovieLens test fold in 0.3 s instead of 10 (what ``comparison.ALGORITHMS`` runs)."""

    def fit(self, trainset: Trainset) -> CachedSVDpp:
        super().fit(trainset)
        self._implicit: dict[int, np.ndarray] = {}
        return self

    def estimate(self, u: Any, i: Any) -> float:
        known_user, known_item = self.trainset.knows_user(u), self.trainset.knows_item(i)
        est = self.trainset.global_mean
        if known_user:
            est += self.bu[u]
        if known_item:
            est += self.bi[i]
        if known_user and known_item:
            implicit = self._implicit.get(u)
            if implicit is None:  # surprise's expression, kept as is
                rated = self.trainset.ur[u]
                implicit = self._implicit[u] = (sum(self.yj[j] for (j, _) in rated)
                                                / np.sqrt(len(rated)))
            est += np.dot(self.qi[i], self.pu[u] + implicit)
        return est


class KNNBaselineComponent(SurpriseComponent):
    """surprise ``KNNBaseline``: baseline plus a similarity-weighted mean of the baseline
    residuals of the ``k`` most similar neighbours (positive similarities only).

    After fit the dense similarity matrix is kept as a sparse matrix of its *positive*
    entries: surprise only ever averages over positive similarities among the top-k,
    and dropping non-positive entries cannot change which positive ones are in the top-k.

    Params: ``k`` (40), ``min_k`` (1), ``sim_options`` (default here
    ``pearson_baseline``, item based), ``bsl_options``; ``sparse_sim`` (default True)
    computes pearson_baseline with ``pearson_baseline_sparse`` instead of surprise's
    dense loop (same values; ``False`` = surprise's own code); ``max_neighbours`` (default
    None: all) keeps each row's most similar neighbours only (``pearson_baseline_sparse``:
    memory ~ rows x max_neighbours instead of rows^2; the bounded form for large data).
    """

    name = "knn"

    def _make_algo(self) -> Any:
        params = dict(self.params)
        sim = {"name": "pearson_baseline", "user_based": False, **params.pop("sim_options", {})}
        bound = params.pop("max_neighbours", None)
        if not params.pop("sparse_sim", True):
            if bound is not None:
                raise ValueError("max_neighbours needs sparse_sim=True")
            return KNNBaseline(sim_options=sim, verbose=False, **params)
        algo = _SparseSimKNNBaseline(sim_options=sim, verbose=False, **params)
        algo.max_neighbours = bound
        return algo

    @property
    def user_based(self) -> bool:
        return bool(self.params.get("sim_options", {}).get("user_based", False))

    def _extract(self, algo: Any) -> None:
        self.k = int(algo.k)
        self.min_k = int(algo.min_k)
        self.bu = np.asarray(algo.bu, dtype=np.float64)
        self.bi = np.asarray(algo.bi, dtype=np.float64)
        if sp.issparse(algo.sim):
            self.sim = sp.csr_matrix(algo.sim)
        else:
            sim = np.asarray(algo.sim)
            self.sim = sp.csr_matrix(np.where(sim > 0, sim, 0.0))
        if not self.keep_algo:
            algo.sim = None  # free the dense matrix now
        self._sim_t = self._sim_by_neighbour()

    def _sim_by_neighbour(self) -> sp.csr_matrix:
        """``M`` with ``M[j, i] = sim[i, j]``: the rated rows of the many-targets path.

        surprise's full matrix is symmetric, so that is ``sim`` itself. A bounded one
        (``max_neighbours``) keeps each title's own most similar titles, which is not
        symmetric: its transpose, so a title's prediction is the same whichever other
        titles are asked with it. Derived: built at fit and at load, never pickled."""
        bounded = self.params.get("max_neighbours") is not None
        return self.sim.T.tocsr() if bounded else self.sim

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_sim_t", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if getattr(self, "sim", None) is not None:
            self._sim_t = self._sim_by_neighbour()

    def _estimate_inner(self, u: int | None, inner_items: np.ndarray) -> np.ndarray:
        return self.estimate_with_stats(u, inner_items)[0]

    def _baseline_inner(self, u: int | None, inner_items: np.ndarray) -> np.ndarray:
        """The baseline part ``mu + b_u + b_i`` alone."""
        return _biases(self._idx.global_mean, self.bu, self.bi, u, inner_items)

    def estimate_with_stats(self, u: int | None, inner_items: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unclipped estimates plus, per item, the sum of the neighbour similarities used
        and their number (``actual_k``); both 0 where no neighbour term applies.

        The two statistics tell how much the neighbour term can be trusted; the blend
        uses them as meta-features.
        """
        idx = self._idx
        est = _biases(idx.global_mean, self.bu, self.bi, u, inner_items)
        sum_w = np.zeros(inner_items.shape, dtype=np.float64)
        count = np.zeros(inner_items.shape, dtype=np.float64)
        known = np.flatnonzero(inner_items >= 0)
        if u is None or known.size == 0:
            return est, sum_w, count
        items = inner_items[known]
        stats = (self._user_based_term(u, items) if self.user_based
                 else self._item_based_term(u, items))
        est[known] += stats[0]
        sum_w[known] = stats[1]
        count[known] = stats[2]
        return est, sum_w, count

    def neighbour_average(self, u: int, items: np.ndarray, resid: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This model's neighbour weighting applied to *other* residuals.

        ``resid``: for an item-based model, one residual per rating of inner user ``u``
        (``TrainIndex.user_rated(u)`` order); for a user-based model, one per training
        rating in ``TrainIndex.item_ratings`` order. With the residuals of a factor model
        this is "neighbours on top of factors", a cheap extra blend input.
        Returns ``(term, sum of weights, neighbours used)`` per inner item.
        """
        if self.user_based:
            return self._user_based_term(u, items, resid)
        return self._item_based_term(u, items, resid)

    def _item_based_term(self, u: int, items: np.ndarray, resid: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Neighbours of item i = the items u rated (in ``ur[u]`` order)."""
        idx = self._idx
        rated, ratings = idx.user_rated(u)
        if resid is None:
            resid = ratings - (idx.global_mean + self.bi[rated] + self.bu[u])
        # surprise's similarity matrices are symmetric, so sim[i, rated] = sim[rated, i]:
        # for many targets, slice the rated rows (fast CSR row slicing) and convert to CSC
        # so each target item's positive-similarity neighbours are one column.
        if items.size < rated.size:  # few targets (a top-N list): slice their rows
            block = self.sim[items][:, rated].tocsr()
        else:
            rows = self._sim_t[rated]
            block = (rows if items.size == idx.n_items and np.array_equal(
                items, np.arange(idx.n_items)) else rows[:, items]).tocsc()
        # either way: one compressed slice per target, index = position in ur[u]
        lengths = np.diff(block.indptr)
        seg = np.repeat(np.arange(items.size), lengths)
        pos = block.indices.astype(np.int64)
        return _top_k_term(seg, pos, block.data, resid[pos], items.size, self.k, self.min_k)

    def _user_based_term(self, u: int, items: np.ndarray, resid_all: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Neighbours of user u for item i = the users who rated i (in ``ir[i]`` order)."""
        idx = self._idx
        srow = self.sim[u].toarray().ravel()
        starts = idx.item_ptr[items]
        lengths = idx.item_ptr[items + 1] - starts
        total = int(lengths.sum())
        seg = np.repeat(np.arange(items.size), lengths)
        pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        flat = np.repeat(starts, lengths) + pos
        users = idx.item_users[flat]
        if resid_all is None:
            resid = idx.item_ratings[flat] - (idx.global_mean + self.bu[users]
                                              + self.bi[items][seg])
        else:
            resid = resid_all[flat]
        sims = srow[users]
        positive = sims > 0
        return _top_k_term(seg[positive], pos[positive], sims[positive], resid[positive],
                           items.size, self.k, self.min_k)


class RegressionNeighbourhoodComponent(SurpriseComponent):
    """Neighbourhood model with *learned* interpolation weights (numpy, not surprise).

    Item based: ``r_ui = b_ui + sum_{j in N_k(i)} w_ij (r_uj - b_uj)``, with ``b`` from
    surprise's ``BaselineOnly``, ``N_k(i)`` the ``k`` items most similar to ``i``
    (pearson_baseline, as KNNBaseline) and a missing rating counting as residual 0. The
    weights of item ``i`` are a ridge regression of its raters' residuals on their
    residuals for ``N_k(i)``. Unlike KNNBaseline's similarity-weighted average, learned
    weights account for neighbours that are similar to *each other* (Bell & Koren 2007,
    "global neighbourhood"). User based: the same with users and items swapped
    (``N_k(u)`` = most similar users, weights fitted on u's own ratings).

    Scoring all items of a user is one sparse matrix-vector product.

    Params: ``user_based`` (False), ``k`` (30), ``reg`` (ridge penalty, 50),
    ``shrinkage`` (100) and ``min_support`` (1) of the similarity, ``bsl_options``.
    """

    name = "item_reg"

    def _make_algo(self) -> Any:
        return BaselineOnly(bsl_options=dict(self.params.get("bsl_options", {})), verbose=False)

    @property
    def user_based(self) -> bool:
        return bool(self.params.get("user_based", False))

    def _extract(self, algo: Any) -> None:
        idx = self._idx
        self.bu = np.asarray(algo.bu, dtype=np.float64)
        self.bi = np.asarray(algo.bi, dtype=np.float64)
        k = int(self.params.get("k", 30))
        reg = float(self.params.get("reg", 50.0))
        ub = self.user_based
        sim = pearson_baseline_sparse(idx, ub, self.bu, self.bi,
                                      int(self.params.get("min_support", 1)),
                                      float(self.params.get("shrinkage", 100.0)))
        users = np.repeat(np.arange(idx.n_users), idx.user_support())
        resid = idx.user_ratings - (idx.global_mean + self.bu[users] + self.bi[idx.user_items])
        # residual matrix with the regression's "samples" as rows and entities as columns:
        # item based = users x items, user based = items x users.
        rows_of, cols_of = (idx.user_items, users) if ub else (users, idx.user_items)
        n_rows, n_ent = (idx.n_items, idx.n_users) if ub else (idx.n_users, idx.n_items)
        ptr, samples = (idx.user_ptr, idx.user_items) if ub else (idx.item_ptr, idx.item_users)
        res_mat: Any
        if n_rows * n_ent <= 30_000_000:  # dense when it fits comfortably (MovieLens: 49 MB)
            res_mat = np.zeros((n_rows, n_ent))
            res_mat[rows_of, cols_of] = resid
        else:
            res_mat = sp.csr_matrix((resid, (rows_of, cols_of)), shape=(n_rows, n_ent))
        rows, cols, vals = [], [], []
        for x in range(n_ent):
            nb, sv = sim.indices[sim.indptr[x]:sim.indptr[x + 1]], sim.data[
                sim.indptr[x]:sim.indptr[x + 1]]
            keep = nb != x
            nb, sv = nb[keep], sv[keep]
            rated = samples[ptr[x]:ptr[x + 1]]
            if nb.size == 0 or rated.size < 2:
                continue
            if nb.size > k:
                nb = nb[np.lexsort((nb, -sv))[:k]]  # k most similar, ties by index
            if isinstance(res_mat, np.ndarray):
                feats, target = res_mat[np.ix_(rated, nb)], res_mat[rated, x]
            else:
                block = res_mat[rated]
                feats, target = block[:, nb].toarray(), block[:, [x]].toarray().ravel()
            gram = feats.T @ feats
            gram[np.diag_indices_from(gram)] += reg
            rows.append(np.full(nb.size, x))
            cols.append(nb)
            vals.append(np.linalg.solve(gram, feats.T @ target))
        self.weights = sp.csr_matrix(
            (_concat(vals, np.float64), (_concat(rows, np.int64), _concat(cols, np.int64))),
            shape=(n_ent, n_ent))
        # user based scoring needs the neighbours' residuals on every item
        self._resid_by_user = (sp.csr_matrix((resid, (users, idx.user_items)),
                                             shape=(idx.n_users, idx.n_items))
                               if ub else None)

    def _estimate_inner(self, u: int | None, inner_items: np.ndarray) -> np.ndarray:
        idx = self._idx
        est = _biases(idx.global_mean, self.bu, self.bi, u, inner_items)
        known = np.flatnonzero(inner_items >= 0)
        if u is None or known.size == 0:
            return est
        items = inner_items[known]
        if self.user_based:
            # sum_v w_uv resid(v, i): the neighbours' residual rows, weighted
            est[known] += (self.weights[u] @ self._resid_by_user[:, items]).toarray().ravel()
        else:
            rated, ratings = idx.user_rated(u)
            r_u = np.zeros(idx.n_items)
            r_u[rated] = ratings - (idx.global_mean + self.bu[u] + self.bi[rated])
            est[known] += self.weights[items] @ r_u
        return est


def item_content(titles: pd.DataFrame) -> pd.DataFrame:
    """Item metadata the ``content`` component uses, one row per ``item_id``.

    From the processed titles table (``book/data_dictionary.md``): ``genres`` (a tuple
    of genre names, from the comma-separated column) and ``decade`` (release year // 10 *
    10, or -1 when unknown). Copies of one item on several platforms share an
    ``item_id``; the first row wins.
    """
    missing = {"item_id", "genres", "release_year"} - set(titles.columns)
    if missing:
        raise ValueError(f"titles table lacks columns {sorted(missing)}")
    first = titles.drop_duplicates("item_id")
    genres = first["genres"].fillna("").astype(str).map(
        lambda g: tuple(sorted({x.strip() for x in g.replace("|", ",").split(",") if x.strip()})))
    year = pd.to_numeric(first["release_year"], errors="coerce")
    decade = (year // 10 * 10).fillna(-1).astype(int)
    return pd.DataFrame({"genres": genres.to_numpy(), "decade": decade.to_numpy()},
                        index=pd.Index(first["item_id"].astype(str).to_numpy(), name="item_id"))


class ContentComponent(SurpriseComponent):
    """Baseline plus a per-user ridge regression of residuals on item content (numpy).

    ``r_ui = b_ui + x_i . w_u``: ``x_i`` = the item's genre indicators (scaled by
    ``1/sqrt(#genres)``) and release-decade indicator; ``w_u`` fitted on ``u``'s own
    baseline residuals with penalty ``reg``. Captures "this user likes documentaries
    more than their average" even for titles with too few ratings for neighbours or
    factors to say anything. Needs ``item_features`` (``item_content(titles)``); items
    without metadata get the baseline.

    Params: ``reg`` (5), ``genres`` (True), ``decades`` (True), ``bsl_options``.
    """

    name = "content"

    def __init__(self, keep_algo: bool = False, item_features: pd.DataFrame | None = None,
                 **params: Any) -> None:
        super().__init__(keep_algo=keep_algo, **params)
        if item_features is None:
            raise ValueError("the content component needs item_features "
                             "(models.item_content(titles)); pass titles to the model")
        self.item_features = item_features

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["item_features"] = None  # the fitted matrix is enough; keep pickles small
        return state

    def _make_algo(self) -> Any:
        return BaselineOnly(bsl_options=dict(self.params.get("bsl_options", {})), verbose=False)

    def _design(self) -> sp.csr_matrix:
        """Content matrix (inner items x features)."""
        idx = self._idx
        feats = self.item_features.reindex(pd.Index(idx.item_ids.astype(str)))
        blocks = []
        self.feature_names: list[str] = []
        if self.params.get("genres", True):
            lists = [g if isinstance(g, tuple) else () for g in feats["genres"]]
            vocab = sorted({g for gs in lists for g in gs})
            col = {g: c for c, g in enumerate(vocab)}
            r = np.repeat(np.arange(len(lists)), [len(g) for g in lists])
            c = np.array([col[g] for gs in lists for g in gs], dtype=np.int64)
            v = np.repeat([1.0 / np.sqrt(len(g)) if g else 0.0 for g in lists],
                          [len(g) for g in lists])
            blocks.append(sp.csr_matrix((v, (r, c)), shape=(len(lists), len(vocab))))
            self.feature_names += [f"genre={g}" for g in vocab]
        if self.params.get("decades", True):
            dec = feats["decade"].fillna(-1).astype(int).to_numpy()
            vocab = sorted(set(dec.tolist()) - {-1})
            col = {d: c for c, d in enumerate(vocab)}
            rows = np.flatnonzero(dec != -1)
            blocks.append(sp.csr_matrix(
                (np.ones(rows.size), (rows, [col[d] for d in dec[rows]])),
                shape=(len(dec), len(vocab))))
            self.feature_names += [f"decade={d}" for d in vocab]
        if not blocks:
            return sp.csr_matrix((idx.n_items, 0))
        return sp.hstack(blocks).tocsr()

    def _extract(self, algo: Any) -> None:
        idx = self._idx
        self.bu = np.asarray(algo.bu, dtype=np.float64)
        self.bi = np.asarray(algo.bi, dtype=np.float64)
        x = self._design()
        self.x_items = x
        reg = float(self.params.get("reg", 5.0))
        w = np.zeros((idx.n_users, x.shape[1]))
        eye = reg * np.eye(x.shape[1])
        for u in range(idx.n_users):
            rated, ratings = idx.user_rated(u)
            y = ratings - (idx.global_mean + self.bu[u] + self.bi[rated])
            xu = x[rated].toarray()
            w[u] = np.linalg.solve(xu.T @ xu + eye, xu.T @ y)
        self.w_users = w
        self.item_features = None  # no longer needed

    def _estimate_inner(self, u: int | None, inner_items: np.ndarray) -> np.ndarray:
        idx = self._idx
        est = _biases(idx.global_mean, self.bu, self.bi, u, inner_items)
        known = np.flatnonzero(inner_items >= 0)
        if u is not None and known.size:
            est[known] += self.x_items[inner_items[known]] @ self.w_users[u]
        return est


# =========================================================================== helpers


def _concat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _biases(mu: float, bu: np.ndarray, bi: np.ndarray, u: int | None,
            inner_items: np.ndarray) -> np.ndarray:
    """``mu + b_u + b_i`` with surprise's rule: an unknown user or item adds no bias."""
    known = inner_items >= 0
    est = np.full(inner_items.shape, mu, dtype=np.float64)
    est[known] += bi[inner_items[known]]
    if u is not None:
        est += bu[u]
    return est


def _segment_ranks(sorted_seg: np.ndarray) -> np.ndarray:
    """0-based position of each element inside its run of equal values (input sorted)."""
    n = sorted_seg.size
    starts = np.flatnonzero(np.r_[True, sorted_seg[1:] != sorted_seg[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.arange(n) - run_start


def _safe_term(sum_wr: np.ndarray, sum_w: np.ndarray, actual_k: np.ndarray, min_k: int
               ) -> np.ndarray:
    """``sum_wr / sum_w``, 0 where fewer than ``min_k`` neighbours or no weight (surprise)."""
    ok = (actual_k >= min_k) & (sum_w > 0)
    out = np.zeros_like(sum_w)
    out[ok] = sum_wr[ok] / sum_w[ok]
    return out


def _top_k_term(seg: np.ndarray, pos: np.ndarray, sims: np.ndarray, resid: np.ndarray,
                n_seg: int, k: int, min_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KNNBaseline's neighbour term for ``n_seg`` targets, from their positive neighbours.

    Entry e is a neighbour of target ``seg[e]`` at position ``pos[e]`` of surprise's
    neighbour list, with similarity ``sims[e] > 0`` and baseline residual ``resid[e]``.
    surprise keeps the ``k`` largest similarities of the whole list (``heapq.nlargest``,
    ties to the earlier position) and averages over the positive ones; non-positive
    entries can never push a positive one out, so ranking the positive ones suffices.
    Returns ``(term, sum of weights, number of neighbours used)`` per target.
    """
    if seg.size == 0:
        zeros = np.zeros(n_seg)
        return zeros, zeros.copy(), zeros.copy()
    order = np.lexsort((pos, -sims, seg))
    rank = np.empty(seg.size, dtype=np.int64)
    rank[order] = _segment_ranks(seg[order])
    w = np.where(rank < k, sims, 0.0)
    sum_w = np.bincount(seg, weights=w, minlength=n_seg)
    sum_wr = np.bincount(seg, weights=w * resid, minlength=n_seg)
    actual_k = np.bincount(seg, weights=(rank < k).astype(np.float64), minlength=n_seg)
    return _safe_term(sum_wr, sum_w, actual_k, min_k), sum_w, actual_k


# =========================================================================== components by name

#: Component names accepted by ``make_component`` (the blend's building blocks).
COMPONENTS: dict[str, type[SurpriseComponent]] = {
    "baseline": BaselineComponent,
    "svd": SVDComponent,
    "svdpp": SVDppComponent,
    "knn_item": KNNBaselineComponent,
    "knn_user": KNNBaselineComponent,
    "item_reg": RegressionNeighbourhoodComponent,
    "user_reg": RegressionNeighbourhoodComponent,
    "content": ContentComponent,
}


def make_component(name: str, params: dict[str, Any] | None = None, seed: int | None = None,
                   item_features: pd.DataFrame | None = None) -> SurpriseComponent:
    """A vectorized component by name; ``seed`` becomes ``random_state`` where it applies.

    ``item_features`` (``item_content(titles)``) is required by ``content`` only.

    ``knn_user``/``knn_item`` set ``sim_options["user_based"]`` (pearson_baseline by default).
    """
    if name not in COMPONENTS:
        raise ValueError(f"unknown component {name!r}; valid: {sorted(COMPONENTS)}")
    params = dict(params or {})
    if name in ("svd", "svdpp") and seed is not None:
        params.setdefault("random_state", seed)
    if name in ("item_reg", "user_reg"):
        params["user_based"] = name == "user_reg"
    if name.startswith("knn_"):
        sim = dict(params.get("sim_options", {}))
        sim["user_based"] = name == "knn_user"
        sim.setdefault("name", "pearson_baseline")
        params["sim_options"] = sim
    if name == "content":
        return ContentComponent(item_features=item_features, **params)
    return COMPONENTS[name](**params)


class FastBaseline:
    """surprise's ``BaselineOnly`` (ALS) re-implemented with numpy, for the timeline replay.

    Same model (``mu + b_u + b_i``), same alternating least squares (``n_epochs``
    sweeps; item biases then user biases, regularised by ``reg_i`` / ``reg_u``), same
    unknown-user/item fallback (a missing bias counts as 0) and clipping to 0.5..5 as
    ``surprise.BaselineOnly`` with its default ``bsl_options`` (tests compare the two).
    Why not surprise itself: building a surprise ``Trainset`` costs ~0.5 s per fit and
    the replay fits once per period; this fits 100k ratings in milliseconds.
    """

    def __init__(self, n_epochs: int = 10, reg_u: float = 15.0, reg_i: float = 10.0,
                 rating_scale: tuple[float, float] = (0.5, 5.0)) -> None:
        self.n_epochs, self.reg_u, self.reg_i = n_epochs, reg_u, reg_i
        self.rating_scale = rating_scale

    def fit(self, model_df: pd.DataFrame) -> FastBaseline:
        """Fit on a model table (``user``, ``item``, ``score``)."""
        u_codes, self.users_ = pd.factorize(model_df["user"].to_numpy())
        i_codes, self.items_ = pd.factorize(model_df["item"].to_numpy(dtype=object))
        r = model_df["score"].to_numpy(np.float64)
        self.mu = float(r.mean())
        n_u, n_i = len(self.users_), len(self.items_)
        cnt_u = np.bincount(u_codes, minlength=n_u)
        cnt_i = np.bincount(i_codes, minlength=n_i)
        bu, bi = np.zeros(n_u), np.zeros(n_i)
        for _ in range(self.n_epochs):
            bi = np.bincount(i_codes, r - self.mu - bu[u_codes], n_i) / (self.reg_i + cnt_i)
            bu = np.bincount(u_codes, r - self.mu - bi[i_codes], n_u) / (self.reg_u + cnt_u)
        self.bu, self.bi = bu, bi
        self._user_index = pd.Index(self.users_)
        self._item_index = pd.Index(self.items_)
        return self

    def predict_pairs(self, users: np.ndarray, items: np.ndarray, clip: bool = True
                      ) -> np.ndarray:
        """Predicted ratings of aligned ``users`` / ``items`` arrays (raw ids)."""
        u = self._user_index.get_indexer(np.asarray(users))
        i = self._item_index.get_indexer(np.asarray(items, dtype=object))
        est = np.full(len(u), self.mu)
        est[u >= 0] += self.bu[u[u >= 0]]
        est[i >= 0] += self.bi[i[i >= 0]]
        return np.clip(est, *self.rating_scale) if clip else est

    def predict_items(self, user: Any, items: np.ndarray, clip: bool = True) -> np.ndarray:
        """Predicted ratings of ``items`` for one ``user``."""
        items = np.asarray(items, dtype=object)
        return self.predict_pairs(np.full(len(items), user), items, clip=clip)
