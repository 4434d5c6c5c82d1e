"""A ridge blend of rating predictors, fitted on held-out ratings: ``BlendedRatingModel``.

Why a blend: the components err differently. Matrix factorization captures global
taste dimensions, item-item neighbours capture "people who liked X liked Y" locally,
user-user neighbours the opposite view, and the content model a user's taste for genres
and eras, which still speaks for titles too rarely rated for the others. A linear
combination of their predictions beats each of them (5-fold CV on MovieLens: 0.842 vs
0.860 for the best component). Why meta-features: how much to trust each component depends on how much
data backs the prediction (a user with 20 ratings vs 2,000; an item whose neighbours are
many and similar vs few and weak), so the blend also sees each prediction multiplied by
log user/item support and the neighbour term weighted by its similarity mass, which lets
the weights vary with support ("feature-weighted linear stacking", Sill et al. 2009).

Why held-out: blend weights fitted on ratings the components were trained on would
reward over-fitting components. ``fit`` therefore holds out a random share of the
training ratings, fits the components on the rest, fits the ridge on the held-out
predictions only, then refits every component on all the training ratings.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from surprise import Trainset

from recsys_utils import DEFAULT_SEED
from recsys_utils.rating.adapter import (
    BatchPredictions,
    TrainIndex,
    _build_trainset,
    as_trainset,
    rmse_mae,
    trainset_triples,
)
from recsys_utils.rating.predictors import (
    COMPONENTS,
    KNNBaselineComponent,
    SurpriseComponent,
    item_content,
    make_component,
)

__all__ = [
    "DEFAULT_COMPONENTS",
    "cv_table",
    "DEFAULT_RATING_PARAMS",
    "BlendedRatingModel",
    "build_rating_model",
    "component_features",
    "excluded_components",
    "ITEM_NEIGHBOURS_MAX_ITEMS",
    "USER_NEIGHBOURS_MAX_USERS",
]

_BSL = {"method": "als", "reg_i": 5, "reg_u": 5, "n_epochs": 20}

#: Default components and their parameters. ``baseline`` and ``svd``: the best points of
#: the full tuning grids (``recsys_utils.rating.tuning``; SVD with 50 rather than 80 epochs:
#: 0.001 worse alone, 40% cheaper). ``knn_item``: surprise's defaults plus the baseline
#: below, within 0.0003 of the best grid point (k=100, shrinkage=200) at a third of the
#: cost. ``content`` and the KNNs keep the more regularised baseline (``_BSL``): with the
#: tuned one (reg 2) the blend is 0.0014 worse. ``content`` needs the titles table.
DEFAULT_COMPONENTS: dict[str, dict[str, Any]] = {
    "baseline": {"bsl_options": {"method": "als", "reg_i": 2, "reg_u": 2, "n_epochs": 20}},
    "content": {"reg": 5.0, "genres": True, "decades": True, "bsl_options": _BSL},
    "svd": {"n_factors": 100, "n_epochs": 50, "lr_all": 0.01, "reg_all": 0.12},
    "knn_item": {"k": 40, "sim_options": {"name": "pearson_baseline", "shrinkage": 100},
                 "bsl_options": _BSL},
    "knn_user": {"k": 40, "sim_options": {"name": "pearson_baseline", "shrinkage": 100}},
}

#: The exclusion rule for large data: a neighbour component (``knn_user``, ``knn_item``)
#: without a ``max_neighbours`` bound is left out of the blend when the training data has
#: more users (user-based) or titles (item-based) than these. Its exact similarity matrix
#: has an entry for most pairs (``benchmarks/bench_neighbours.py``, synthetic data, 100
#: ratings per user: user-user 5.8 M entries at 5 k users, x4 per doubling; item-item
#: 19.7 M entries at 15 k titles / 1 M ratings). With ``max_neighbours`` set
#: (``predictors.pearson_baseline_sparse`` keeps ~ n x max_neighbours entries: 1.0 M at
#: 5 k users, 0.9 GB peak at 15 k titles) it stays in; the user-based one's time still
#: grows with users^2.
#: The embedded default (671 users, 9,061 titles) stays below both limits.
USER_NEIGHBOURS_MAX_USERS = 5_000
ITEM_NEIGHBOURS_MAX_ITEMS = 10_000


def excluded_components(components: dict[str, dict[str, Any]], n_users: int,
                        n_items: int = 0) -> dict[str, str]:
    """``name → reason`` for the components the exclusion rule leaves out."""
    out = {}
    for name, params in components.items():
        if COMPONENTS.get(name) is not KNNBaselineComponent or \
                params.get("max_neighbours") is not None:
            continue
        user_based = name == "knn_user" or bool(
            (params.get("sim_options") or {}).get("user_based", False))
        n, limit, what = ((n_users, USER_NEIGHBOURS_MAX_USERS, "users") if user_based
                          else (n_items, ITEM_NEIGHBOURS_MAX_ITEMS, "titles"))
        if n > limit:
            out[name] = (f"neighbours without max_neighbours and {n:,} {what} > {limit:,} "
                         f"(memory ~ {what}^2)")
    return out


#: Default ``rating_params`` for ``build_rating_model`` (what ``03_modeling`` registers).
DEFAULT_RATING_PARAMS: dict[str, Any] = {
    "components": DEFAULT_COMPONENTS,
    "holdout": 0.2,
    "alpha": 1.0,
    "meta": True,
}


def component_features(outputs: dict[str, dict[str, np.ndarray]], log_nu: np.ndarray,
                       log_ni: np.ndarray, meta: bool = True) -> tuple[np.ndarray, list[str]]:
    """The blend's design matrix from component outputs for a batch of pairs.

    ``outputs[name]`` holds ``pred`` (unclipped estimate) and, for KNN components,
    ``term`` (neighbour term), ``sum_w`` and ``count`` (``estimate_with_stats``).
    ``log_nu``/``log_ni``: ``log1p`` of the user's / item's number of training ratings.
    With ``meta``: supports, predictions times supports, and the neighbour term times
    ``log1p`` of its similarity mass. Returns the matrix and the column names.
    """
    cols: list[np.ndarray] = []
    names: list[str] = []
    for name, out in outputs.items():
        cols.append(out["pred"])
        names.append(name)
    if meta:
        cols += [log_nu, log_ni]
        names += ["log_n_user", "log_n_item"]
        for name, out in outputs.items():
            cols += [out["pred"] * log_nu, out["pred"] * log_ni]
            names += [f"{name}*log_n_user", f"{name}*log_n_item"]
            if "term" in out:
                cols.append(out["term"] * np.log1p(out["sum_w"]))
                names.append(f"{name}_term*log_sum_sim")
    return np.column_stack(cols), names


class _Ridge:
    """Ridge regression on standardized features, closed form (numpy only)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = float(alpha)

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Ridge:
        self.mean_ = x.mean(axis=0)
        self.scale_ = x.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        z = (x - self.mean_) / self.scale_
        gram = z.T @ z + self.alpha * np.eye(z.shape[1])
        self.coef_ = np.linalg.solve(gram, z.T @ (y - y.mean()))
        self.intercept_ = float(y.mean())  # z is centred, so the intercept is the mean
        return self

    @classmethod
    def only(cls, names: list[str], feature: str) -> _Ridge:
        """The fit that predicts ``feature`` unchanged (weight 1, every other 0)."""
        ridge = cls(0.0)
        ridge.mean_, ridge.scale_ = np.zeros(len(names)), np.ones(len(names))
        ridge.coef_ = (np.array(names) == feature).astype(np.float64)
        ridge.intercept_ = 0.0
        return ridge

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_


class BlendedRatingModel(BatchPredictions):
    """Ridge blend of vectorized surprise components (see the module docstring).

    Args:
        components: component name -> parameters (names of ``models.make_component``:
            ``baseline``, ``svd``, ``svdpp``, ``knn_item``, ``knn_user``). Must include
            ``baseline`` (the fallback for unknown users/items).
        holdout: share of the training ratings held out to fit the blend weights.
        alpha: ridge penalty on standardized features.
        meta: add the support meta-features (``component_features``).
        seed: seeds the holdout draw and the SGD components (``random_state``).
        titles: the processed titles table; required by the ``content`` component
            (genres and release decade per ``item_id``).

    Unknown user or item: the prediction is the baseline component's, i.e. surprise's
    own fallback (global mean plus whichever bias is known), like every component.
    """

    def __init__(self, components: dict[str, dict[str, Any]] | None = None,
                 holdout: float = 0.2, alpha: float = 1.0, meta: bool = True,
                 seed: int = DEFAULT_SEED, titles: pd.DataFrame | None = None) -> None:
        self.components_params = copy.deepcopy(
            DEFAULT_COMPONENTS if components is None else components)
        self.item_features = item_content(titles) if titles is not None else None
        if "content" in self.components_params and self.item_features is None:
            raise ValueError("the 'content' component needs the titles table: "
                             "BlendedRatingModel(..., titles=titles)")
        unknown = set(self.components_params) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}; valid: {sorted(COMPONENTS)}")
        if "baseline" not in self.components_params:
            raise ValueError("the blend needs a 'baseline' component (its fallback)")
        if not 0 < holdout < 1:
            raise ValueError(f"holdout must be in (0, 1), got {holdout}")
        self.holdout = float(holdout)
        self.alpha = float(alpha)
        self.meta = bool(meta)
        self.seed = int(seed)
        self.components: dict[str, SurpriseComponent] = {}
        self.index: TrainIndex | None = None

    # ------------------------------------------------------------------ fitting
    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (what ``build_rating_model`` accepts)."""
        return {"components": copy.deepcopy(self.components_params), "holdout": self.holdout,
                "alpha": self.alpha, "meta": self.meta}

    def _fit_components(self, trainset: Trainset, index: TrainIndex
                        ) -> dict[str, SurpriseComponent]:
        return {name: make_component(name, params, seed=self.seed,
                                     item_features=self.item_features).fit(trainset, index=index)
                for name, params in self.active_components_.items()}

    def fit(self, data: pd.DataFrame | Trainset) -> BlendedRatingModel:
        """Fit blend weights on a random holdout, then refit the components on all data."""
        trainset = as_trainset(data)
        # the large-data rule: components that would not fit are left out, and say why
        self.excluded_components_ = excluded_components(
            self.components_params, trainset.n_users, trainset.n_items)
        for name, why in self.excluded_components_.items():
            warnings.warn(f"blend: leaving out {name!r}: {why}", stacklevel=2)
        self.active_components_ = {k: v for k, v in self.components_params.items()
                                   if k not in self.excluded_components_}
        users, items, ratings = trainset_triples(trainset)
        rng = np.random.default_rng(self.seed)
        held = np.zeros(len(ratings), dtype=bool)
        held[rng.permutation(len(ratings))[: int(round(self.holdout * len(ratings)))]] = True
        inner = _build_trainset(zip(users[~held].tolist(), items[~held].tolist(),
                                    ratings[~held].tolist(), strict=True))
        inner_index = TrainIndex.from_trainset(inner)
        inner_components = self._fit_components(inner, inner_index)
        # The ridge only ever scores known (user, item) pairs: drop held-out ratings of
        # users/items that appear only in the holdout.
        h_users, h_items, y = users[held], items[held], ratings[held]
        known = (inner_index.inner_items(h_items) >= 0) & np.array(
            [inner_index.inner_user(u) is not None for u in h_users], dtype=bool)
        x_hold, self.feature_names = self._features(
            inner_components, inner_index, h_users[known], h_items[known])
        y = y[known]
        self.n_holdout_ = int(known.sum())
        if self.n_holdout_ <= x_hold.shape[1]:
            # Too few pairs to weigh the components (tiny or very sparse data): predict
            # with the baseline, which every other component builds on.
            warnings.warn(f"blend: only {self.n_holdout_} held-out ratings have a known user "
                          f"and title, not more than the {x_hold.shape[1]} blend features; "
                          "predicting with the baseline component alone", stacklevel=2)
            self.ridge = _Ridge.only(self.feature_names, "baseline")
        else:
            self.ridge = _Ridge(self.alpha).fit(x_hold, y)
        # Holdout diagnostics: each component vs the blend, on the very rows the weights
        # were fitted on (optimistic for the blend; the CV figure is the honest one).
        lo, hi = inner_index.rating_scale
        predictions = {name: x_hold[:, k] for k, name in enumerate(self.active_components_)}
        predictions["blend"] = self.ridge.predict(x_hold)
        self.holdout_rmse_ = {name: rmse_mae(y, np.clip(pred, lo, hi))[0] if len(y)
                              else float("nan") for name, pred in predictions.items()}
        # Refit on everything: the weights carry over, the components see all ratings.
        self.index = TrainIndex.from_trainset(trainset)
        self.components = self._fit_components(trainset, self.index)
        self._log_nu = np.log1p(self.index.user_support().astype(np.float64))
        self._log_ni = np.log1p(self.index.item_support().astype(np.float64))
        self.item_features = None  # the content component keeps what it needs
        return self

    def _features(self, components: dict[str, SurpriseComponent], index: TrainIndex,
                  users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Design matrix for aligned (user, item) raw-id arrays (all known pairs)."""
        inner_u = np.array([index.inner_user(u) for u in users], dtype=np.int64)
        inner_i = index.inner_items(items)
        log_nu = np.log1p(index.user_support().astype(np.float64))[inner_u]
        log_ni = np.log1p(index.item_support().astype(np.float64))[inner_i]
        outputs = {name: {} for name in components}
        order = np.argsort(inner_u, kind="stable")
        bounds = np.flatnonzero(np.diff(inner_u[order])) + 1
        for name, comp in components.items():
            out = {"pred": np.empty(len(users))}
            if isinstance(comp, KNNBaselineComponent):
                out.update(term=np.empty(len(users)), sum_w=np.empty(len(users)))
            for group in np.split(order, bounds) if len(order) else ():
                _fill(out, comp, int(inner_u[group[0]]), inner_i[group], group)
            outputs[name] = out
        return component_features(outputs, log_nu, log_ni, self.meta)

    # ------------------------------------------------------------------ predicting
    @property
    def _idx(self) -> TrainIndex:
        if self.index is None:
            raise RuntimeError("BlendedRatingModel is not fitted; call fit() first")
        return self.index

    @property
    def item_ids(self) -> np.ndarray:
        """Raw ids of the items known to the model, in inner order."""
        return self._idx.item_ids

    def known_user(self, user: Any) -> bool:
        return self._idx.inner_user(user) is not None

    def _estimate_inner(self, u: int | None, inner_items: np.ndarray) -> np.ndarray:
        est = self.components["baseline"]._estimate_inner(u, inner_items)  # fallback
        known = np.flatnonzero(inner_items >= 0)
        if u is None or known.size == 0:
            return est
        items = inner_items[known]
        outputs = {}
        for name, comp in self.components.items():
            out = {"pred": np.empty(items.size)}
            if isinstance(comp, KNNBaselineComponent):
                out.update(term=np.empty(items.size), sum_w=np.empty(items.size))
            _fill(out, comp, u, items, slice(None))
            outputs[name] = out
        x, _ = component_features(outputs, np.full(items.size, self._log_nu[u]),
                                  self._log_ni[items], self.meta)
        est[known] = self.ridge.predict(x)
        return est

    def predict_items(self, user: Any, items: Sequence[Any] | np.ndarray, clip: bool = True
                      ) -> np.ndarray:
        """Predicted ratings of ``items`` (raw ids) for ``user``, vectorized."""
        est = self._estimate_inner(self._idx.inner_user(user), self._idx.inner_items(items))
        if clip:
            lo, hi = self._idx.rating_scale
            est = np.clip(est, lo, hi)
        return est

    def predict_all(self, user: Any, clip: bool = True) -> np.ndarray:
        """Predicted ratings of every known item (``item_ids`` order) for ``user``."""
        return self.predict_items(user, self._idx.item_ids, clip=clip)

    @property
    def weights(self) -> pd.Series:
        """Ridge coefficients per feature (on standardized features)."""
        return pd.Series(self.ridge.coef_, index=self.feature_names, name="weight")

    def __repr__(self) -> str:
        return (f"BlendedRatingModel(components={list(self.components_params)}, "
                f"holdout={self.holdout}, alpha={self.alpha}, meta={self.meta})")


def _fill(out: dict[str, np.ndarray], comp: SurpriseComponent, u: int, inner_items: np.ndarray,
          where: Any) -> None:
    """Write a component's unclipped outputs for one user's items into ``out[...][where]``."""
    if isinstance(comp, KNNBaselineComponent):
        est, sum_w, _ = comp.estimate_with_stats(u, inner_items)
        base = comp._baseline_inner(u, inner_items)
        out["pred"][where] = est
        out["term"][where] = est - base
        out["sum_w"][where] = sum_w
    else:
        out["pred"][where] = comp._estimate_inner(u, inner_items)


def build_rating_model(params: dict[str, Any] | None = None, seed: int = DEFAULT_SEED,
                       titles: pd.DataFrame | None = None) -> BlendedRatingModel:
    """An unfitted ``BlendedRatingModel`` from ``rating_params`` (default: the tuned blend).

    ``params`` keys: ``components``, ``holdout``, ``alpha``, ``meta`` (missing keys take
    ``DEFAULT_RATING_PARAMS``). ``titles``: the processed titles table, needed by the
    ``content`` component; without it that component is left out (with a warning), the
    blend still works, about 0.015 RMSE worse on MovieLens. Used by
    ``recommend.train_recommender``.
    """
    merged = copy.deepcopy({**DEFAULT_RATING_PARAMS, **(params or {})})
    unknown = set(merged) - set(DEFAULT_RATING_PARAMS)
    if unknown:
        raise ValueError(f"unknown rating_params {sorted(unknown)}; "
                         f"valid: {sorted(DEFAULT_RATING_PARAMS)}")
    if titles is None and "content" in merged["components"]:
        warnings.warn("build_rating_model: no titles given, leaving out the 'content' "
                      "component (pass titles=... for the full model)", stacklevel=2)
        merged["components"] = {k: v for k, v in merged["components"].items()
                                if k != "content"}
    return BlendedRatingModel(seed=seed, titles=titles, **merged)


def cv_table(result: dict[str, Any]) -> pd.DataFrame:
    """``cross_validate_model(..., per_component=True)`` of a blend as a table:
    one row per component plus ``blend``, with RMSE, MAE and RMSE per fold, best first."""
    rows = [{"model": name, "rmse": r["rmse"], "mae": r["mae"], "fold_rmse": r["fold_rmse"]}
            for name, r in result.get("components", {}).items()]
    rows.append({"model": "blend", "rmse": result["rmse"], "mae": result["mae"],
                 "fold_rmse": result["fold_rmse"]})
    return pd.DataFrame(rows).sort_values("rmse", kind="stable").reset_index(drop=True)
