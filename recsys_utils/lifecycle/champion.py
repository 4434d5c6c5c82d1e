"""The champion of a modeling run: the blend trained on all ratings, registered or reused.

``register_champion`` is the last step of ``03_modeling``: it wraps the rating model of
a ``ModelingResult`` (its ``rating_params``) and the ranking chosen on validation data
(``ranking.evaluation.tune_ranking``) in the ``Recommender`` that evaluation, the API
and the demo use, trains it on every rating, and registers it with the run's
parameters, where each parameter came from (value, validation score, grid), the
cross-validated metrics and the data fingerprint. Nothing tuned is copied by hand:
``04_evaluation`` reads the registered configuration back and evaluates it. Why "or reuse": a rerun on the
same data, parameters and code (nbval, ``--force``) finds its earlier version and
promotes it instead of adding a copy (``registry.register_or_reuse``).
Why here and not in ``rating/``: it needs the recommender (04) and the registry (05).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle.registry import register_or_reuse
from recsys_utils.lifecycle.retrain import default_trainer
from recsys_utils.paths import ProjectPaths
from recsys_utils.plots import save_figure
from recsys_utils.ranking.evaluation import TuningResult, jsonable
from recsys_utils.ranking.provenance import parameter_sources, sources_table
from recsys_utils.ranking.recommender import Recommender
from recsys_utils.rating.figures import plot_blend_weights
from recsys_utils.rating.modeling import ModelingResult
from recsys_utils.rating.tuning import GRIDS

__all__ = ["Champion", "rating_tuning_record", "register_champion"]


@dataclass
class Champion:
    """The registered model version of a modeling run."""

    version: str
    recommender: Recommender
    #: True when an identical earlier version was promoted instead of training a new one.
    reused: bool
    #: The validation choice of the ranking (``None``: not tuned in this run).
    ranking: TuningResult | None = None
    #: Where each served ranking parameter came from (``provenance.parameter_sources``,
    #: the manifest's ``tuning.ranking.sources``).
    sources: dict[str, str] = field(default_factory=dict)
    #: ``"blend_weights"`` -> the final blend's ridge weights (closed Figure).
    figures: dict[str, Figure] = field(default_factory=dict)
    figure_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def sources_table(self) -> pd.DataFrame:
        """Every served ranking parameter: its value and where it came from."""
        return sources_table(self.recommender.ranking_params, self.sources)

    @property
    def summary(self) -> str:
        return (f"{'reused' if self.reused else 'registered'} {self.version}: "
                f"rating model {self.recommender.rating_model!r}; "
                f"ranking {self.recommender.ranking_params}")


def rating_tuning_record(result: ModelingResult, grid: str = "small") -> dict[str, Any]:
    """What the manifest records about the rating blend's tuned parameters: per tuned
    family, the chosen parameters, their cross-validated score and the grid searched
    (``rating.tuning.GRIDS[family][grid]``)."""
    if result.tuning.empty:
        return {"tuned": False}
    grids = {family: GRIDS.get(family, {}).get(grid) for family in result.tuning["family"]}
    return jsonable({"tuned": True, "protocol": "surprise GridSearchCV on the first tune_folds "
                     f"folds of KFold(random_state={result.seed})",
                     "families": {row.family: {"chosen": row.best_params,
                                               "validation": {"rmse": row.best_rmse,
                                                              "mae": row.best_mae},
                                               "grid": grids.get(row.family),
                                               "candidates": row.n_candidates}
                                  for row in result.tuning.itertuples()}})


def register_champion(result: ModelingResult, model_df: pd.DataFrame, titles: pd.DataFrame,
                      *, ranking: TuningResult | None = None,
                      ranking_params: dict[str, Any] | None = None, rating_grid: str = "small",
                      precompute_depth: int | None = None, paths: ProjectPaths | None = None,
                      notes: str = "03_modeling: tuned ridge blend") -> Champion:
    """Train ``result``'s blend on all of ``model_df`` in a ``Recommender``; register it.

    The ranking is ``ranking.best_params`` (``evaluation.tune_ranking`` on a validation
    split of ``model_df``) when given, else ``ranking_params`` (``None``: the documented
    fallback ``DEFAULT_RANKING_PARAMS``). The manifest's ``params`` hold the full
    ranking and rating parameters and, under ``tuning``, where each came from: the
    chosen values with their validation scores, the grids (``rating_grid``: the name of
    the rating tuning grid ``run_modeling`` searched) and the rival rankers.
    ``model_df`` must be the table ``result`` was cross-validated on. Saves the
    blend-weights figure. ``precompute_depth``: store every user's top-``depth`` list with
    the model (``ranking.precomputed``; the API answers from it, so a request's cost does
    not grow with the catalog), recorded in the manifest's ``params``.
    """
    if ranking is not None:
        chosen = dict(ranking.best_params)
        ranking_record = ranking.record()
    else:
        chosen = Recommender(ranking_params=ranking_params).ranking_params
        ranking_record = {"tuned": False, "chosen": jsonable(chosen),
                          "source": "ranking_params" if ranking_params
                          else "DEFAULT_RANKING_PARAMS (tuning off)",
                          "sources": parameter_sources(chosen, given=ranking_params)}
    params = {**result.registry_params(chosen),
              "tuning": {"ranking": ranking_record, "rating": rating_tuning_record(result, rating_grid)}}
    if precompute_depth:
        params["precomputed_depth"] = int(precompute_depth)
    version, recommender, reused = register_or_reuse(
        lambda: default_trainer(model_df, titles, params),  # as a retrain will, from the manifest
        params=params, metrics=result.registry_metrics(),
        data_fingerprint=data_fingerprint(model_df), paths=paths, notes=notes)
    champion = Champion(version=version, recommender=recommender, reused=reused,
                        ranking=ranking, sources=ranking_record["sources"])
    fig = plot_blend_weights(recommender.rating_model.weights)
    champion.figures["blend_weights"] = fig
    champion.figure_paths["blend_weights"] = save_figure(fig, "model_blend_weights", paths)
    plt.close(fig)  # shown where the notebook displays it
    return champion
