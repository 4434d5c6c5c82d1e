"""Hyper-parameter search for the strongest surprise families, on the shared folds.

The grids are module constants so the notebook, the book and the registry all point
at one documented definition. Each family has a ``full`` grid and a ``small`` one: a few
points around the optimum of the full search, cheap enough for CI. The full grids are
large (SVD: 384 points); search them with ``RandomizedSearchCV`` (``n_iter``), as was
done for the blend's defaults (3 folds: SVD best ``n_factors=100, n_epochs=80,
lr_all=0.01, reg_all=0.12``, 0.8814 vs 0.8823 with 50 epochs, which the blend uses as
cheaper; BaselineOnly best ALS ``reg_i=2, reg_u=2``).

Search is surprise's ``GridSearchCV`` with ``cv=KFold(n_folds, random_state=seed)``, the
same folds as ``models.compare_algorithms`` when ``n_folds`` matches.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import pandas as pd
from surprise import SVD, BaselineOnly, KNNBaseline, SVDpp
from surprise.model_selection import GridSearchCV, KFold, RandomizedSearchCV

from recsys_utils import DEFAULT_SEED
from recsys_utils.rating.adapter import to_dataset

__all__ = ["GRIDS", "FAMILIES", "TuningResult", "tune_family", "tune_families",
           "component_params", "with_tuned"]

#: surprise algorithm class and blend component name of each tunable family.
FAMILIES: dict[str, tuple[type, str]] = {
    "BaselineOnly": (BaselineOnly, "baseline"),
    "SVD": (SVD, "svd"),
    "SVDpp": (SVDpp, "svdpp"),
    "KNNBaseline_item": (KNNBaseline, "knn_item"),
    "KNNBaseline_user": (KNNBaseline, "knn_user"),
}

_ALS = {"method": ["als"]}

#: Parameter grids per family: ``GRIDS[family]["small" | "full"]`` (surprise syntax:
#: ``sim_options``/``bsl_options`` values are dicts of lists).
GRIDS: dict[str, dict[str, dict[str, Any]]] = {
    "BaselineOnly": {
        "small": {"bsl_options": {**_ALS, "reg_i": [2, 5], "reg_u": [2, 5], "n_epochs": [20]}},
        "full": {"bsl_options": {**_ALS, "reg_i": [0.5, 1, 2, 5, 10, 15],
                                 "reg_u": [0.5, 1, 2, 5, 10, 15], "n_epochs": [10, 20, 30]}},
    },
    "SVD": {
        "small": {"n_factors": [100], "n_epochs": [50], "lr_all": [0.01],
                  "reg_all": [0.08, 0.12]},
        "full": {"n_factors": [20, 50, 100, 200], "n_epochs": [20, 30, 50, 80],
                 "lr_all": [0.003, 0.005, 0.007, 0.01], "reg_all": [0.02, 0.05, 0.08, 0.12,
                                                                    0.15, 0.2]},
    },
    "SVDpp": {
        "small": {"n_factors": [20], "n_epochs": [20], "lr_all": [0.007],
                  "reg_all": [0.02, 0.05], "cache_ratings": [True]},
        "full": {"n_factors": [10, 20, 50], "n_epochs": [20, 30], "lr_all": [0.005, 0.007],
                 "reg_all": [0.02, 0.05, 0.1], "cache_ratings": [True]},
    },
    "KNNBaseline_item": {
        "small": {"k": [40], "sim_options": {"name": ["pearson_baseline"], "user_based": [False],
                                             "shrinkage": [100]},
                  "bsl_options": {**_ALS, "reg_i": [5], "reg_u": [5], "n_epochs": [20]}},
        "full": {"k": [20, 40, 60, 100],
                 "sim_options": {"name": ["pearson_baseline"], "user_based": [False],
                                 "shrinkage": [50, 100, 200], "min_support": [1, 3]},
                 "bsl_options": {**_ALS, "reg_i": [5, 10], "reg_u": [5, 15], "n_epochs": [20]}},
    },
    "KNNBaseline_user": {
        "small": {"k": [40, 80], "sim_options": {"name": ["pearson_baseline"],
                                                  "user_based": [True], "shrinkage": [100]}},
        "full": {"k": [20, 40, 80, 160],
                 "sim_options": {"name": ["pearson_baseline"], "user_based": [True],
                                 "shrinkage": [50, 100, 200]},
                 "bsl_options": {**_ALS, "reg_i": [5, 10], "reg_u": [5, 15], "n_epochs": [20]}},
    },
}


class TuningResult(dict):
    """``family, best_params, best_rmse, best_mae, n_candidates, seconds, table``."""


def tune_family(model_df: pd.DataFrame, family: str, grid: str | dict[str, Any] = "small",
                n_folds: int = 5, seed: int = DEFAULT_SEED, n_iter: int | None = None, n_jobs: int = 1
                ) -> TuningResult:
    """Grid-search (or, with ``n_iter``, randomized-search) one family on the shared folds.

    ``grid``: ``"small"``, ``"full"`` or an explicit surprise grid. SGD families get
    ``random_state=seed``. Returns the best parameters by RMSE, its RMSE/MAE, and a
    table with one row per candidate (``params``, ``rmse``, ``mae``, ``fit_time``).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {list(FAMILIES)}")
    algo_class, _ = FAMILIES[family]
    param_grid = copy.deepcopy(GRIDS[family][grid] if isinstance(grid, str) else grid)
    if family in ("SVD", "SVDpp"):
        param_grid["random_state"] = [seed]
    if algo_class is KNNBaseline or algo_class is BaselineOnly:
        param_grid["verbose"] = [False]
    data = to_dataset(model_df)
    cv = KFold(n_splits=n_folds, random_state=seed)
    if n_iter is None:
        search = GridSearchCV(algo_class, param_grid, measures=["rmse", "mae"], cv=cv,
                              n_jobs=n_jobs)
    else:
        search = RandomizedSearchCV(algo_class, param_grid, n_iter=n_iter,
                                    measures=["rmse", "mae"], cv=cv, n_jobs=n_jobs,
                                    random_state=seed)
    t0 = time.perf_counter()
    search.fit(data)
    seconds = time.perf_counter() - t0
    res = search.cv_results
    table = pd.DataFrame({
        "params": [_strip(p) for p in res["params"]],
        "rmse": res["mean_test_rmse"],
        "mae": res["mean_test_mae"],
        "fit_time": res["mean_fit_time"],
    }).sort_values("rmse", kind="stable").reset_index(drop=True)
    best = _strip(search.best_params["rmse"])
    return TuningResult(family=family, best_params=best,
                        best_rmse=float(search.best_score["rmse"]),
                        best_mae=float(np.asarray(res["mean_test_mae"])[
                            int(np.argmin(res["mean_test_rmse"]))]),
                        n_candidates=len(table), seconds=seconds, table=table)


def tune_families(model_df: pd.DataFrame, families: list[str], grid: str = "small",
                  n_folds: int = 5, seed: int = DEFAULT_SEED, n_iter: int | None = None,
                  n_jobs: int = 1) -> pd.DataFrame:
    """``tune_family`` for several families: one summary row each, best RMSE first."""
    rows = []
    for family in families:
        r = tune_family(model_df, family, grid=grid, n_folds=n_folds, seed=seed,
                        n_iter=n_iter, n_jobs=n_jobs)
        rows.append({"family": family, "best_rmse": r["best_rmse"], "best_mae": r["best_mae"],
                     "n_candidates": r["n_candidates"], "seconds": r["seconds"],
                     "best_params": r["best_params"]})
    return pd.DataFrame(rows).sort_values("best_rmse", kind="stable").reset_index(drop=True)


def component_params(family: str, best_params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A tuned family's parameters as a blend component ``(name, params)``."""
    _, name = FAMILIES[family]
    params = {k: v for k, v in best_params.items() if k not in ("random_state", "verbose")}
    if "sim_options" in params:
        params["sim_options"] = {k: v for k, v in params["sim_options"].items()
                                 if k != "user_based"}
    return name, params


def _strip(params: dict[str, Any]) -> dict[str, Any]:
    """Drop the bookkeeping keys (``verbose``, ``random_state``) from a parameter set."""
    return {k: v for k, v in params.items() if k not in ("verbose", "random_state")}


def with_tuned(components: dict[str, dict[str, Any]], summary: pd.DataFrame
               ) -> dict[str, dict[str, Any]]:
    """Blend components with the tuned parameters of ``tune_families``' ``summary``.

    A tuned family replaces the parameters of its component when the blend has it
    (``SVD`` -> ``svd``, ``KNNBaseline_item`` -> ``knn_item``, ...); other components are
    kept. Returns a new dict.
    """
    out = copy.deepcopy(components)
    for family, best in zip(summary["family"], summary["best_params"], strict=True):
        name, params = component_params(family, best)
        if name in out:
            out[name] = params
    return out
