"""The item rankers the ``Recommender`` can serve, all on the same interaction matrix.

Each ranker is fitted on ``X``, the users x catalog matrix of weighted training
interactions (``Recommender``'s ``weighting``: score-weighted or binary), and scores a
block of users from their rows of ``X`` alone, so a new user described by a few ratings
is scored the same way as a training user. Scores are raw (the ``Recommender`` z-scores
them per user before blending in popularity).

* ``ease``: EASE (Steck 2019), ``B = I - P diag(1/diag(P))``, ``P = (X'X + l2 I)^-1``
  over the titles with at least ``min_item_ratings`` ratings (at most ``max_ease_items``,
  the most rated): ``B`` is dense, one ``n x n`` inverse. Scores ``x_u B``.
* ``itemknn``: item-kNN, cosine similarity of the titles' interaction columns with a
  shrinkage term, ``s_ij = x_i'x_j / (|x_i||x_j| + shrink)``, only the ``neighbours``
  largest per title kept (sparse). Scores ``x_u S``.
* ``rp3beta``: the 3-step random walk user -> title -> user -> title (Paudel et al. 2017,
  "Updatable, accurate, diverse, and scalable recommendations for interactive
  applications"), transition probabilities raised to ``alpha``, the arrival title's
  probability divided by its popularity to the power ``beta``; top ``neighbours`` kept.
* ``als``: implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) from the
  ``implicit`` package, confidence ``1 + alpha * x`` on the positive part of ``X``. A user
  row is folded in by the exact least-squares solve given the item factors (the same
  step as ALS's own user update), so training users and new users are scored alike.
* ``popularity``: ``log1p`` of the number of training ratings (the baseline).

Neighbour matrices are built in column blocks (memory ``n_titles x block`` at a time) and
kept sparse, so nothing is quadratic in users and nothing dense is ``n_titles^2`` except
EASE's ``B``, which is bounded by ``max_ease_items``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["RANKERS", "RANKER_PARAMS", "fit_ranker"]

#: The rankers by name and the parameters each reads from ``ranking_params``.
RANKER_PARAMS: dict[str, tuple[str, ...]] = {
    "ease": ("l2", "min_item_ratings", "max_ease_items"),
    "itemknn": ("neighbours", "shrink"),
    "rp3beta": ("neighbours", "alpha", "beta"),
    "als": ("factors", "als_reg", "als_alpha", "als_iterations"),
    "popularity": (),
}
RANKERS: tuple[str, ...] = tuple(RANKER_PARAMS)

_BLOCK = 512  # titles per block when building neighbour matrices


def _top_k_columns(dense: np.ndarray, k: int) -> sp.csc_matrix:
    """Keep the ``k`` largest positive entries of each column of ``dense`` (sparse)."""
    n_rows, n_cols = dense.shape
    k = min(k, n_rows)
    if k <= 0 or n_cols == 0:
        return sp.csc_matrix((n_rows, n_cols), dtype=np.float32)
    idx = np.argpartition(-dense, k - 1, axis=0)[:k]
    vals = np.take_along_axis(dense, idx, axis=0)
    keep = vals > 0
    cols = np.broadcast_to(np.arange(n_cols), idx.shape)
    return sp.csc_matrix((vals[keep].astype(np.float32), (idx[keep], cols[keep])),
                         shape=(n_rows, n_cols))


class _Neighbours:
    """A sparse title x title weight matrix ``W`` (each row: a title's ``k`` best
    neighbours); scores ``x_u W``."""

    W: sp.csr_matrix

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray((rows @ self.W).toarray(), dtype=np.float64)

    def _build(self, left: sp.csr_matrix, right: sp.csr_matrix, k: int,
               column_scale: np.ndarray | None = None, norm: np.ndarray | None = None,
               shrink: float = 0.0) -> None:
        """Row ``i`` of ``W`` = the top ``k`` of ``left[i] @ right`` (no self-similarity),
        computed block by block of rows.

        ``norm``/``shrink``: cosine normalisation ``/ (n_i n_j + shrink)``;
        ``column_scale``: multiplies each column (RP3beta's popularity discount).
        """
        n = right.shape[1]
        left = left.tocsr()
        # titles nobody rated have no neighbours: only rated rows are computed (a catalog
        # is often mostly titles without ratings)
        active = np.flatnonzero(np.diff(left.indptr))
        rows, cols, vals = [], [], []
        for start in range(0, active.size, _BLOCK):
            idx = active[start:start + _BLOCK]
            sim = np.asarray((left[idx] @ right).toarray(), dtype=np.float64)
            if norm is not None:
                sim /= np.outer(norm[idx], norm) + shrink + 1e-12
            if column_scale is not None:
                sim *= column_scale
            sim[np.arange(idx.size), idx] = 0.0  # no self-similarity
            block = _top_k_columns(sim.T, k).tocoo()  # columns of sim.T = rows of sim
            rows.append(idx[block.col])
            cols.append(block.row)
            vals.append(block.data)
        if not rows:
            self.W = sp.csr_matrix((left.shape[0], n), dtype=np.float32)
            return
        self.W = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(left.shape[0], n), dtype=np.float32)


class ItemKNNRanker(_Neighbours):
    def __init__(self, neighbours: int, shrink: float) -> None:
        self.neighbours, self.shrink = int(neighbours), float(shrink)

    def fit(self, x: sp.csr_matrix, n_ratings: np.ndarray) -> ItemKNNRanker:
        xt = x.T.tocsr().astype(np.float64)
        norm = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel())
        self._build(xt, x.astype(np.float64).tocsc(), self.neighbours, norm=norm,
                    shrink=self.shrink)
        return self


class RP3betaRanker(_Neighbours):
    def __init__(self, neighbours: int, alpha: float, beta: float) -> None:
        self.neighbours, self.alpha, self.beta = int(neighbours), float(alpha), float(beta)

    def fit(self, x: sp.csr_matrix, n_ratings: np.ndarray) -> RP3betaRanker:
        b = x.copy().astype(np.float64)
        b.data = np.abs(b.data)  # a walk goes through every rated title, liked or not
        b.eliminate_zeros()
        p_ui = _row_normalise(b)
        p_iu = _row_normalise(b.T.tocsr())
        p_ui.data **= self.alpha
        p_iu.data **= self.alpha
        degree = np.asarray(b.sum(axis=0)).ravel()
        scale = np.zeros_like(degree)
        scale[degree > 0] = degree[degree > 0] ** -self.beta
        self._build(p_iu, p_ui, self.neighbours, column_scale=scale)
        return self


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.diags(1.0 / sums) @ m


class EaseRanker:
    def __init__(self, l2: float, min_item_ratings: int, max_ease_items: int) -> None:
        self.l2, self.min_item_ratings = float(l2), int(min_item_ratings)
        self.max_ease_items = int(max_ease_items)

    def fit(self, x: sp.csr_matrix, n_ratings: np.ndarray) -> EaseRanker:
        eligible = np.flatnonzero(n_ratings >= self.min_item_ratings)
        if eligible.size > self.max_ease_items:  # keep the most rated (stable order)
            order = np.argsort(-n_ratings[eligible], kind="stable")
            eligible = np.sort(eligible[order[: self.max_ease_items]])
        self.cols = eligible
        self.n_items = x.shape[1]
        sub = x[:, eligible].astype(np.float64)
        gram = (sub.T @ sub).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        inv = np.linalg.inv(gram) if eligible.size else gram
        b = -inv / np.diag(inv) if eligible.size else inv
        np.fill_diagonal(b, 0.0)
        # B is pickled as float16; rounding it here makes the in-memory model rank
        # exactly like the saved one
        self.B = b.astype(np.float16).astype(np.float32)
        return self

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        out = np.zeros((rows.shape[0], self.n_items), dtype=np.float64)
        if self.cols.size:
            ease = np.asarray(self._on_cols(rows) @ self.B, dtype=np.float64)
            # titles outside EASE have no score, not a score of 0: a user whose scores are
            # all negative would otherwise get the rarely rated titles first
            out[:] = ease.min(axis=1, keepdims=True)
            out[:, self.cols] = ease
        return out

    def _on_cols(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """``rows[:, cols]`` in float32, the same matrix (same order of entries, so the same
        product to the bit), by renumbering the entries: scipy's column indexing costs as
        much as the product itself for one user, and one user is what a request ranks."""
        col_of = self.col_of()
        if not rows.has_sorted_indices:
            rows = rows.sorted_indices()
        j = col_of[rows.indices]
        keep = j >= 0
        indptr = np.concatenate(([0], np.cumsum(keep)))[rows.indptr]
        return sp.csr_matrix((rows.data[keep].astype(np.float32), j[keep], indptr),
                             shape=(rows.shape[0], self.cols.size))

    def col_of(self) -> np.ndarray:
        """Each catalog position's column in ``B`` (-1: not a column)."""
        col_of = self.__dict__.get("_col_of")
        if col_of is None:  # derived, never pickled
            col_of = self._col_of = np.full(self.n_items, -1, dtype=np.int64)
            col_of[self.cols] = np.arange(self.cols.size)
        return col_of

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "_col_of"}
        return {**state, "B": self.B.astype(np.float16)}  # exact: rounded at fit

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.B = np.asarray(self.B, dtype=np.float32)


class ALSRanker:
    def __init__(self, factors: int, als_reg: float, als_alpha: float, als_iterations: int,
                 seed: int) -> None:
        self.factors, self.reg = int(factors), float(als_reg)
        self.alpha, self.iterations, self.seed = float(als_alpha), int(als_iterations), int(seed)

    def _confidence(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        c = rows.astype(np.float64).tocsr(copy=True)
        c.data = np.clip(c.data, 0.0, None)  # a disliked title is not a positive signal
        c.eliminate_zeros()
        return c

    def fit(self, x: sp.csr_matrix, n_ratings: np.ndarray) -> ALSRanker:
        from threadpoolctl import threadpool_limits

        with warnings.catch_warnings():
            # implicit imports tqdm.auto, which in a Jupyter kernel without ipywidgets
            # warns "IProgress not found. Please update jupyter and ipywidgets" into the
            # notebook (and the book); no progress bar is shown (show_progress=False).
            warnings.filterwarnings("ignore", message="IProgress not found")
            from implicit.cpu.als import AlternatingLeastSquares

        with threadpool_limits(1, "blas"):  # implicit's advice (it warns otherwise)
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.reg, alpha=self.alpha,
                iterations=self.iterations, random_state=self.seed, num_threads=1,
                calculate_training_loss=False)
            model.fit(self._confidence(x).astype(np.float32), show_progress=False)
        self.Y = np.asarray(model.item_factors, dtype=np.float64)
        self._yty = self.Y.T @ self.Y
        return self

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        """Fold each row in: ``(Y'Y + Y'(C-I)Y + reg I) p = Y'C 1`` over its rated titles."""
        c = self._confidence(rows)
        k = self.Y.shape[1]
        users = np.zeros((rows.shape[0], k))
        eye = self.reg * np.eye(k)
        for r in range(rows.shape[0]):
            idx = c.indices[c.indptr[r]:c.indptr[r + 1]]
            if idx.size == 0:
                continue
            conf = self.alpha * c.data[c.indptr[r]:c.indptr[r + 1]]
            y = self.Y[idx]
            a = self._yty + (y.T * conf) @ y + eye
            users[r] = np.linalg.solve(a, y.T @ (1.0 + conf))
        return users @ self.Y.T


class PopularityRanker:
    def fit(self, x: sp.csr_matrix, n_ratings: np.ndarray) -> PopularityRanker:
        self.pop = np.log1p(n_ratings.astype(np.float64))
        return self

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.pop, (rows.shape[0], self.pop.size)).copy()


def fit_ranker(params: Mapping[str, Any], x: sp.csr_matrix, n_ratings: np.ndarray,
               seed: int) -> Any:
    """The ranker ``params["ranker"]`` fitted on ``x`` (users x catalog titles)."""
    name = params["ranker"]
    p = {key: params[key] for key in RANKER_PARAMS[name]}
    ranker: Any
    if name == "ease":
        ranker = EaseRanker(**p)
    elif name == "itemknn":
        ranker = ItemKNNRanker(**p)
    elif name == "rp3beta":
        ranker = RP3betaRanker(**p)
    elif name == "als":
        ranker = ALSRanker(**p, seed=seed)
    else:
        ranker = PopularityRanker()
    return ranker.fit(x.tocsr(), n_ratings)
