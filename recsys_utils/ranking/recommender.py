"""Top-N recommendations: the served ``Recommender`` and its ``Recommendations``.

What a recommendation is here. The **ranking** comes from an item ranker
(``rankers``: EASE, item-kNN, RP3beta, implicit ALS or popularity, ``ranker``) fitted on
``X``, the user x title matrix of weighted training interactions; the default and the
usual winner is EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse
Data"): ``B = argmin ||X - XB||^2 + l2 ||B||^2`` subject to ``diag(B) = 0`` has the
closed form ``B = I - P diag(1/diag(P))``, ``P = (X'X + l2 I)^-1``, and a user's scores
are ``x_u B``. The **displayed score** is the rating model's predicted rating (0.5..5),
so a user sees "you would rate this about 4.3" next to a list ordered for top-N accuracy.

Why not rank by the predicted rating (the first version's approach): a rating model answers "how
much would this user like this title *if* they watched it", and is most optimistic about
obscure titles with few, enthusiastic ratings; top-N quality asks "which titles will this
user watch and like". On the default data, ranking by the predicted rating alone scores
NDCG@10 *below* popularity (0.106 vs 0.113 on the time-aware split, 0.028 vs 0.067 on the
per-user last-20% split), while EASE beats popularity clearly (``04_evaluation``,
``benchmarks/bench_ranking.py --rating-ranking``).

The ranking score of title ``i`` for user ``u`` (all terms z-scored over the catalog so
the weights are comparable; ``ease_weight`` is the weight of whichever ranker)::

    ranking_score = ease_weight * z(ranker score)_i + pop_weight * z(log1p n_ratings)_i
                    + rating_weight * z(predicted rating)_i

* ``x_u`` weights each rated title by ``(score - 2.5) / 2.5`` (``weighting="score"``):
  a 5 counts fully, a 2.5 not at all, a 0.5 *against*; or 1 (``"binary"``). With
  ``recency > 0``, the user's ``k``-th latest rating is further multiplied by
  ``exp(-k / (recency * n_u))`` when the user is scored (the ranker is fitted on the
  unweighted rows).
* ``pop_weight < 0`` is a popularity *penalty*: it trades a little accuracy for much more
  catalog coverage (titles shown to at least one user).
* ``rating_weight`` blends the rating model in (with a non-zero weight each user costs
  one ``predict_items`` over the catalog).

With ``rerank`` set (weights of ``rerank.fit_weights``), each user's 200 best titles by
this ranking score are re-ordered by a learned re-ranker and come first (``rerank``: what
it reads, and why a filtered list is still the unfiltered list filtered).

Who sets them: ``03_modeling`` chooses the ranker and these parameters on validation data
of the data at hand (``evaluation.tune_ranking``) and registers the choice with the
champion; ``DEFAULT_RANKING_PARAMS`` is only the documented fallback when that choice is
switched off, and the values a grid does not vary.

Candidates are every catalog title the user has not rated; a title (``item_id``) is
available on every platform of its copies in ``titles``. Titles with fewer than
``min_item_ratings`` training ratings are left out of EASE (memory/speed: ``B`` is dense
``n x n``; such titles get the user's lowest EASE score and are still candidates, ordered
among themselves by content, ``content.ContentOrder``; other rankers leave out only titles
without any rating). Ties in the
ranking score (unclipped, so two titles predicted "5.0" are still ordered) are broken by
catalog order (``item_id`` ascending). ``B`` is rounded to float16 at fit (the in-memory
and the pickled model rank identically): 3,496 titles on the default data, 24 MB.

Unknown users get the cold-start list (``cold_start_list``): the best Bayesian averages
``(sum of scores + prior_count * global mean) / (n_ratings + prior_count)`` or the most rated
titles, within the filters. So does a user with fewer than ``personalise_from`` ratings (a
request's, or a known user's training ratings), without the titles they rated; with fewer
than ``rerank_from``, the personal list is not re-ranked. ``03_modeling`` chooses the three
on held-out new users (``new_users``). ``similar`` ranks titles by cosine similarity of
item factors from a truncated SVD (``n_factors``) of the same weighted interaction matrix.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils import DEFAULT_SEED
from recsys_utils.data.tables import check_columns
from recsys_utils.ranking.catalog import (
    COLD_START_LISTS,
    Catalog,
    CatalogView,
    bayesian_average,
    catalog_rows,
    cold_start_order,
    top_positions,
    top_valid,
    zscore_rows,
)
from recsys_utils.ranking.content import ORDER_SCALE, ContentOrder, title_features
from recsys_utils.ranking.rankers import RANKERS, EaseRanker, fit_ranker
from recsys_utils.ranking.rerank import (
    DEFAULT_STRUCTURE,
    check_rerank_params,
    fit_context,
    rerank_scores,
    sequential_input,
)

__all__ = [
    "DEFAULT_RANKING_PARAMS",
    "Recommendations",
    "Recommender",
    "STRATEGIES",
    "train_recommender",
]

#: Ways ``recommend_all`` can rank: the model and the baselines evaluated beside it.
STRATEGIES: tuple[str, ...] = ("model", "popularity", "random", "bayes", "rating")

#: The fallback ``ranking_params`` (see the module docstring; ``03_modeling`` chooses them).
DEFAULT_RANKING_PARAMS: dict[str, Any] = {
    "ranker": "ease",         # rankers.RANKERS: ease | itemknn | rp3beta | als | popularity
    "ease_weight": 1.0,       # weight of the ranker's score (named when EASE was the only one)
    "l2": 60.0,               # ease: ridge penalty
    "min_item_ratings": 5,    # ease: titles with fewer training ratings are left out (also similar())
    "max_ease_items": 6000,   # ease: and at most this many (the most rated): B is dense n x n
    "neighbours": 100,        # itemknn, rp3beta: neighbours kept per title
    "shrink": 10.0,           # itemknn: cosine shrinkage
    "alpha": 1.0,             # rp3beta: exponent of the transition probabilities
    "beta": 0.5,              # rp3beta: popularity discount exponent
    "factors": 64,            # als: latent factors
    "als_reg": 0.1,           # als: L2 regularisation
    "als_alpha": 10.0,        # als: confidence 1 + als_alpha * x
    "als_iterations": 15,     # als: sweeps
    "weighting": "score",     # "score": (score - score_center) / (5 - score_center); "binary"
    "score_center": 2.5,
    "recency": 0.0,           # a user's k-th latest rating counts exp(-k / (recency * n_u)); 0: off
    "pop_weight": -0.2,       # weight of z(log1p(n_ratings)); negative = popularity penalty
    "rating_weight": 0.0,     # weight of z(predicted rating)
    "prior_count": 10.0,      # Bayesian average of the cold-start list: pseudo-ratings at the mean
    "cold_start_list": "bayes",  # catalog.COLD_START_LISTS: bayes | popularity
    "personalise_from": 1,    # fewer ratings than this: the cold-start list (new_users.py)
    "rerank_from": 0,         # fewer ratings than this: no re-ranker
    "n_factors": 64,          # item factors (truncated SVD of X) for similar()
    "rerank": None,           # the learned re-ranker's weights (rerank.py); None: off
}


def _merge_ranking_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = {**DEFAULT_RANKING_PARAMS, **dict(params or {})}
    unknown = set(merged) - set(DEFAULT_RANKING_PARAMS)
    if unknown:
        raise ValueError(f"unknown ranking_params {sorted(unknown)}; "
                         f"valid: {sorted(DEFAULT_RANKING_PARAMS)}")
    if merged["ranker"] not in RANKERS:
        raise ValueError(f"ranker must be one of {list(RANKERS)}, got {merged['ranker']!r}")
    if merged["weighting"] not in ("score", "binary"):
        raise ValueError(f"weighting must be 'score' or 'binary', got {merged['weighting']!r}")
    if float(merged["l2"]) <= 0:
        raise ValueError(f"l2 must be positive, got {merged['l2']}")
    check_rerank_params(merged["rerank"])
    if merged["cold_start_list"] not in COLD_START_LISTS:
        raise ValueError(f"cold_start_list must be one of {list(COLD_START_LISTS)}, "
                         f"got {merged['cold_start_list']!r}")
    for key, least in (("personalise_from", 1), ("rerank_from", 0)):
        if int(merged[key]) != merged[key] or merged[key] < least:
            raise ValueError(f"{key} must be an integer >= {least}, got {merged[key]!r}")
        merged[key] = int(merged[key])
    return merged


@dataclass
class Recommendations:
    """A top-N answer.

    ``items`` columns: ``rank`` (1..n), ``item_id``, ``title``, ``platform`` (the first,
    in sorted order, of the title's platforms allowed by the filter), ``type``, ``score``
    (predicted rating 0.5..5, rounded to 3 decimals; the Bayesian average for a
    cold-start list) and ``ranking_score`` (what the list is ordered by).
    ``cold_start`` is True when the list is the cold-start list within the filter (the
    user is unknown, or has fewer ratings than ``personalise_from``), not a personal one.
    """

    user: int | None
    cold_start: bool
    items: pd.DataFrame = field(repr=False)

    def __len__(self) -> int:
        return len(self.items)


def _as_user(user: Any) -> int | None:
    """A user id as ``int`` when it is one, else ``None`` (an unknown, non-numeric id)."""
    try:
        return int(user)
    except (TypeError, ValueError):
        return None


def _randomized_left_vectors(x: sp.csr_matrix, k: int, seed: int, oversample: int = 10,
                             power_iterations: int = 2) -> np.ndarray:
    """The top ``k`` left singular vectors of ``x`` (rows x k), by a randomized SVD."""
    rng = np.random.default_rng(seed)
    width = min(k + oversample, min(x.shape))
    y = x @ rng.standard_normal((x.shape[1], width))
    q, _ = np.linalg.qr(y)
    for _ in range(power_iterations):  # sharpen the spectrum; re-orthonormalise each time
        q, _ = np.linalg.qr(x.T @ q)
        q, _ = np.linalg.qr(x @ q)
    small = np.asarray((x.T @ q).T)  # q' x, width x columns
    u_small, _, _ = np.linalg.svd(small, full_matrices=False)
    return q @ u_small[:, :k]


def _zscore(v: np.ndarray) -> np.ndarray:
    return zscore_rows(np.array(v, dtype=np.float64, ndmin=2))[0]


class Recommender(CatalogView):
    """The served recommender: a rating model for scores, EASE for the ranking.

    Args:
        rating_params: ``build_rating_model`` parameters (``None``: its defaults).
        ranking_params: overrides of ``DEFAULT_RANKING_PARAMS``.
        seed: seeds the rating model, the factor SVD and the random baseline.
        rating_model: an unfitted rating model to use instead of ``build_rating_model``
            (anything with ``fit(model_df)`` and ``predict_items(user, items, clip)``).
    """

    def __init__(self, rating_params: Mapping[str, Any] | None = None,
                 ranking_params: Mapping[str, Any] | None = None, seed: int = DEFAULT_SEED,
                 rating_model: Any = None) -> None:
        self.rating_params = dict(rating_params) if rating_params is not None else None
        self.ranking_params = _merge_ranking_params(ranking_params)
        self.seed = int(seed)
        self.rating_model = rating_model
        self._fitted = False
        self._rerank = None  # rerank.RerankContext when ranking_params['rerank'] is set

    # ================================================================== fitting
    def fit(self, model_df: pd.DataFrame, titles: pd.DataFrame) -> Recommender:
        """Fit the rating model and the ranking model on ``model_df`` for the ``titles`` catalog.

        ``model_df``: the model table (``user``, ``item``, ``score``); ``titles``: the
        processed titles table (``item_id``, ``platform``, ``type``, ``title``). Ratings of
        items outside the catalog train the rating model but are never recommended.
        """
        check_columns(model_df, ["user", "item", "score"], "the ratings to train on")
        check_columns(titles, ["item_id", "platform", "type", "title"], "the titles table")
        if self.rating_model is None:
            from recsys_utils.rating.blend import build_rating_model

            # titles feed the blend's content component (genres, release year)
            self.rating_model = build_rating_model(self.rating_params, seed=self.seed,
                                                   titles=titles)
        self.rating_model.fit(model_df)
        self.catalog = Catalog(titles)
        self._fit_interactions(model_df)
        self._fit_ranker(title_features(catalog_rows(titles)[1]))  # in catalog order
        self._rerank = (fit_context(self, model_df, self.ranking_params["rerank"])
                        if self.ranking_params["rerank"] else None)
        self._fit_factors()
        self._fitted = True
        return self

    def interaction_weights(self, scores: np.ndarray) -> np.ndarray:
        """What a rating of each score counts in the user's row (``weighting``)."""
        p = self.ranking_params
        if p["weighting"] == "score":
            center = float(p["score_center"])
            return (scores - center) / (5.0 - center)
        return np.ones_like(scores)

    def _fit_interactions(self, model_df: pd.DataFrame) -> None:
        """Training users, the rated-title matrix, counts, means and the Bayesian average."""
        df = model_df[["user", "item", "score"]]
        # a user's ratings from the latest (0) back: what the recency weighting reads
        recent = (model_df.groupby("user")["timestamp"].rank(method="first", ascending=False)
                  .to_numpy() - 1 if "timestamp" in model_df.columns
                  else np.zeros(len(model_df)))
        pos = self.catalog.index.get_indexer(df["item"].astype(str))
        inside = pos >= 0
        self.n_ratings_outside_catalog_ = int((~inside).sum())
        df, pos, recent = df[inside], pos[inside], recent[inside]
        self.user_ids: np.ndarray = np.sort(df["user"].unique())
        self._user_pos = {int(u): k for k, u in enumerate(self.user_ids.tolist())}
        upos = np.searchsorted(self.user_ids, df["user"].to_numpy())
        scores = df["score"].to_numpy(dtype=np.float64)
        n_items = len(self.item_ids)
        shape = (len(self.user_ids), n_items)
        p = self.ranking_params
        weights = self.interaction_weights(scores)
        # duplicates (a user rating a title twice) would be summed by the CSR constructor:
        # keep the user's last row for the title only, as the weight of one interaction
        last = ~pd.DataFrame({"u": upos, "i": pos}).duplicated(keep="last").to_numpy()
        upos, pos, scores, weights = upos[last], pos[last], scores[last], weights[last]
        self._recent = (upos, pos, weights, recent[last].astype(np.float64),
                        np.bincount(upos, minlength=len(self.user_ids))[upos].astype(np.float64))
        self._cold_orders: dict[str, np.ndarray] = {}  # cold_start_order's, per list
        self._rated = sp.csr_matrix((np.ones_like(weights, dtype=bool), (upos, pos)),
                                    shape=shape)
        self._user_counts = np.diff(self._rated.indptr)  # catalog titles each user rated
        self._weights = sp.csr_matrix((weights, (upos, pos)), shape=shape)
        self.n_ratings: np.ndarray = np.bincount(pos, minlength=n_items).astype(np.int64)
        sums = np.bincount(pos, weights=scores, minlength=n_items)
        self.global_mean = float(scores.mean()) if scores.size else 0.0
        self._bayes = bayesian_average(sums, self.n_ratings, float(p["prior_count"]))
        self._pop_z = _zscore(np.log1p(self.n_ratings))
        self._item_popularity = self.n_ratings / max(len(self.user_ids), 1)
        # the rating model's item baseline (an unknown user): what a new user starts from
        self._item_baseline = np.asarray(
            self.rating_model.predict_items(None, self.item_ids, clip=False), dtype=np.float64)

    def _fit_ranker(self, content: sp.csr_matrix) -> None:
        """The ranker (``rankers.fit_ranker``) on the weighted interactions; ``_ease_cols``:
        the titles with at least ``min_item_ratings`` ratings (at most ``max_ease_items``),
        the ones ``similar`` draws neighbours from; ``_content``: the order of the titles the
        ranker does not score, from their ``content`` features (``content.ContentOrder``)."""
        p = self.ranking_params
        eligible = np.flatnonzero(self.n_ratings >= int(p["min_item_ratings"]))
        if eligible.size > int(p["max_ease_items"]):  # keep the most rated (stable order)
            order = np.argsort(-self.n_ratings[eligible], kind="stable")
            eligible = np.sort(eligible[order[: int(p["max_ease_items"])]])
        self._ease_cols = eligible
        self._X = self._scoring_rows(float(p["recency"]))
        self._ranker = (fit_ranker(p, self._weights.tocsr().astype(np.float32), self.n_ratings,
                                   self.seed)
                        if float(p["ease_weight"]) != 0 else None)
        # the titles the ranker gives no score of its own: content orders them (content.py)
        unscored = (np.zeros(0, dtype=np.int64) if self._ranker is None else
                    np.setdiff1d(np.arange(len(self.item_ids)), eligible)
                    if p["ranker"] == "ease" else np.flatnonzero(self.n_ratings == 0))
        self._content = ContentOrder(content, unscored, self.n_ratings) if unscored.size else None
        if unscored.size:
            # they share the popularity of a title nobody rated: their own counts enter the
            # content order instead, so a popularity penalty cannot put the least rated first
            logs = np.log1p(self.n_ratings.astype(np.float64))
            self._pop_z[unscored] = -logs.mean() / (logs.std() or 1.0)

    def _scoring_rows(self, recency: float) -> sp.csr_matrix:
        """The users' rows the ranker scores: the weighted interactions, each user's
        ``k``-th latest rating (``k`` = 0 for the latest) multiplied by
        ``exp(-k / max(recency * n_u, 1))`` (``n_u``: the user's ratings). Recent tastes
        say more about what comes next; the ranker itself is fitted on unweighted rows."""
        if recency <= 0:
            return self._weights.tocsr().astype(np.float32)
        upos, pos, weights, recent, count = self._recent
        decay = np.exp(-recent / np.maximum(recency * count, 1.0))
        return sp.csr_matrix((weights * decay, (upos, pos)), shape=self._weights.shape,
                             dtype=np.float32)

    def _fit_factors(self) -> None:
        """Unit-norm item factors from a truncated SVD of the weighted interactions.

        A randomized SVD (Halko, Martinsson & Tropp 2011: a seeded Gaussian sketch, two
        power iterations) of the users x EASE-titles matrix: a fraction of a second where
        ARPACK's ``svds`` takes seconds, and deterministic for a seed.
        """
        x = self._weights.astype(np.float64).tocsr()
        sub = x[:, self._ease_cols]
        k = min(int(self.ranking_params["n_factors"]), min(sub.shape) - 1)
        self._factors = np.zeros((len(self.item_ids), max(k, 0)), dtype=np.float32)
        if k < 1:
            return
        u = _randomized_left_vectors(sub, k, self.seed)
        # every rated title is placed by its users: q_i = x_i' U (= V_i S for EASE titles)
        q = np.asarray(x.T @ u)
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        self._factors = (q / norms).astype(np.float32)

    # ================================================================== state
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_recent", None)  # only with_ranking(recency=...) needs it (tuning)
        state.pop("_rating_cache", None)
        state.pop("_cold_orders", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "catalog" not in state and "_availability" in state:  # saved before Catalog
            state = dict(state)
            state["catalog"] = Catalog.from_arrays(
                state.pop("item_ids"), state.pop("_titles"), state.pop("_types"),
                state.pop("platforms"), state.pop("_availability"))
            for derived in ("_item_index", "_filter_cache"):
                state.pop(derived, None)
        self.__dict__.update(state)
        self.__dict__.setdefault("_rerank", None)  # saved before the re-ranker existed
        self.__dict__.setdefault("_content", None)  # saved before content ordered unscored titles
        if "_rated" in state and "_user_counts" not in state:  # saved before the policy
            self._user_counts = np.diff(self._rated.indptr)
        if "_B" in state:  # saved before rankers existed: EASE's B over _ease_cols
            ranker = EaseRanker(self.ranking_params["l2"], self.ranking_params["min_item_ratings"],
                                self.ranking_params["max_ease_items"])
            ranker.cols, ranker.n_items = self._ease_cols, len(self.item_ids)
            ranker.B = np.asarray(self.__dict__.pop("_B"), dtype=np.float32)
            self._ranker = ranker
            self._X = self._weights.tocsr().astype(np.float32)
        # saved before a parameter existed: its default is how that model behaves
        self.ranking_params = {**DEFAULT_RANKING_PARAMS, **self.ranking_params}
        if getattr(self, "_fitted", False):
            self._user_pos = {int(u): k for k, u in enumerate(self.user_ids.tolist())}

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("Recommender is not fitted; call fit() first")

    def with_ranking(self, **changes: Any) -> Recommender:
        """A copy with other blend weights (``ease_weight``, ``pop_weight``,
        ``rating_weight``), ``recency`` or new-user policy (``cold_start_list``,
        ``personalise_from``, ``rerank_from``), sharing the fitted ranker (no refit; for
        tuning on a freshly fitted recommender)."""
        allowed = {"ease_weight", "pop_weight", "rating_weight", "recency", "cold_start_list",
                   "personalise_from", "rerank_from"}
        bad = set(changes) - allowed
        if bad:
            raise ValueError(f"with_ranking changes only {sorted(allowed)}, got {sorted(bad)}")
        if changes.get("ease_weight", 1.0) != 0 and self._ranker is None:
            raise ValueError("the ranker was not fitted (ease_weight=0); refit to use it")
        other = copy.copy(self)
        other.ranking_params = _merge_ranking_params({**self.ranking_params, **changes})
        if changes.get("recency", self.ranking_params["recency"]) != self.ranking_params["recency"]:
            other._X = self._scoring_rows(float(changes["recency"]))
        return other

    def fit_rerank_context(self, model_df: pd.DataFrame,
                           structure: Mapping[str, Any] | None = None) -> Recommender:
        """Fit what a re-ranker reads (``rerank.fit_context``) on ``model_df``, the ratings
        this recommender was fitted on, without weights yet (for choosing them); returns
        ``self``."""
        self._check_fitted()
        self._rerank = fit_context(self, model_df, structure or DEFAULT_STRUCTURE)
        return self

    def with_reranker(self, weights: Mapping[str, Any] | None) -> Recommender:
        """A copy re-ranking with ``weights`` (``rerank.fit_weights``; ``None``: off),
        sharing the fitted ranker and re-ranker context (``fit_rerank_context``)."""
        if weights is not None and self._rerank is None:
            raise ValueError("with_reranker needs the re-ranker's context: call "
                             "fit_rerank_context first")
        other = copy.copy(self)
        other.ranking_params = _merge_ranking_params({**self.ranking_params,
                                                      "rerank": weights})
        return other

    # ================================================================== lookups
    def known_user(self, user: int) -> bool:
        """Whether ``user`` rated at least one catalog title in the training data."""
        self._check_fitted()
        try:
            return int(user) in self._user_pos
        except (TypeError, ValueError):
            return False

    def personal(self, n_ratings: int | np.ndarray) -> bool | np.ndarray:
        """Whether a user with ``n_ratings`` ratings gets a personal list (``personalise_from``)."""
        return np.asarray(n_ratings) >= self.ranking_params["personalise_from"]

    def personal_user(self, user: int) -> bool:
        """Whether known ``user`` has enough training ratings for a personal list."""
        return bool(self.personal(self._user_counts[self._user_pos[int(user)]]))

    def cold_start_order(self) -> np.ndarray:
        """What the cold-start list ranks every catalog title by (``cold_start_list``);
        computed once per list (a copy made by ``with_ranking`` shares the cache)."""
        by = self.ranking_params["cold_start_list"]
        cache = self.__dict__.setdefault("_cold_orders", {})
        if by not in cache:
            cache[by] = cold_start_order(self._bayes, self.n_ratings, by)
        return cache[by]

    def candidate_mask(self, platforms: Sequence[str] | None = None,
                       kind: str | None = None) -> np.ndarray:
        """Boolean mask over ``item_ids``: titles on any of ``platforms`` and of ``kind``
        (``Catalog.mask``: ``UnknownFilterError`` for an unknown value)."""
        self._check_fitted()
        return self.catalog.mask(platforms, kind)

    # ================================================================== scoring
    def _ease_scores(self, weights: sp.csr_matrix) -> np.ndarray:
        """The ranker's raw scores of users (rows of the weighted interactions) on the
        whole catalog (zeros when the ranker is off)."""
        if self._ranker is None or self.ranking_params["ease_weight"] == 0:
            return np.zeros((weights.shape[0], len(self.item_ids)), dtype=np.float64)
        return self._ranker.scores(weights)

    def _blend(self, rows: sp.csr_matrix, rating: np.ndarray | None) -> np.ndarray:
        """The ranking score of users (``rows``: their weighted ratings) from the ranker's
        raw scores and predicted ratings; the titles the ranker does not score, ordered
        among themselves by content (``content.ContentOrder``)."""
        p = self.ranking_params
        s = zscore_rows(self._ease_scores(rows)) * float(p["ease_weight"])
        if self._content is not None:
            s[:, self._content.unscored] += ORDER_SCALE * self._content(rows)
        if p["pop_weight"]:
            s += float(p["pop_weight"]) * self._pop_z
        if p["rating_weight"] and rating is not None:
            s += float(p["rating_weight"]) * zscore_rows(np.array(rating, dtype=np.float64))
        return s

    def _rating_rows(self, users: Sequence[int]) -> np.ndarray:
        """Unclipped predicted ratings of every catalog title for ``users`` (one call each)."""
        return np.vstack([self.rating_model.predict_items(int(u), self.item_ids, clip=False)
                          for u in users])

    def ranking_scores(self, user: int) -> np.ndarray:
        """The ranking score of every catalog title (``item_ids`` order) for a known user."""
        self._check_fitted()
        return self._blended_rows(np.array([self._user_pos[int(user)]]))[0]

    def _blended_rows(self, rows: np.ndarray) -> np.ndarray:
        """The ranking score (``_blend``) of the known users at positions ``rows``."""
        rating = (self._rating_rows(self.user_ids[rows]) if self.ranking_params["rating_weight"]
                  else None)
        return self._blend(self._X[rows], rating)

    def _clip(self, est: np.ndarray) -> np.ndarray:
        return np.clip(est, 0.5, 5.0)

    # ================================================================== public API
    def recommend(self, user: int, n: int = 10, platforms: Sequence[str] | None = None,
                  kind: str | None = None) -> Recommendations:
        """Top ``n`` unrated titles for ``user`` within the filters.

        An unknown user gets the cold-start list (``cold_start=True``, ``cold_start_list``)
        within the filters; a known user with fewer than ``personalise_from`` ratings too,
        without the titles they rated.
        """
        self._check_fitted()
        valid = self.candidate_mask(platforms, kind)
        if not self.known_user(user):
            return self._cold_start(_as_user(user), n, valid, platforms)
        if not self.personal_user(user):
            return self._cold_start(int(user), n, self._unrated(int(user), valid), platforms)
        top, scores = self._rank_known(int(user), n, valid)
        pred = self.rating_model.predict_items(int(user), self.item_ids[top], clip=True)
        return Recommendations(user=int(user), cold_start=False,
                               items=self.catalog.frame(top, pred, scores[top], platforms))

    def top_items(self, user: int, n: int = 10, platforms: Sequence[str] | None = None,
                  kind: str | None = None) -> list[str]:
        """The item ids ``recommend`` would list, without predicted ratings or a DataFrame
        (the ranking alone: what batch jobs and the benchmark's latency figure need)."""
        self._check_fitted()
        valid = self.candidate_mask(platforms, kind)
        if not self.known_user(user):
            top = top_valid(self.cold_start_order(), valid, n)
        else:
            top, _ = self._rank_known(int(user), n, valid)
        return self.item_ids[top].tolist()

    def _rank_known(self, user: int, n: int, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top positions and the full ranking-score vector of a known user (the cold-start
        order without their rated titles when they have too few ratings)."""
        scores = self._model_scores(np.array([self._user_pos[user]]), rerank=True)[0]
        top = top_valid(scores, valid, n)
        return top, scores

    def _unrated(self, user: int, valid: np.ndarray) -> np.ndarray:
        """``valid`` without the titles known ``user`` rated."""
        out = valid.copy()
        out[self._rated[self._user_pos[user]].indices] = False
        return out

    def _cold_start(self, user: int | None, n: int, valid: np.ndarray,
                    platforms: Sequence[str] | None) -> Recommendations:
        """The cold-start list among ``valid`` titles; the displayed score is the Bayesian
        average whichever list it is."""
        order = self.cold_start_order()
        top = top_valid(order, valid, n)
        return Recommendations(user=user, cold_start=True,
                               items=self.catalog.frame(top, self._bayes[top], order[top],
                                                        platforms))

    def recommend_for_ratings(self, ratings: Mapping[str, float], n: int = 10,
                              platforms: Sequence[str] | None = None,
                              kind: str | None = None, at: Any = None) -> Recommendations:
        """Top ``n`` for a new user described by a few ``{item_id: score}`` ratings.

        EASE needs no refit: the new user's row ``x`` gives ``x B`` directly. The
        predicted rating is the rating model's item baseline plus the user's mean
        residual on the rated titles, shrunk towards 0 by 5 pseudo-ratings. Fewer ratings
        than ``personalise_from`` (none, by default): the cold-start list without the rated
        titles; fewer than ``rerank_from``: not re-ranked. ``at``: the time of the request
        (what ``pd.Timestamp`` reads), which the re-ranker's time features read; ``None``:
        the end of the training data. Unknown ``item_id`` -> ``UnknownItemError``.
        """
        top, ranking, pred = self._rank_ratings(ratings, n, self.candidate_mask(platforms, kind),
                                                at)
        if pred is None:
            return Recommendations(user=None, cold_start=True, items=self.catalog.frame(
                top, self._bayes[top], ranking[top], platforms))
        return Recommendations(user=None, cold_start=False,
                               items=self.catalog.frame(top, self._clip(pred[top]),
                                                        ranking[top], platforms))

    def top_items_for_ratings(self, ratings: Mapping[str, float], n: int = 10,
                              at: Any = None) -> list[str]:
        """The item ids ``recommend_for_ratings`` would list, unfiltered, without a
        DataFrame (what the choice of the new-user policy scores thousands of)."""
        top, _, _ = self._rank_ratings(ratings, n, self.candidate_mask(None, None), at)
        return self.item_ids[top].tolist()

    def _rank_ratings(self, ratings: Mapping[str, float], n: int, valid: np.ndarray,
                      at: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(top positions, ranking scores, predicted ratings)`` of a new user's request;
        the predicted ratings are ``None`` when the list is the cold-start list."""
        self._check_fitted()
        pos = self.catalog.positions(ratings) if ratings else np.zeros(0, dtype=np.int64)
        if not self.personal(pos.size):
            valid = valid.copy()
            valid[pos] = False
            order = self.cold_start_order()
            return top_valid(order, valid, n), order, None
        scores = np.array([float(s) for s in ratings.values()], dtype=np.float64)
        w = self.interaction_weights(scores)
        row = sp.csr_matrix((w, (np.zeros(pos.size, dtype=np.int64), pos)),
                            shape=(1, len(self.item_ids)), dtype=np.float32)
        offset = float(np.sum(scores - self._item_baseline[pos]) / (len(pos) + 5.0))
        pred = self._item_baseline + offset
        ranking = self._blend(row, pred[None, :])
        ranking[0, pos] = -np.inf  # rated: never a candidate
        if self.ranking_params["rerank"] and pos.size >= self.ranking_params["rerank_from"]:
            when = None if at is None else int(pd.Timestamp(at).value // 10**9)
            ranking = rerank_scores(self, ranking,
                                    new_user=(row, self._sequence_row(w, pos), when))
        ranking = ranking[0]
        return top_valid(ranking, valid, n), ranking, pred

    def _sequence_row(self, weights: np.ndarray, pos: np.ndarray) -> sp.csr_matrix:
        """The re-ranker's sequential input for ratings given in order (the last = latest)."""
        return sequential_input(np.zeros(pos.size, dtype=np.int64), pos, weights,
                                np.arange(pos.size)[::-1], (1, len(self.item_ids)),
                                self._rerank.window, self._rerank.decay)

    def similar(self, item_id: str, n: int = 10) -> pd.DataFrame:
        """The ``n`` titles closest to ``item_id`` by cosine similarity of item factors.

        Columns ``item_id, title, platform, similarity, basis``. Neighbours are drawn from
        the titles with at least ``min_item_ratings`` ratings (factors of rarer titles are
        noise). A title nobody rated has no factors: its neighbours are the titles closest
        in content (``content.ContentOrder.similar``, ``basis`` ``content``), or none when
        the model has no content features (saved before them).
        """
        self._check_fitted()
        pos = int(self.catalog.positions([item_id])[0])
        q = self._factors[pos] if self._factors.shape[1] else np.zeros(0, dtype=np.float32)
        if q.size == 0 or not np.any(q):
            if self._content is None:
                return self.catalog.similar_frame(np.zeros(0, dtype=np.int64), np.zeros(0))
            top, sims = self._content.similar(pos, n)
            return self.catalog.similar_frame(top, sims, basis="content")
        cand = self._ease_cols[self._ease_cols != pos]
        sims = self._factors[cand] @ q
        top = cand[top_valid(sims.astype(np.float64), np.ones(cand.size, dtype=bool), n)]
        return self.catalog.similar_frame(top, self._factors[top] @ q)

    def predict(self, user: int, item_id: str) -> float:
        """Predicted rating (0.5..5) of ``item_id`` by ``user`` (unknown user: item baseline)."""
        self._check_fitted()
        self.catalog.positions([item_id])
        return float(self.rating_model.predict_items(
            int(user), np.array([str(item_id)], dtype=object), clip=True)[0])

    def predict_items(self, user: int, items: Sequence[str] | np.ndarray,
                      clip: bool = True) -> np.ndarray:
        """Predicted ratings of many titles for one user (the rating model, vectorized)."""
        self._check_fitted()
        return np.asarray(self.rating_model.predict_items(
            int(user), np.asarray(list(items), dtype=object), clip=clip), dtype=np.float64)

    # ================================================================== batch
    def recommend_all(self, n: int = 10, platforms: Sequence[str] | None = None,
                      kind: str | None = None, users: Sequence[int] | None = None,
                      strategy: str = "model", seed: int | None = None,
                      batch_size: int = 256) -> dict[int, list[str]]:
        """Top-``n`` item ids for many known users at once (batch matrix products).

        ``users``: known users (default: all training users; unknown ones are skipped).
        ``strategy`` ranks the same candidates (unrated titles within the filters) by
        ``model`` (the ranking score; the cold-start order for users with fewer than
        ``personalise_from`` ratings), ``popularity`` (training ratings count),
        ``random`` (seeded by ``seed``, default the recommender's), ``bayes`` (the
        cold-start Bayesian average) or ``rating`` (the predicted rating alone, unclipped:
        the first version's approach; one ``predict_items`` per user, slow).
        """
        self._check_fitted()
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; valid: {list(STRATEGIES)}")
        valid = self.candidate_mask(platforms, kind)
        if users is None:
            rows = np.arange(len(self.user_ids))
        else:
            rows = np.array([self._user_pos[int(u)] for u in users if self.known_user(u)],
                            dtype=np.int64)
        rng = np.random.default_rng(self.seed if seed is None else seed)
        out: dict[int, list[str]] = {}
        n_items = len(self.item_ids)
        for start in range(0, rows.size, batch_size):
            block = rows[start:start + batch_size]
            ids = self.user_ids[block]
            if strategy == "model":
                scores = self._model_scores(block, rerank=True)
            elif strategy == "popularity":
                scores = np.broadcast_to(self.n_ratings.astype(np.float64), (block.size, n_items))
            elif strategy == "bayes":
                scores = np.broadcast_to(self._bayes, (block.size, n_items))
            elif strategy == "random":
                scores = rng.random((block.size, n_items))
            else:  # rating
                scores = self._rating_rows(ids)
            scores = np.where(valid, scores, -np.inf)
            rated = self._rated[block].tocoo()
            scores[rated.row, rated.col] = -np.inf
            out.update(self._top_rows(scores, ids, n))
        return out

    def _model_scores(self, rows: np.ndarray, rerank: bool) -> np.ndarray:
        """Ranking scores of known users (positions ``rows``) over the catalog, ``-inf`` for
        the titles they rated; with ``rerank`` and a re-ranker, re-ordered by it for the
        users with at least ``rerank_from`` ratings; the cold-start order for those with
        fewer than ``personalise_from``."""
        scores = self._blended_rows(rows)
        rated = self._rated[rows].tocoo()
        scores[rated.row, rated.col] = -np.inf
        counts = self._user_counts[rows]
        if rerank and self.ranking_params["rerank"]:
            on = counts >= self.ranking_params["rerank_from"]
            if on.all():
                scores = rerank_scores(self, scores, rows=rows)
            elif on.any():
                scores[on] = rerank_scores(self, scores[on], rows=rows[on])
        cold = ~self.personal(counts)
        if cold.any():
            scores[cold] = self.cold_start_order()
            scores[rated.row[cold[rated.row]], rated.col[cold[rated.row]]] = -np.inf
        return scores

    def _top_rows(self, scores: np.ndarray, ids: np.ndarray, n: int) -> dict[int, list[str]]:
        """Row-wise top ``n`` finite scores, ties broken by catalog position (vectorized)."""
        pos, vals = top_positions(scores, n)
        finite = np.isfinite(vals)
        return {int(u): self.item_ids[pos[r][finite[r]]].tolist()
                for r, u in enumerate(ids.tolist())}

    def __repr__(self) -> str:
        state = "fitted" if self._fitted else "unfitted"
        return f"Recommender({state}, ranking_params={self.ranking_params})"


def train_recommender(model_df: pd.DataFrame, titles: pd.DataFrame,
                      rating_params: Mapping[str, Any] | None = None,
                      ranking_params: Mapping[str, Any] | None = None,
                      seed: int = DEFAULT_SEED) -> Recommender:
    """A fitted ``Recommender`` (rating model from ``blend.build_rating_model``)."""
    return Recommender(rating_params, ranking_params, seed=seed).fit(model_df, titles)
