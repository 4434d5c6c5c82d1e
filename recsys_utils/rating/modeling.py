"""The modeling step in one call: compare, tune and blend rating models on shared folds.

``run_modeling`` is what ``03_modeling`` runs: surprise's algorithms cross-validated on
the same folds (``comparison.compare_algorithms``), a grid search of the strongest
families (``tuning.tune_families``), and the ridge blend with the tuned parameters,
cross-validated on those folds again with each component scored on the same held-out
ratings (``blend.cv_table``). It returns a ``ModelingResult`` that carries the tables,
the saved figures, the key numbers the book glues, and what the registry records
(``rating_params``, ``registry_metrics``). Training the final model on all ratings and
registering it is a separate, visible step: ``recsys_utils.lifecycle.champion``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recsys_utils import DEFAULT_SEED
from recsys_utils.paths import ProjectPaths
from recsys_utils.plots import save_figure, set_style
from recsys_utils.rating import figures, tuning
from recsys_utils.rating.blend import DEFAULT_COMPONENTS, build_rating_model, cv_table
from recsys_utils.rating.comparison import compare_and_cross_validate

__all__ = ["ModelingResult", "run_modeling", "key_numbers"]

#: The tuning summary when tuning is off (the columns of ``tuning.tune_families``).
_NO_TUNING = ["family", "best_rmse", "best_mae", "n_candidates", "seconds", "best_params"]


@dataclass
class ModelingResult:
    """Everything one modeling run produced (see the module docstring)."""

    #: ``compare_algorithms``: one row per surprise algorithm, best RMSE first.
    comparison: pd.DataFrame
    #: ``tune_families``: one row per tuned family (empty when tuning is off).
    tuning: pd.DataFrame
    #: ``cross_validate_model(blend, per_component=True)``: means, per-fold lists, components.
    blend_cv: dict[str, Any]
    #: ``cv_table(blend_cv)``: the blend and each of its components, best RMSE first.
    blend_table: pd.DataFrame
    #: The blend's parameters (``build_rating_model``), tuned families included.
    rating_params: dict[str, Any]
    #: Headline numbers, glued into the book as ``model_<name>``.
    key_numbers: dict[str, Any]
    #: ``name -> Figure`` (closed: a notebook shows one with ``display``).
    figures: dict[str, Figure] = field(default_factory=dict)
    #: ``name -> saved PNG`` under ``outputs/figures/``.
    figure_paths: dict[str, Path] = field(default_factory=dict)
    n_users: int = 0
    n_items: int = 0
    n_folds: int = 5
    seed: int = DEFAULT_SEED
    #: ratings the comparison, tuning and cross-validation ran on (``cv_sample``)
    n_cv_ratings: int = 0

    @property
    def n_ratings(self) -> int:
        return int(self.key_numbers["n_ratings"])

    @property
    def data_summary(self) -> str:
        """One line: ratings, users, titles, density, folds and seed."""
        density = self.n_ratings / (self.n_users * self.n_items)
        sample = (f" on a sample of {self.n_cv_ratings:,} ratings (whole users; the champion "
                  f"is trained on all)" if 0 < self.n_cv_ratings < self.n_ratings else "")
        return (f"{self.n_ratings:,} ratings by {self.n_users:,} users on {self.n_items:,} "
                f"titles (density {density:.2%}); {self.n_folds}-fold CV{sample}, "
                f"seed {self.seed}")

    @property
    def tuned_params(self) -> dict[str, dict[str, Any]]:
        """Best parameters of each tuned family (empty when tuning is off)."""
        return dict(zip(self.tuning["family"], self.tuning["best_params"], strict=True))

    def key_numbers_table(self) -> pd.DataFrame:
        """``key_numbers`` as a one-column table."""
        return pd.Series(self.key_numbers, name="value", dtype=object).to_frame()

    def tuning_view(self) -> pd.DataFrame | str:
        """The tuning table with each family's chosen parameters, or why there is none."""
        if self.tuning.empty:
            return "tuning skipped (tune=False): the blend uses its default parameters"
        return self.tuning.drop(columns="seconds").round(4)

    def checked_numbers(self) -> dict[str, str]:
        """What the notebook's checked cell prints: the key numbers and the blend table's
        cross-validated RMSE per model (rounded, so nbval compares them exactly)."""
        out = {f"model_{name}": str(round(v, 4) if isinstance(v, float) else v)
               for name, v in self.key_numbers.items()}
        out.update({f"cv_rmse {row.model}": f"{row.rmse:.4f}"
                    for row in self.blend_table.itertuples()})
        return out

    def registry_params(self, ranking_params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The parameters a registered model of this run records."""
        return {"rating_params": self.rating_params, "ranking_params": ranking_params or {},
                "seed": self.seed}

    def registry_metrics(self) -> dict[str, Any]:
        """The cross-validated metrics a registered model of this run records."""
        cv = self.blend_cv
        return {
            "holdout": {"protocol": f"{self.n_folds}-fold cross-validation of the rating model, "
                                    f"surprise KFold(random_state={self.seed}), "
                                    + ("all ratings" if self.n_cv_ratings in (0, self.n_ratings)
                                       else f"a sample of {self.n_cv_ratings:,} ratings "
                                            "(whole users, drawn with the seed)"),
                        "n_ratings": self.n_cv_ratings or self.n_ratings},
            "rmse": cv["rmse"], "mae": cv["mae"], "rmse_std": cv["rmse_std"],
            "fold_rmse": cv["fold_rmse"],
            "surprise_svd_rmse": self.key_numbers["svd_rmse"],
            "surprise_baseline_rmse": self.key_numbers["baseline_rmse"],
        }


def cv_sample(model_df: pd.DataFrame, max_ratings: int | None,
              seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """At most ``max_ratings`` ratings of whole users drawn in a seeded random order (the
    table itself when it fits or ``max_ratings`` is None).

    Why whole users: a user's ratings stay together, so the folds see the same activity
    tail as the full data; the sample is what the comparison, tuning and cross-validation
    of a large data set run on, while the champion is trained on everything (issue 12).
    """
    if max_ratings is None or len(model_df) <= max_ratings:
        return model_df
    if max_ratings < 1:
        raise ValueError(f"cv_max_ratings must be a positive number of ratings, got {max_ratings}")
    counts = model_df.groupby("user", sort=True).size()
    order = np.random.default_rng(seed).permutation(len(counts))
    taken = np.cumsum(counts.to_numpy()[order]) <= max_ratings
    taken[0] = True  # at least one user, even when it alone is over the cap
    users = counts.index.to_numpy()[order[taken]]
    return model_df[model_df["user"].isin(users)].reset_index(drop=True)


def key_numbers(comparison: pd.DataFrame, tuned: pd.DataFrame, blend_cv: dict[str, Any],
                blend_table: pd.DataFrame, *, n_ratings: int, n_folds: int,
                target_rmse: float) -> dict[str, Any]:
    """The run's headline numbers: baselines, the best single model, the blend and its gain.

    "Single models" are the default algorithms, the tuned families and the blend's own
    components, all on the same folds, so ``blend_gain`` is what blending adds.
    """
    algo_rmse = comparison.set_index("algorithm")["rmse"]
    single = pd.concat([
        algo_rmse,
        tuned.set_index("family")["best_rmse"].rename(lambda f: f"{f} (tuned)"),
        blend_table.set_index("model")["rmse"].drop("blend").rename(
            lambda c: f"{c} (blend component)"),
    ])
    svd_rmse = float(algo_rmse.get("SVD", float("nan")))
    return {
        "n_ratings": n_ratings,
        "n_folds": n_folds,
        "baseline_rmse": float(algo_rmse.get("BaselineOnly", float("nan"))),
        "svd_rmse": svd_rmse,
        "best_default_algorithm": str(algo_rmse.idxmin()),
        "best_default_rmse": float(algo_rmse.min()),
        "best_single_name": str(single.idxmin()),
        "best_single_rmse": float(single.min()),
        "blend_rmse": blend_cv["rmse"],
        "blend_mae": blend_cv["mae"],
        "blend_rmse_std": blend_cv["rmse_std"],
        "blend_gain": float(single.min() - blend_cv["rmse"]),
        "blend_vs_svd": blend_cv["rmse"] / svd_rmse,
        "target_rmse": target_rmse,
        "target_met": bool(blend_cv["rmse"] <= target_rmse),
    }


def run_modeling(model_df: pd.DataFrame, titles: pd.DataFrame, *, n_folds: int = 5,
                 algorithms: Sequence[str] | None = None, slow_folds: int | None = 1,
                 tune: bool = True, tune_families: Sequence[str] = ("BaselineOnly", "SVD"),
                 tuning_grid: str = "small", tune_folds: int = 3,
                 blend_components: dict[str, dict[str, Any]] | None = None,
                 blend_holdout: float = 0.2, blend_alpha: float = 1.0, blend_meta: bool = True,
                 target_rmse: float = 0.855, seed: int = DEFAULT_SEED, n_jobs: int = 1,
                 cv_max_ratings: int | None = None,
                 paths: ProjectPaths | None = None) -> ModelingResult:
    """Compare, tune and cross-validate the blend on ``model_df``; save the figures.

    Every cross-validation uses ``KFold(n_folds, random_state=seed)``'s folds (tuning its
    first ``tune_folds``). ``algorithms``: names of ``comparison.ALGORITHMS`` (None: all);
    ``slow_folds``: folds for ``comparison.SLOW_ALGORITHMS`` (None: all). With ``tune``,
    the tuned families' best parameters replace their blend components' (``with_tuned``).
    ``blend_components`` (None: ``blend.DEFAULT_COMPONENTS``), ``blend_holdout``,
    ``blend_alpha`` and ``blend_meta`` are the blend's ``rating_params``. ``titles`` gives
    the ``content`` component its genres and years. ``n_jobs`` processes run folds and
    grid points; results do not depend on it. ``cv_max_ratings``: the comparison, tuning
    and cross-validation run on ``cv_sample(model_df, cv_max_ratings, seed)`` (None: all
    ratings); the figures and numbers say so. Figures go to ``paths``' figures folder.
    """
    full_df, model_df = model_df, cv_sample(model_df, cv_max_ratings, seed)
    if tune:
        tuned = tuning.tune_families(model_df, list(tune_families), grid=tuning_grid,
                                     n_folds=tune_folds, seed=seed, n_jobs=n_jobs)
    else:
        tuned = pd.DataFrame(columns=_NO_TUNING)
    components = DEFAULT_COMPONENTS if blend_components is None else blend_components
    components = tuning.with_tuned(components, tuned) if tune else components
    rating_params = {"components": components, "holdout": blend_holdout, "alpha": blend_alpha,
                     "meta": blend_meta}
    # A partial, not a lambda: fold workers receive it by pickling.
    factory = functools.partial(build_rating_model, rating_params, seed=seed, titles=titles)
    # the comparison and the blend's cross-validation share one pool (the blend's five
    # folds alone would leave a process idle); the results are those of the separate calls
    comparison, blend_cv = compare_and_cross_validate(
        model_df, factory, None if algorithms is None else list(algorithms), n_folds=n_folds,
        seed=seed, slow_folds=slow_folds, per_component=True, n_jobs=n_jobs)
    blend_table = cv_table(blend_cv)
    numbers = key_numbers(comparison, tuned, blend_cv, blend_table, n_ratings=len(full_df),
                          n_folds=n_folds, target_rmse=target_rmse)
    numbers["cv_ratings"] = len(model_df)
    result = ModelingResult(comparison=comparison, tuning=tuned, blend_cv=blend_cv,
                            blend_table=blend_table, rating_params=rating_params,
                            key_numbers=numbers, n_users=int(full_df["user"].nunique()),
                            n_items=int(full_df["item"].nunique()), n_folds=n_folds, seed=seed,
                            n_cv_ratings=len(model_df))
    rmse = dict(zip(blend_table["model"], blend_table["rmse"], strict=True))
    set_style()  # the project's figure style (also for the champion's figure drawn next)
    for name, fig in {
        "algorithm_comparison": figures.plot_algorithm_comparison(comparison),
        "blend_vs_components": figures.plot_blend_vs_components(rmse, target=target_rmse),
    }.items():
        result.figures[name] = fig
        result.figure_paths[name] = save_figure(fig, f"model_{name}", paths)
        plt.close(fig)  # shown where the notebook displays it, not where it was drawn
    return result
