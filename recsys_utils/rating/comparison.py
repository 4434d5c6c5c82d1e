"""Comparing rating models: the ``RatingModel`` protocol, the comparison of surprise
algorithms and cross-validation on shared folds. The predictors themselves live in
``recsys_utils.rating.predictors``, the surprise data helpers in ``recsys_utils.rating.adapter``.

Why one fold generator: every comparison in ``03_modeling`` must use the *same* folds
(``kfold_indices`` reproduces ``surprise.model_selection.KFold(random_state=seed)``
exactly), so differences between models are not differences between splits.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from surprise import (
    NMF,
    SVD,
    BaselineOnly,
    CoClustering,
    NormalPredictor,
    SlopeOne,
    Trainset,
)
from surprise.utils import get_rng

from recsys_utils import DEFAULT_SEED
from recsys_utils.rating.adapter import rmse_mae, to_dataset
from recsys_utils.rating.predictors import CachedSVDpp, DenseSimKNNBaseline

__all__ = [
    "ALGORITHMS",
    "SLOW_ALGORITHMS",
    "RatingModel",
    "compare_algorithms",
    "compare_and_cross_validate",
    "cross_validate_model",
    "kfold_indices",
    "kfold_splits",
    "kfold_train_test",
    "run_parallel",
]


@runtime_checkable
class RatingModel(Protocol):
    """What the ranking side needs from a rating model.

    ``fit`` takes the model table (``user``, ``item``, ``score``) or a surprise
    ``Trainset``. ``predict_items`` scores an array of raw item ids for one user in one
    vectorized call; unknown users/items get the same fallback as ``predict``.
    ``clip=False`` returns the raw estimate (to break ties among items clipped to 5.0).
    """

    def fit(self, data: pd.DataFrame | Trainset) -> RatingModel: ...

    def predict(self, user: int, item: str) -> float: ...

    def predict_items(self, user: int, items: np.ndarray, clip: bool = True) -> np.ndarray: ...


# =========================================================================== folds and CV


def _fold_bounds(n_rows: int, n_folds: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Shuffled row indices and fold boundaries, as ``surprise``'s ``KFold.split``."""
    if not 2 <= n_folds <= n_rows:
        raise ValueError(f"n_folds must be between 2 and the number of ratings, got {n_folds}")
    indices = np.arange(n_rows)
    get_rng(seed).shuffle(indices)  # the very same RNG call surprise's KFold makes
    bounds = [0]
    for fold in range(n_folds):
        bounds.append(bounds[-1] + n_rows // n_folds + (1 if fold < n_rows % n_folds else 0))
    return indices, bounds


def kfold_indices(n_rows: int, n_folds: int = 5, seed: int = DEFAULT_SEED) -> list[np.ndarray]:
    """Test-row indices of each fold, identical to ``surprise.model_selection.KFold(
    n_splits=n_folds, random_state=seed)`` on a dataset of ``n_rows`` ratings."""
    indices, b = _fold_bounds(n_rows, n_folds, seed)
    return [indices[b[f]:b[f + 1]] for f in range(n_folds)]


def kfold_train_test(n_rows: int, n_folds: int = 5, seed: int = DEFAULT_SEED
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train rows, test rows)`` per fold, in the order surprise's ``KFold`` lists them.

    Train = the shuffled rows before the fold, then after it; a trainset built from them
    in this order equals surprise's fold trainset, inner ids included (SGD models such as
    SVD visit ratings in inner-id order, so the order changes their result).
    """
    indices, b = _fold_bounds(n_rows, n_folds, seed)
    return [(np.concatenate([indices[:b[f]], indices[b[f + 1]:]]), indices[b[f]:b[f + 1]])
            for f in range(n_folds)]


def kfold_splits(model_df: pd.DataFrame, n_folds: int = 5, seed: int = DEFAULT_SEED
                 ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """``(train, test)`` frames of each fold (see ``kfold_train_test``)."""
    for train_idx, test_idx in kfold_train_test(len(model_df), n_folds, seed):
        yield model_df.iloc[train_idx], model_df.iloc[test_idx]


def _score_fold(model_factory: Callable[[], Any], data: Any, train_idx: np.ndarray,
                test_idx: np.ndarray, rng_seed: int, per_component: bool) -> dict[str, Any]:
    """Fit a fresh model on one fold's trainset and score it on the fold's testset.

    Runs in a worker process when folds are parallel. numpy's *global* RNG (which
    ``NormalPredictor`` draws from) is seeded per fold, so results do not depend on the
    order or process the folds run in.
    """
    raw = data.raw_ratings
    trainset = data.construct_trainset([raw[i] for i in train_idx])
    testset = data.construct_testset([raw[i] for i in test_idx])
    np.random.seed(rng_seed % 2**32)  # seed + fold passes numpy's range for seeds near 2**32
    model = model_factory()
    t0 = time.perf_counter()
    model.fit(trainset)
    t1 = time.perf_counter()
    preds = model.test(testset)
    t2 = time.perf_counter()
    truth = np.array([p.r_ui for p in preds])
    rmse, mae = rmse_mae(truth, np.array([p.est for p in preds]))
    out: dict[str, Any] = {"rmse": rmse, "mae": mae, "fit_time": t1 - t0, "test_time": t2 - t1,
                           "components": {}}
    for name, comp in (getattr(model, "components", {}) if per_component else {}).items():
        c_rmse, c_mae = rmse_mae(truth, np.array([p.est for p in comp.test(testset)]))
        out["components"][name] = {"rmse": c_rmse, "mae": c_mae}
    return out


def _summarize(scores: list[dict[str, Any]], per_component: bool) -> dict[str, Any]:
    rmses = [s["rmse"] for s in scores]
    maes = [s["mae"] for s in scores]
    result: dict[str, Any] = {
        "rmse": float(np.mean(rmses)),
        "mae": float(np.mean(maes)),
        "rmse_std": float(np.std(rmses)),
        "fold_rmse": rmses,
        "fold_mae": maes,
        "fit_time": float(np.mean([s["fit_time"] for s in scores])),
        "test_time": float(np.mean([s["test_time"] for s in scores])),
        "n_folds": len(scores),
    }
    if per_component:
        names = list(scores[0]["components"]) if scores else []
        result["components"] = {
            name: {"rmse": float(np.mean([s["components"][name]["rmse"] for s in scores])),
                   "mae": float(np.mean([s["components"][name]["mae"] for s in scores])),
                   "fold_rmse": [s["components"][name]["rmse"] for s in scores]}
            for name in names}
    return result


def _recording_warnings(fn: Callable[..., Any], *args: Any, **kwargs: Any
                        ) -> tuple[Any, list[tuple[type[Warning], str]]]:
    """``fn``'s result and the warnings it raised (run in a worker process)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [(w.category, str(w.message)) for w in caught]


def run_parallel(tasks: list[Any], n_jobs: int) -> list[Any]:
    """Run ``delayed`` tasks, in order; ``n_jobs=1`` stays in this process.

    A worker's warnings are raised again here, once each: left in the worker they went to
    the terminal that started the pipeline (raw, once per fold), not to the notebook."""
    if n_jobs == 1 or len(tasks) <= 1:
        return [fn(*args, **kwargs) for fn, args, kwargs in tasks]
    done = Parallel(n_jobs=n_jobs)(delayed(_recording_warnings)(fn, *args, **kwargs)
                                   for fn, args, kwargs in tasks)
    for category, message in dict.fromkeys(w for _, caught in done for w in caught):
        warnings.warn(message, category, stacklevel=3)
    return [result for result, _ in done]


def cross_validate_model(model_factory: Callable[[], Any], model_df: pd.DataFrame,
                         n_folds: int = 5, seed: int = DEFAULT_SEED, max_folds: int | None = None,
                         per_component: bool = False, n_jobs: int = 1) -> dict[str, Any]:
    """RMSE/MAE of any rating model over the shared folds (those of ``compare_algorithms``).

    ``model_factory()`` returns an unfitted model with ``fit(trainset)`` and
    ``test(testset)`` (a surprise algorithm, a component or a ``BlendedRatingModel``).
    Each fold's model is fitted on the fold's surprise ``Trainset``, so surprise
    algorithms see exactly the data ``surprise.model_selection.cross_validate`` gives them.
    ``max_folds`` evaluates only the first folds (cheap runs). Returns ``rmse``/``mae``
    (means over folds), ``rmse_std``, per-fold lists, fit/test seconds and ``n_folds``.
    ``per_component``: for a model with a ``components`` dict (the blend), also score each
    fitted component on the same test folds, at no extra fitting cost:
    ``result["components"][name] = {"rmse", "mae", "fold_rmse"}``.
    ``n_jobs``: folds run in that many processes (joblib); results are identical.
    """
    folds = kfold_train_test(len(model_df), n_folds, seed)
    use = folds if max_folds is None else folds[:max_folds]
    tasks = _cv_tasks(model_factory, to_dataset(model_df), use, seed, per_component)
    return _summarize(run_parallel(tasks, n_jobs), per_component)


def _cv_tasks(model_factory: Callable[[], Any], data: Any, folds: list, seed: int,
              per_component: bool) -> list[Any]:
    return [delayed(_score_fold)(model_factory, data, tr, te, seed + k, per_component)
            for k, (tr, te) in enumerate(folds)]


#: surprise algorithms compared in ``03_modeling`` (name -> factory(seed)).
ALGORITHMS: dict[str, Callable[[int], Any]] = {
    "NormalPredictor": lambda seed: NormalPredictor(),
    "BaselineOnly": lambda seed: BaselineOnly(verbose=False),
    "SVD": lambda seed: SVD(random_state=seed),
    "SVDpp": lambda seed: CachedSVDpp(random_state=seed, cache_ratings=True),
    "NMF": lambda seed: NMF(random_state=seed),
    "SlopeOne": lambda seed: SlopeOne(),
    # surprise's KNNBaseline, its similarities computed as sparse products (same values)
    "KNNBaseline_user": lambda seed: DenseSimKNNBaseline(
        sim_options={"name": "pearson_baseline", "user_based": True}, verbose=False),
    "KNNBaseline_item": lambda seed: DenseSimKNNBaseline(
        sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False),
    "CoClustering": lambda seed: CoClustering(random_state=seed),
}

#: The expensive ones (tens of seconds per fold): ``compare_algorithms`` can run them on
#: fewer folds (``slow_folds``) to keep the notebook within the CI budget.
SLOW_ALGORITHMS: tuple[str, ...] = ("SVDpp", "SlopeOne", "KNNBaseline_item")


def compare_algorithms(model_df: pd.DataFrame, algorithms: list[str] | None = None,
                       n_folds: int = 5, seed: int = DEFAULT_SEED, slow_folds: int | None = None,
                       n_jobs: int = 1) -> pd.DataFrame:
    """Cross-validate surprise algorithms on the same folds (``kfold_indices(seed)``).

    ``algorithms``: names from ``ALGORITHMS`` (default: all). ``slow_folds``: run the
    ``SLOW_ALGORITHMS`` on only the first ``slow_folds`` folds (the same folds, fewer of
    them; ``None`` = all). ``n_jobs``: (algorithm, fold) pairs run in that many processes;
    results are identical (each fold seeds numpy's global RNG, which ``NormalPredictor``
    draws from, with ``seed + fold``). Returns one row per algorithm, sorted by RMSE:
    ``algorithm, rmse, rmse_std, mae, fit_time, test_time, n_folds`` (times are mean
    seconds per fold).
    """
    names = _algorithm_names(algorithms)
    data = to_dataset(model_df)
    folds = kfold_train_test(len(model_df), n_folds, seed)
    tasks, owner = _comparison_tasks(names, data, folds, seed, slow_folds)
    return _comparison_table(names, owner, run_parallel(tasks, n_jobs))


def compare_and_cross_validate(model_df: pd.DataFrame, model_factory: Callable[[], Any],
                               algorithms: list[str] | None = None, n_folds: int = 5,
                               seed: int = DEFAULT_SEED, slow_folds: int | None = None,
                               per_component: bool = False, n_jobs: int = 1
                               ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``compare_algorithms(...)`` and ``cross_validate_model(model_factory, ...)`` on the
    same folds, their (algorithm, fold) and model folds in one pool of ``n_jobs``
    processes: the same table and dict as the two calls, sooner. Apart, the model's folds
    (5 on 2 processes) leave one process idle in the last round; together, the
    comparison's short folds fill it (03's on MovieLens, 2 processes: 8-16 s less in each of
    four alternated pairs, e.g. 88-93 s -> 79-80 s).
    The longest tasks go first: the slow algorithms, then the model's folds.
    """
    names = _algorithm_names(algorithms)
    data = to_dataset(model_df)
    folds = kfold_train_test(len(model_df), n_folds, seed)
    tasks, owner = _comparison_tasks(names, data, folds, seed, slow_folds)
    slow = sum(o in SLOW_ALGORITHMS for o in owner)  # the slow ones come first in tasks
    model_tasks = _cv_tasks(model_factory, data, folds, seed, per_component)
    scores = run_parallel(tasks[:slow] + model_tasks + tasks[slow:], n_jobs)
    model_scores = scores[slow:slow + len(model_tasks)]
    compared = scores[:slow] + scores[slow + len(model_tasks):]
    return (_comparison_table(names, owner, compared),
            _summarize(model_scores, per_component))


def _algorithm_names(algorithms: list[str] | None) -> list[str]:
    names = list(ALGORITHMS) if algorithms is None else list(algorithms)
    unknown = [n for n in names if n not in ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown algorithms {unknown}; valid: {list(ALGORITHMS)}")
    return names


def _comparison_tasks(names: list[str], data: Any, folds: list, seed: int,
                      slow_folds: int | None) -> tuple[list[Any], list[str]]:
    """One task per (algorithm, fold), the slow algorithms first (started last, one of
    them would run alone at the end); ``owner``: each task's algorithm."""
    tasks, owner = [], []
    for name in sorted(names, key=lambda n: n not in SLOW_ALGORITHMS):
        n_use = slow_folds if (name in SLOW_ALGORITHMS and slow_folds is not None) else len(folds)
        for k, (tr, te) in enumerate(folds[:n_use]):
            factory = functools.partial(ALGORITHMS[name], seed)
            tasks.append(delayed(_score_fold)(factory, data, tr, te, seed + k, False))
            owner.append(name)
    return tasks, owner


def _comparison_table(names: list[str], owner: list[str], scores: list[dict[str, Any]]
                      ) -> pd.DataFrame:
    rows = []
    for name in names:
        res = _summarize([s for s, o in zip(scores, owner, strict=True) if o == name], False)
        rows.append({"algorithm": name, "rmse": res["rmse"], "rmse_std": res["rmse_std"],
                     "mae": res["mae"], "fit_time": res["fit_time"],
                     "test_time": res["test_time"], "n_folds": res["n_folds"]})
    return pd.DataFrame(rows).sort_values("rmse", kind="stable").reset_index(drop=True)
