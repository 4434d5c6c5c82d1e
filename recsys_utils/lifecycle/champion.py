"""The champion of a modeling run: the blend trained on all ratings, registered or reused.

``register_champion`` is the last step of ``03_modeling``: it wraps the rating model of
a ``ModelingResult`` (its ``rating_params``) in the ``Recommender`` that evaluation, the
API and the demo use, trains it on every rating, and registers it with the run's
parameters, cross-validated metrics and data fingerprint. Why "or reuse": a rerun on the
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
from recsys_utils.paths import ProjectPaths
from recsys_utils.plots import save_figure
from recsys_utils.ranking.recommender import Recommender, train_recommender
from recsys_utils.rating.figures import plot_blend_weights
from recsys_utils.rating.modeling import ModelingResult

__all__ = ["Champion", "register_champion"]


@dataclass
class Champion:
    """The registered model version of a modeling run."""

    version: str
    recommender: Recommender
    #: True when an identical earlier version was promoted instead of training a new one.
    reused: bool
    #: ``"blend_weights"`` -> the final blend's ridge weights (closed Figure).
    figures: dict[str, Figure] = field(default_factory=dict)
    figure_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return (f"{'reused' if self.reused else 'registered'} {self.version}: "
                f"rating model {self.recommender.rating_model!r}")


def register_champion(result: ModelingResult, model_df: pd.DataFrame, titles: pd.DataFrame,
                      *, ranking_params: dict[str, Any] | None = None,
                      paths: ProjectPaths | None = None,
                      notes: str = "03_modeling: tuned ridge blend") -> Champion:
    """Train ``result``'s blend on all of ``model_df`` in a ``Recommender``; register it.

    ``model_df`` must be the table ``result`` was cross-validated on (its fingerprint is
    recorded next to ``result``'s metrics). Saves the blend-weights figure.
    """
    version, recommender, reused = register_or_reuse(
        lambda: train_recommender(model_df, titles, result.rating_params, ranking_params,
                                  seed=result.seed),
        params=result.registry_params(ranking_params), metrics=result.registry_metrics(),
        data_fingerprint=data_fingerprint(model_df), paths=paths, notes=notes)
    champion = Champion(version=version, recommender=recommender, reused=reused)
    fig = plot_blend_weights(recommender.rating_model.weights)
    champion.figures["blend_weights"] = fig
    champion.figure_paths["blend_weights"] = save_figure(fig, "model_blend_weights", paths)
    plt.close(fig)  # shown where the notebook displays it
    return champion
