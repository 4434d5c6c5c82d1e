"""The offline evaluation of ``04_evaluation`` in one call, and what it reports.

``evaluate_recommender`` runs the protocol of ``evaluation`` end to end: it makes the
splits (time-aware, per-user last share, one random fold), chooses the ranking
parameters on validation data carved from each split's training part, fits and scores a
``Recommender`` per split against the baselines, shows what the served recommender
answers, and returns an ``EvaluationResult`` holding the tables, the figures and the key
numbers the book glues. With ``paths`` it also writes ``outputs/reports/evaluation.json``
and the figures, so the notebook only displays.

Why the steps are separate functions (``evaluation_splits``, ``choose_ranking_params``):
the ranking parameters evaluated are one input among others; evaluating a given
configuration (e.g. the registered champion's) means passing its parameters instead of
tuning them, with the splits and the scoring unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recsys_utils import DEFAULT_SEED
from recsys_utils.atomic import atomic_write_text
from recsys_utils.paths import ProjectPaths
from recsys_utils.plots import save_figure, set_style
from recsys_utils.ranking.evaluation import (
    RELEVANCE_THRESHOLD,
    Split,
    SplitEvaluation,
    TuningResult,
    evaluate_split,
    jsonable,
    last_n_split,
    random_folds,
    rating_params_for,
    time_split,
    tune_ranking,
)
from recsys_utils.ranking.figures import plot_error_by_activity, plot_ranking_comparison
from recsys_utils.ranking.recommender import Recommender

__all__ = [
    "CHECKED_NUMBERS",
    "REPORT_FILE",
    "EvaluationResult",
    "ServedSample",
    "choose_ranking_params",
    "evaluate_recommender",
    "evaluation_splits",
    "median_activity_user",
    "served_recommender",
    "served_sample",
]

#: The report's file name in ``outputs/reports/``.
REPORT_FILE = "evaluation.json"

#: Key numbers the notebook's ``# NBVAL_CHECK_OUTPUT`` cell prints (seeded, so a changed
#: metric fails ``make test``); the others (cut-off date, precision, ...) are glued only.
CHECKED_NUMBERS = (
    "n_test_users", "ndcg", "pop_ndcg", "random_ndcg", "ndcg_ratio", "ndcg_gain", "ndcg_gain_se",
    "coverage", "pop_coverage", "coverage_ratio", "map", "novelty", "rmse", "mae",
    "item_mean_rmse", "lastn_ndcg", "lastn_pop_ndcg", "lastn_ndcg_ratio", "lastn_coverage_ratio",
    "lastn_rmse", "l2", "pop_weight",
)

_CANDIDATES = "all catalog titles the user has not rated in train"


# =========================================================================== steps


def evaluation_splits(model_df: pd.DataFrame, *, time_quantile: float = 0.8,
                      holdout_fraction: float = 0.2, holdout_n: int | None = None,
                      random_fold: bool = True, seed: int = DEFAULT_SEED) -> dict[str, Split]:
    """The evaluation splits by name: ``time``, ``last_n`` and (with ``random_fold``)
    ``random`` = fold 1 of the shared 5 folds of ``03_modeling``."""
    splits = {"time": time_split(model_df, time_quantile),
              "last_n": _per_user_split(model_df, holdout_fraction, holdout_n)}
    if random_fold:
        splits["random"] = random_folds(model_df, n_folds=5, seed=seed)[0]
    return splits


def _per_user_split(df: pd.DataFrame, fraction: float, n: int | None) -> Split:
    """Each user's last ``n`` ratings when ``n`` is set, else each user's last ``fraction``."""
    return last_n_split(df, n=n, fraction=None) if n else last_n_split(df, fraction=fraction)


def choose_ranking_params(splits: Mapping[str, Split], titles: pd.DataFrame,
                          grid: Mapping[str, Sequence[Any]], *, time_quantile: float = 0.8,
                          holdout_fraction: float = 0.2, holdout_n: int | None = None,
                          k: int = 10, threshold: float = RELEVANCE_THRESHOLD,
                          min_coverage_ratio: float = 5.0, seed: int = DEFAULT_SEED,
                          ) -> dict[str, TuningResult]:
    """Tune the ranking on validation data carved from the training part of the ``time``
    and ``last_n`` splits, the same kind of split one level down (``tune_ranking``)."""
    validations = {
        "time": None,  # tune_ranking's default: a time split of the training part
        "last_n": lambda df: _per_user_split(df, holdout_fraction, holdout_n),
    }
    return {name: tune_ranking(splits[name].train, titles, grid, quantile=time_quantile, k=k,
                               threshold=threshold, seed=seed,
                               min_coverage_ratio=min_coverage_ratio, validation=validation)
            for name, validation in validations.items()}


def _ranking_params_per_split(splits: Mapping[str, Split], tuning: Mapping[str, TuningResult]
                              ) -> dict[str, dict[str, Any] | None]:
    """The tuned parameters of each split (``None``: the recommender's defaults)."""
    params = {name: (tuning[name].best_params if name in tuning else None) for name in splits}
    if "random" in params:
        params["random"] = params["last_n"]  # random folds reuse the per-user choice
    return params


# =========================================================================== the served model


def served_recommender(model_df: pd.DataFrame, titles: pd.DataFrame,
                       champion: tuple[Any, Mapping[str, Any]] | None = None,
                       rating_params: Mapping[str, Any] | None = None,
                       ranking_params: Mapping[str, Any] | None = None,
                       seed: int = DEFAULT_SEED) -> tuple[Recommender, str]:
    """The registered champion (``registry.load_champion``'s ``(model, manifest)``, what the
    API serves) when it is a ``Recommender``, else one trained here on ``model_df``.
    Returns it and where it came from. The caller loads the champion: the registry is a
    later stage (``lifecycle``) than ranking."""
    model, manifest = champion if champion is not None else (None, {})
    if isinstance(model, Recommender):
        return model, f"registered champion {manifest.get('version', '?')}"
    rec = Recommender(rating_params, ranking_params, seed=seed).fit(model_df, titles)
    return rec, "trained in this notebook (no champion registered)"


def median_activity_user(model_df: pd.DataFrame) -> int:
    """The user whose number of ratings is closest to the median (smallest id on ties)."""
    counts = model_df.groupby("user").size().sort_index()
    gap = (counts - counts.median()).abs().to_numpy()
    return int(counts.index[int(np.argmin(gap))])


@dataclass
class ServedSample:
    """What the served recommender answers: ``examples`` maps a caption to its table."""

    recommender: Recommender = field(repr=False)
    source: str  # "registered champion v..." or "trained in this notebook ..."
    user: int
    examples: dict[str, pd.DataFrame]


def served_sample(recommender: Recommender, source: str, model_df: pd.DataFrame,
                  titles: pd.DataFrame, *, k: int = 10, user: int | None = None,
                  item: str | None = None) -> ServedSample:
    """A user's favourites and top-``k``, a filtered list, the cold-start list and the titles
    similar to ``item``. Defaults: a user of median activity and the most rated title."""
    user = int(user) if user is not None else median_activity_user(model_df)
    names = titles.drop_duplicates("item_id")[["item_id", "title"]]
    rated = model_df[model_df["user"] == user].merge(names, left_on="item", right_on="item_id")
    favourites = rated.sort_values(["score", "timestamp"], ascending=False).head(5)
    kind = "TV Show" if (titles["type"] == "TV Show").any() else "Movie"
    platform = recommender.platforms[-1]
    cold = recommender.recommend(-1, n=5)
    item = item or model_df["item"].value_counts().index[0]
    item_title = titles.loc[titles["item_id"] == item, "title"].iloc[0]
    examples = {
        f"user {user} rated {len(rated)} titles; their favourites:": favourites[["title", "score"]],
        f"user {user}, top {k}:": recommender.recommend(user, n=k).items,
        f"user {user}, only {kind} titles on {platform}:":
            recommender.recommend(user, n=5, platforms=[platform], kind=kind).items,
        f"an unknown user (cold_start={cold.cold_start}): the best Bayesian-average titles":
            cold.items,
        f"titles similar to {item} ({item_title}):": recommender.similar(item, n=k),
    }
    return ServedSample(recommender, source, user, examples)


# =========================================================================== the result


@dataclass
class EvaluationResult:
    """Everything one evaluation run produced: tables, figures, key numbers, the report."""

    protocol: dict[str, Any]
    splits: dict[str, Split]
    tuning: dict[str, TuningResult]
    evaluations: dict[str, SplitEvaluation]
    served: ServedSample
    figures: dict[str, Figure] = field(default_factory=dict, repr=False)

    @property
    def split_table(self) -> pd.DataFrame:
        """Sizes of each split's two sides."""
        return pd.DataFrame([s.summary() for s in self.splits.values()]).set_index("split")

    def tuning_tables(self) -> dict[str, pd.DataFrame]:
        """Per tuned split, a caption with the choice and its validation table (best NDCG first)."""
        k = self.protocol["k"]
        return {f"{name}: chosen {t.best_params} (coverage constraint met: {t.constraint_met}); "
                f"validation popularity NDCG@{k} {t.popularity['ndcg']:.4f}, "
                f"coverage {t.popularity['coverage']:.4f}":
                t.table.sort_values("ndcg", ascending=False)
                for name, t in self.tuning.items()}

    @property
    def rating_table(self) -> pd.DataFrame:
        """RMSE/MAE of the model and the rating baselines, per split."""
        return pd.concat({n: e.ratings.set_index("model") for n, e in self.evaluations.items()},
                         names=["split"])

    @property
    def ranking_table(self) -> pd.DataFrame:
        """Top-N metrics of the recommender and the baselines, per split."""
        return pd.concat({n: e.ranking.table.set_index("strategy")
                          for n, e in self.evaluations.items()}, names=["split"])

    @property
    def summary(self) -> pd.DataFrame:
        """Per split: the recommender against popularity (ratios and the paired NDCG gain)."""
        rows = {}
        for name, e in self.evaluations.items():
            paired = e.ranking.paired["popularity"]
            rows[name] = {"NDCG ratio vs popularity": e.ranking.ratio("ndcg"),
                          "coverage ratio vs popularity": e.ranking.ratio("coverage"),
                          "paired NDCG gain vs popularity": paired["gain"],
                          "(s.e.)": paired["gain_se"],
                          "users better": paired["share_better"],
                          "users worse": paired["share_worse"]}
        return pd.DataFrame(rows).T

    @property
    def platforms(self) -> list[str]:
        return list(self.evaluations["time"].recommender.platforms)

    @property
    def platform_table(self) -> pd.DataFrame | None:
        """Top-N metrics per platform and strategy, per split; ``None`` for one platform."""
        frames = {n: e.ranking.by_platform for n, e in self.evaluations.items()
                  if e.ranking.by_platform is not None}
        if not frames:
            return None
        cols = ["precision", "recall", "ndcg", "map", "coverage", "n_users"]
        return pd.concat({n: f.set_index(["platform", "strategy"])[cols]
                          for n, f in frames.items()}, names=["split"])

    @property
    def activity_table(self) -> pd.DataFrame:
        """Rating errors by the user's number of training ratings, per split."""
        return pd.concat({n: e.activity.set_index("activity")
                          for n, e in self.evaluations.items()}, names=["split"])

    @property
    def key_numbers(self) -> dict[str, Any]:
        """The headline numbers as plain Python values (glued into the book as ``eval_*``).

        Main split: ``time``; ``lastn_*``: the per-user split; ``random_fold_rmse``: the
        random fold's RMSE (when evaluated).
        """
        main, per_user = self.evaluations["time"], self.evaluations["last_n"]
        m, pop, rnd = (main.ranking.metrics[s] for s in ("model", "popularity", "random"))
        paired = main.ranking.paired["popularity"]
        rmse = main.ratings.set_index("model")
        key = {
            "k": self.protocol["k"], "relevance_threshold": self.protocol["relevance_threshold"],
            "time_quantile": main.split.info["quantile"],
            "cutoff": main.split.info["cutoff"], "n_test_users": m["n_users"],
            "n_test_ratings": len(main.split.test),
            "ndcg": m["ndcg"], "ndcg_se": m["ndcg_se"], "pop_ndcg": pop["ndcg"],
            "ndcg_gain": paired["gain"], "ndcg_gain_se": paired["gain_se"],
            "share_users_better": paired["share_better"],
            "random_ndcg": rnd["ndcg"], "ndcg_ratio": main.ranking.ratio("ndcg"),
            "precision": m["precision"], "recall": m["recall"], "map": m["map"],
            "pop_precision": pop["precision"], "pop_map": pop["map"],
            "coverage": m["coverage"], "pop_coverage": pop["coverage"],
            "coverage_ratio": main.ranking.ratio("coverage"),
            "novelty": m["novelty"], "pop_novelty": pop["novelty"],
            "rmse": rmse.loc["model", "rmse"], "mae": rmse.loc["model", "mae"],
            "item_mean_rmse": rmse.loc["item_mean", "rmse"],
            "global_mean_rmse": rmse.loc["global_mean", "rmse"],
            "lastn_ndcg": per_user.ranking.metrics["model"]["ndcg"],
            "lastn_pop_ndcg": per_user.ranking.metrics["popularity"]["ndcg"],
            "lastn_ndcg_ratio": per_user.ranking.ratio("ndcg"),
            "lastn_coverage_ratio": per_user.ranking.ratio("coverage"),
            "lastn_rmse": per_user.ratings.set_index("model").loc["model", "rmse"],
            "l2": main.recommender.ranking_params["l2"],
            "pop_weight": main.recommender.ranking_params["pop_weight"],
        }
        if "random" in self.evaluations:
            key["random_fold_rmse"] = (self.evaluations["random"].ratings.set_index("model")
                                       .loc["model", "rmse"])
        return jsonable(key)  # plain Python numbers: the book formats them

    def checked_numbers(self) -> dict[str, Any]:
        """The ``CHECKED_NUMBERS`` subset of the key numbers, floats rounded to 4 decimals
        (what the notebook's nbval cell prints)."""
        key = self.key_numbers
        return {name: round(key[name], 4) if isinstance(key[name], float) else key[name]
                for name in CHECKED_NUMBERS}

    def report(self) -> dict[str, Any]:
        """The JSON report: protocol, tuning tables and choices, every split's results, key."""
        return jsonable({
            "protocol": self.protocol,
            "tuning": {n: {"best_params": t.best_params, "constraint_met": t.constraint_met,
                           "validation_split": t.split, "validation_popularity": t.popularity,
                           "table": t.table} for n, t in self.tuning.items()},
            "results": {n: e.to_dict() for n, e in self.evaluations.items()},
            "key": self.key_numbers,
        })

    def write_report(self, path: str | Path) -> Path:
        """Write ``report()`` as JSON to ``path``, atomically (a crash leaves the old file)."""
        return atomic_write_text(path, json.dumps(self.report(), indent=2) + "\n")


# =========================================================================== the run


def evaluate_recommender(model_df: pd.DataFrame, titles: pd.DataFrame, *, k: int = 10,
                         relevance_threshold: float = RELEVANCE_THRESHOLD,
                         time_quantile: float = 0.8, holdout_fraction: float = 0.2,
                         holdout_n: int | None = None, rating_model: str = "fast",
                         tune: bool = True, grid: Mapping[str, Sequence[Any]] | None = None,
                         min_coverage_ratio: float = 5.0, random_fold: bool = True,
                         rank_by_rating: bool = False, sample_user: int | None = None,
                         sample_item: str | None = None,
                         champion: tuple[Any, Mapping[str, Any]] | None = None,
                         seed: int = DEFAULT_SEED, paths: ProjectPaths | None = None,
                         ) -> EvaluationResult:
    """Evaluate the recommender on held-out ratings against baselines (``04_evaluation``).

    ``rating_model``: ``evaluation.rating_params_for`` choice. With ``tune``, the ranking
    parameters of each split are chosen by ``choose_ranking_params`` over ``grid``
    (``tune_ranking`` keys); without, the recommender's defaults are evaluated.
    ``rank_by_rating`` adds the predicted-rating ranking to the strategies. The served
    recommender is ``champion`` (``registry.load_champion``'s ``(model, manifest)``; ``None``:
    one trained here on ``model_df`` with the time split's parameters). With ``paths``, the
    report goes to ``outputs/reports/evaluation.json`` and the figures to ``outputs/figures/``.
    """
    rating_params = rating_params_for(rating_model)
    splits = evaluation_splits(model_df, time_quantile=time_quantile,
                               holdout_fraction=holdout_fraction, holdout_n=holdout_n,
                               random_fold=random_fold, seed=seed)
    tuning = (choose_ranking_params(splits, titles, grid or {}, time_quantile=time_quantile,
                                    holdout_fraction=holdout_fraction, holdout_n=holdout_n,
                                    k=k, threshold=relevance_threshold,
                                    min_coverage_ratio=min_coverage_ratio, seed=seed)
              if tune else {})
    ranking_params = _ranking_params_per_split(splits, tuning)
    strategies = ["model", "popularity", "bayes", "random"] + (["rating"] if rank_by_rating else [])
    evaluations = {name: evaluate_split(split, titles, rating_params=rating_params,
                                        ranking_params=ranking_params[name], seed=seed, k=k,
                                        threshold=relevance_threshold, strategies=strategies)
                   for name, split in splits.items()}
    served, source = served_recommender(model_df, titles, champion, rating_params,
                                        ranking_params["time"], seed)
    protocol = {"k": k, "relevance_threshold": relevance_threshold, "candidates": _CANDIDATES,
                "rating_model": rating_model, "seed": seed,
                "splits": {n: {"description": s.description, **s.summary()}
                           for n, s in splits.items()}}
    result = EvaluationResult(
        protocol=protocol, splits=splits, tuning=tuning,
        evaluations=evaluations,
        served=served_sample(served, source, model_df, titles, k=k, user=sample_user,
                             item=sample_item),
        figures=_figures(evaluations))
    if paths is not None:
        for name, fig in result.figures.items():
            save_figure(fig, name, paths)
        result.write_report(paths.reports / REPORT_FILE)
    return result


def _figures(evaluations: Mapping[str, SplitEvaluation]) -> dict[str, Figure]:
    """The notebook's figures by file stem, closed so that Jupyter shows each one only
    where the notebook displays it (a closed figure still renders)."""
    set_style()
    figures = {
        "eval_topn_comparison": plot_ranking_comparison(
            {n: e.ranking for n, e in evaluations.items()}),
        "eval_error_by_activity": plot_error_by_activity(
            {n: e.activity for n, e in evaluations.items()}),
    }
    for fig in figures.values():
        plt.close(fig)
    return figures
