"""The learned re-ranker: the ranker's best titles re-ordered by what the ranker misses.

The ranker (``rankers``) scores a user's history as a bag of titles. A logistic model over
each user's ``candidates`` best titles by the ranking score adds what that bag misses
(``FEATURES``): what users rate *next* (a sequential linear model of the user's latest
ratings in closed form, SLIT-style: Choi et al. 2021), how much a title was rated in the
month and the year before the user's time and how old it was then, and how these
interact with the user's activity. ``benchmarks/ranking_variants.py`` measures where the
gain comes from: from the served ranker's own scores alone, nothing; from the sequential
and time features, all of it.

**The order of a list.** The ``candidates`` best unrated titles by the ranking score
(over the whole catalog, whatever the request's filter), ordered by the re-ranker's score,
then every other title by the ranking score; a filter keeps its titles in that order. A
title's re-ranker score depends on the user and the title only, so a filtered list is the
unfiltered list filtered, as without a re-ranker (the precomputed lists stay exact).

**The user's time** is their latest training rating; a new user described by ratings in
a request (no times) is placed at the end of the training data, their ratings taken in the
order given (the last as the latest). The time windows are whole calendar months before
the month of that time, so no rating after it is counted.

**Who sets the weights.** ``evaluation.tune_ranking`` fits them on the validation labels
and keeps them only when weights fitted one window earlier gain on validation (out of
sample) with catalog coverage above the floor, with the smallest popularity penalty
(``with_popularity_penalty``) that keeps it (``evaluation.choose_reranker``); they are stored in ``ranking_params["rerank"]`` with the
sequential model's parameters, so a retrained model refits the two matrices and keeps the
weights. ``None`` (the default): no re-ranker.

**Cost** (``benchmarks/bench_rerank.py``, synthetic ratings fitted to MovieLens, 2 cores): at
1 M ratings (6,710 users, 6,000 ranked titles) the context fits in 31 s beside the ranker's
17 s and the fit peaks at 2.5 GB against 1.7 GB without it (the sequential model is a second
dense title x title matrix); top-10 for every user takes 2.4x as long, one request 1.2 ms
against 0.44 ms. Its sums run over blocks of ratings (``BLOCK_RATINGS``), so memory grows
with the titles, not with the ratings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize

from recsys_utils.ranking.catalog import top_positions, zscore_rows
from recsys_utils.ranking.rankers import EaseRanker

__all__ = ["FEATURES", "RerankContext", "check_rerank_params", "fit_context", "fit_weights",
           "candidate_features", "candidate_labels", "labelled_candidates", "rerank_scores",
           "sequential_input", "user_candidates",
           "with_popularity_penalty"]

#: The re-ranker's features, in the column order of ``candidate_features``.
FEATURES: tuple[str, ...] = (
    "ranking score", "log position", "ranker without recency", "sequential", "popularity",
    "bayesian average", "ratings in the month before", "ratings in the year before",
    "not yet rated", "title age", "user activity", "ranking x activity",
    "popularity x activity", "sequential x activity", "ranking x popularity")

#: The re-ranker's structure (what ``ranking_params["rerank"]`` holds besides the weights).
DEFAULT_STRUCTURE: dict[str, Any] = {
    "candidates": 200,   # titles re-ordered per user
    "window": 50,        # sequential model: the user's latest ratings it reads
    "decay": 10.0,       # ... the k-th latest weighted exp(-k / decay)
    "l2": 100.0,         # ... ridge penalty
    "fit_l2": 1e-3,      # the logistic fit's penalty on the standardised weights
}

#: Ratings per block of the sequential model's sums (each block's two sparse matrices
#: hold up to ``window`` entries per rating: 10 M at the default window, ~0.2 GB).
BLOCK_RATINGS = 200_000
#: Users whose candidates the weights are fitted on, at most (a seeded sample beyond):
#: 200 candidates x 15 features are 24 kB per user, 0.5 GB for 20,000 users.
MAX_FIT_USERS = 20_000
_SECONDS_PER_YEAR = 365 * 86400
_NEVER = np.iinfo(np.int64).max


def check_rerank_params(rerank: Any) -> None:
    """``ValueError`` unless ``rerank`` is ``None`` or a complete, matching weight set."""
    if rerank is None:
        return
    if not isinstance(rerank, Mapping):
        raise ValueError(f"rerank must be None or a mapping, got {type(rerank).__name__}")
    missing = {"features", "mean", "scale", "weights", "bias", *DEFAULT_STRUCTURE} - set(rerank)
    if missing:
        raise ValueError(f"rerank lacks {sorted(missing)}")
    if tuple(rerank["features"]) != FEATURES:
        raise ValueError(f"rerank was fitted on features {list(rerank['features'])}; this "
                         f"version computes {list(FEATURES)}: choose the ranking again")
    if not all(len(rerank[key]) == len(FEATURES) for key in ("mean", "scale", "weights")):
        raise ValueError("rerank's mean, scale and weights need one value per feature")


# =========================================================================== fitted context


class RerankContext:
    """What the features need beyond the ranker, fitted on the training ratings: the
    sequential model, each user's latest ratings as its input and their time, and each
    title's monthly rating counts and first rating time."""

    def __init__(self, sequential: EaseRanker, sources: sp.csr_matrix, user_time: np.ndarray,
                 first_time: np.ndarray, monthly: np.ndarray, first_month: int,
                 end_time: int, structure: Mapping[str, Any]) -> None:
        self.sequential, self.sources = sequential, sources
        self.user_time, self.first_time = user_time, first_time
        self.monthly, self.first_month, self.end_time = monthly, first_month, end_time
        self.window, self.decay = int(structure["window"]), float(structure["decay"])
        self.candidates = int(structure["candidates"])

    def ratings_before(self, times: np.ndarray, items: np.ndarray, months: int
                       ) -> np.ndarray:
        """Ratings of each title in the ``months`` whole months before the month of each
        time (titles outside the sequential model's columns: 0)."""
        col = self.sequential.col_of()[items]
        # monthly[:, m + 1]: ratings up to the end of month m (column 0: before the first)
        month = _month(times) - self.first_month  # the month of the time, not counted
        last = np.clip(month, 0, self.monthly.shape[1] - 1)
        first = np.clip(month - months, 0, self.monthly.shape[1] - 1)
        row = np.maximum(col, 0)
        return np.where(col >= 0, self.monthly[row, last] - self.monthly[row, first], 0)


def _month(seconds: np.ndarray) -> np.ndarray:
    """Months since year 0 of Unix times (in seconds)."""
    days = np.asarray(seconds, dtype="datetime64[s]").astype("datetime64[M]")
    return days.astype(np.int64) + 1970 * 12


def _ordered_ratings(model_df: pd.DataFrame, positions_of, user_ids: np.ndarray,
                     weights_of) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(user row, title position, weight, time)`` of every catalog rating, each user's in
    time order (ties by the table's order)."""
    df = model_df.sort_values(["user", "timestamp"], kind="mergesort")
    pos = positions_of(df["item"].astype(str))
    inside = pos >= 0
    df, pos = df[inside], pos[inside]
    users = np.searchsorted(user_ids, df["user"].to_numpy())
    times = pd.to_datetime(df["timestamp"]).to_numpy().astype("datetime64[s]").astype(np.int64)
    return users, pos, weights_of(df["score"].to_numpy(dtype=np.float64)), times


def _lagged(users: np.ndarray, cols: np.ndarray, weights: np.ndarray, rows: np.ndarray,
            lags: range, sign: int, decay: float, n_cols: int) -> sp.csr_matrix:
    """Row ``a`` (a rating's index in ``rows``): the ratings ``sign * lag`` steps from it by
    the same user, weighted ``exp(-(lag - first lag) / decay)``."""
    n = users.size
    r, c, v = [], [], []
    for lag in lags:
        a = rows[(rows - lag >= 0) if sign < 0 else (rows + lag < n)]
        b = a + sign * lag
        ok = (users[a] == users[b]) & (cols[b] >= 0)
        r.append(a[ok] - rows[0])  # rows are consecutive
        c.append(cols[b[ok]])
        v.append(weights[b[ok]] * np.exp(-(lag - lags.start) / decay))
    return sp.csr_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))),
                         shape=(rows.size, n_cols))


def sequential_input(rows: np.ndarray, pos: np.ndarray, weights: np.ndarray,
                     from_end: np.ndarray, shape: tuple[int, int], window: int,
                     decay: float) -> sp.csr_matrix:
    """The sequential model's input: each row's latest ``window`` ratings (``from_end``: 0
    for the latest), the ``k``-th latest weighted ``weight x exp(-k / decay)``."""
    recent = from_end < window
    return sp.csr_matrix((weights[recent] * np.exp(-from_end[recent] / decay),
                          (rows[recent], pos[recent])), shape=shape, dtype=np.float32)


def fit_context(rec: Any, model_df: pd.DataFrame, structure: Mapping[str, Any]
                ) -> RerankContext:
    """Fit the re-ranker's context on ``model_df`` for the fitted recommender ``rec`` (its
    catalog, users and ranker columns). The sequential model solves
    ``B = (S'S + l2 I)^-1 S'T`` over the ranker's titles: ``S`` = at each rating, the
    user's ``window`` latest ratings so far (the ``k``-th back weighted
    ``exp(-k / decay)``), ``T`` = the ``window`` ratings that follow. Accumulated over
    blocks of ratings, so memory grows with the titles, not with the ratings."""
    if "timestamp" not in model_df.columns:
        raise ValueError("the re-ranker needs rating times: the ratings have no timestamp")
    window, decay = int(structure["window"]), float(structure["decay"])
    users, pos, weights, times = _ordered_ratings(model_df, rec.catalog.index.get_indexer,
                                                  rec.user_ids, rec.interaction_weights)
    cols = rec._ease_cols
    # scored like EASE (a title x title B over the ranker's titles, float16 when pickled)
    sequential = EaseRanker(float(structure["l2"]), 0, cols.size)
    sequential.cols, sequential.n_items = cols, len(rec.item_ids)
    col = sequential.col_of()[pos]
    gram = np.zeros((cols.size, cols.size))
    cross = np.zeros((cols.size, cols.size))
    block = BLOCK_RATINGS
    for start in range(0, users.size, block):
        rows = np.arange(start, min(start + block, users.size))
        source = _lagged(users, col, weights, rows, range(window), -1, decay, cols.size)
        target = _lagged(users, col, weights, rows, range(1, window + 1), +1, decay,
                         cols.size)
        gram += (source.T @ source).toarray()
        cross += (source.T @ target).toarray()
    gram[np.diag_indices_from(gram)] += float(structure["l2"])
    b = np.linalg.solve(gram, cross) if cols.size else gram
    sequential.B = b.astype(np.float16).astype(np.float32)  # pickled as float16, as EASE's
    from_end = (pd.Series(np.arange(users.size)).groupby(users).transform("max").to_numpy()
                - np.arange(users.size))
    sources = sequential_input(users, pos, weights, from_end,
                               (len(rec.user_ids), len(rec.item_ids)), window, decay)
    end_time = int(times.max()) if times.size else 0
    user_time = np.full(len(rec.user_ids), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(user_time, users, times)
    user_time[user_time == np.iinfo(np.int64).min] = end_time  # no rating in the catalog
    first_time = np.full(len(rec.item_ids), _NEVER, dtype=np.int64)
    np.minimum.at(first_time, pos, times)
    months = _month(times) if times.size else np.zeros(0, dtype=np.int64)
    first_month = int(months.min()) if months.size else 0
    n_months = int(months.max()) - first_month + 1 if months.size else 1
    monthly = np.zeros((cols.size, n_months + 1), dtype=np.int64)
    np.add.at(monthly, (col[col >= 0], months[col >= 0] - first_month + 1), 1)
    return RerankContext(sequential, sources, user_time, first_time,
                         np.cumsum(monthly, axis=1).astype(np.int32), first_month, end_time,
                         structure)


# =========================================================================== features


def candidate_features(rec: Any, scores: np.ndarray, rows: np.ndarray | None = None,
                       new_user: tuple[sp.csr_matrix, sp.csr_matrix, int | None] | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(top, features, ok)`` of each row's ``candidates`` best titles by ``scores`` (the
    ranking scores, ``-inf`` where a title may not be a candidate): ``top`` rows x
    candidates (catalog positions), ``features`` one row per ``top`` entry (``FEATURES``),
    ``ok`` whether the entry is a real candidate. ``rows``: the known users' positions;
    ``new_user``: ``(weighted row, sequential input, time)`` of one user described by
    ratings, at ``time`` (seconds; ``None``: the end of the training data, a request's
    "now" for a model trained on the latest ratings)."""
    ctx: RerankContext = rec._rerank
    top, values = top_positions(scores, ctx.candidates)
    ok = np.isfinite(values)
    width = top.shape[1]
    if rows is not None:
        plain, source = rec._weights[rows], ctx.sources[rows]
        when = ctx.user_time[rows]
        activity = np.log1p(rec._user_counts[rows])
    else:
        plain, source, at = new_user
        when = np.array([ctx.end_time if at is None else at], dtype=np.int64)
        activity = np.log1p(np.array([new_user[0].nnz], dtype=np.float64))
    line = np.repeat(np.arange(top.shape[0]), width)
    items = top.ravel()
    ranking = np.where(ok, values, 0.0).ravel()
    plain_z = zscore_rows(rec._ease_scores(plain.astype(np.float32)))[line, items]
    sequential = zscore_rows(ctx.sequential.scores(source))[line, items]
    pop = np.log1p(rec.n_ratings[items].astype(np.float64))
    when = np.repeat(when, width)
    first = ctx.first_time[items]
    rated_yet = first <= when  # by anyone, by the user's time
    age = np.where(rated_yet, (when - np.minimum(first, when)) / _SECONDS_PER_YEAR, 0.0)
    active = np.repeat(activity, width)
    columns = [ranking, np.log1p(np.tile(np.arange(width, dtype=np.float64), top.shape[0])),
               plain_z, sequential, pop, rec._bayes[items],
               np.log1p(ctx.ratings_before(when, items, 1)),
               np.log1p(ctx.ratings_before(when, items, 12)),
               (~rated_yet).astype(np.float64), age, active,
               ranking * active, pop * active, sequential * active, ranking * pop]
    return top, np.column_stack(columns), ok


def fit_weights(features: np.ndarray, labels: np.ndarray, structure: Mapping[str, Any]
                ) -> dict[str, Any]:
    """Logistic weights of ``labels`` (1 = a relevant held-out title) on the standardised
    ``features`` (L-BFGS, L2 ``fit_l2`` on all but the bias): ``ranking_params["rerank"]``."""
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    z = (features - mean) / scale
    l2 = float(structure["fit_l2"])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        logit = z @ w[:-1] + w[-1]
        p = 1.0 / (1.0 + np.exp(-logit))
        value = -np.mean(labels * np.log(p + 1e-12) + (1 - labels) * np.log(1 - p + 1e-12))
        grad = np.append(z.T @ (p - labels), np.sum(p - labels)) / len(labels)
        grad[:-1] += 2 * l2 * w[:-1]
        return value + l2 * float(w[:-1] @ w[:-1]), grad

    w = minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B").x
    return {**DEFAULT_STRUCTURE, **{k: structure[k] for k in DEFAULT_STRUCTURE if k in structure},
            "features": list(FEATURES), "mean": mean.tolist(), "scale": scale.tolist(),
            "weights": w[:-1].tolist(), "bias": float(w[-1])}


def with_popularity_penalty(weights: Mapping[str, Any], penalty: float) -> dict[str, Any]:
    """``weights`` that also subtract ``penalty`` x the standardised popularity (more of the
    catalog reaches the lists, as the ranker's own ``pop_weight`` does)."""
    out = {**weights, "weights": list(weights["weights"]), "popularity_penalty": penalty}
    out["weights"][FEATURES.index("popularity")] -= penalty
    return out


def rerank_scores(rec: Any, scores: np.ndarray, rows: np.ndarray | None = None,
                  new_user: tuple[sp.csr_matrix, sp.csr_matrix, int | None] | None = None
                  ) -> np.ndarray:
    """``scores`` (rows x catalog, ``-inf`` for rated titles) with each row's candidates
    re-ordered by the re-ranker and lifted above every other title (see the module
    docstring); the others keep their ranking scores."""
    weights = rec.ranking_params["rerank"]
    top, features, ok = candidate_features(rec, scores, rows, new_user)
    z = (features - np.asarray(weights["mean"])) / np.asarray(weights["scale"])
    learned = (z @ np.asarray(weights["weights"]) + float(weights["bias"])).reshape(top.shape)
    line = np.repeat(np.arange(top.shape[0]), top.shape[1]).reshape(top.shape)
    rest = scores.copy()
    rest[line[ok], top[ok]] = -np.inf
    rest_best = rest.max(axis=1, initial=-np.inf)
    rest_best = np.where(np.isfinite(rest_best), rest_best, 0.0)
    lowest = np.where(ok, learned, np.inf).min(axis=1, initial=np.inf)
    lift = np.where(np.isfinite(lowest), rest_best - lowest + 1.0, 0.0)
    out = scores.copy()
    out[line[ok], top[ok]] = (learned + lift[:, None])[ok]
    return out


def user_candidates(rec: Any, rows: np.ndarray | None = None, batch_size: int = 256
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``candidate_features`` of the known users at positions ``rows`` (default: all), in
    blocks of ``batch_size``: ``(top, features, ok)`` stacked."""
    rows = np.arange(len(rec.user_ids)) if rows is None else np.asarray(rows)
    parts = [candidate_features(rec, rec._model_scores(block, rerank=False), block)
             for block in (rows[i:i + batch_size] for i in range(0, rows.size, batch_size))]
    return tuple(np.concatenate([part[k] for part in parts]) for k in range(3))


def labelled_candidates(rec: Any, relevant: Mapping[int, set],
                        max_users: int = MAX_FIT_USERS) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels (1: the title is among the user's ``relevant`` held-out titles)
    of the known users' candidates, what ``fit_weights`` learns from: every user's, or a
    sample of ``max_users`` (seeded by the recommender's seed) beyond that many."""
    rows = np.arange(len(rec.user_ids))
    if rows.size > max_users:
        rows = np.sort(np.random.default_rng(rec.seed).choice(rows, max_users, replace=False))
    top, features, ok = user_candidates(rec, rows)
    return features[ok.ravel()], candidate_labels(rec, top, relevant, rows)[ok]


def candidate_labels(rec: Any, top: np.ndarray, relevant: Mapping[int, set],
                     rows: np.ndarray | None = None) -> np.ndarray:
    """1.0 where a candidate (``top``: rows x candidates, catalog positions) is among its
    user's ``relevant`` titles; ``rows``: the users' positions (default: all)."""
    users = rec.user_ids if rows is None else rec.user_ids[rows]
    return np.array([[item in relevant.get(int(user), ()) for item in line]
                     for user, line in zip(users.tolist(), rec.item_ids[top], strict=True)],
                    dtype=np.float64)
