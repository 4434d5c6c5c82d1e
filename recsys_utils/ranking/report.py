"""The offline evaluation of ``04_evaluation`` in one call, and what it reports.

``evaluate_recommender`` runs the protocol of ``evaluation`` end to end: it makes the
splits (per-user latest share: the headline; global time cut-off; one random fold),
retrains **the registered configuration** (the champion manifest's ranking parameters,
chosen on validation data by ``03_modeling``) on each split's training part with the
same code path as the served model (``Recommender(...).fit``), scores it against the
baselines on the same candidates, shows what the served recommender answers, and
returns an ``EvaluationResult`` holding the tables, the figures and the key numbers the
book glues. With ``paths`` it also writes ``outputs/reports/evaluation.json`` and the
figures, so the notebook only displays.

Why the per-user split leads: it tests every user (the global time split of the default
data tests a few dozen, so its means carry wide error bars), and ``03_modeling`` chose
the ranking on validation data carved from its training window, so its test window
never informed the choice. The time split stays as a secondary view, with its user
count printed next to it. ``retune=True`` re-chooses the ranking per split instead
(``choose_ranking_params``), for comparison.
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
from recsys_utils.errors import DataError
from recsys_utils.paths import ProjectPaths
from recsys_utils.plots import save_figure, set_style
from recsys_utils.ranking.evaluation import (
    RELEVANCE_THRESHOLD,
    Split,
    SplitEvaluation,
    TuningResult,
    evaluate_split,
    jsonable,
    per_user_split,
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
    "registered_configuration",
    "registered_label",
    "median_activity_user",
    "served_recommender",
    "served_sample",
]

#: The report's file name in ``outputs/reports/``.
REPORT_FILE = "evaluation.json"

#: Key numbers the notebook's ``# NBVAL_CHECK_OUTPUT`` cell prints (seeded, so a changed
#: metric fails ``make test``); the others (cut-off date, precision, ...) are glued only.
CHECKED_NUMBERS = (
    "n_test_users", "ndcg", "ndcg_se", "pop_ndcg", "random_ndcg", "ndcg_ratio", "ndcg_gain",
    "ndcg_gain_se", "coverage", "pop_coverage", "coverage_ratio", "map", "novelty", "rmse",
    "time_n_test_users", "time_ndcg", "time_pop_ndcg", "time_ndcg_ratio", "time_ndcg_gain",
    "time_ndcg_gain_se", "time_coverage_ratio", "time_rmse", "item_mean_rmse", "ranker",
    "weighting", "l2", "pop_weight",
)

_CANDIDATES = "all catalog titles the user has not rated in train"


# =========================================================================== steps


def evaluation_splits(model_df: pd.DataFrame, *, time_quantile: float = 0.8,
                      holdout_fraction: float = 0.2, holdout_n: int | None = None,
                      random_fold: bool = True, seed: int = DEFAULT_SEED) -> dict[str, Split]:
    """The evaluation splits by name: ``last_n`` (the headline), ``time`` and (with ``random_fold``)
    ``random`` = fold 1 of the shared 5 folds of ``03_modeling``."""
    splits = {"last_n": per_user_split(model_df, holdout_fraction, holdout_n),
              "time": time_split(model_df, time_quantile)}
    if random_fold:
        splits["random"] = random_folds(model_df, n_folds=5, seed=seed)[0]
    return splits


def not_evaluable(split: Split) -> str | None:
    """Why ``split`` cannot be evaluated (an empty side), or None. On real data this is the
    global time split of ratings imported with one timestamp, or of users who never rated
    on both sides of the cut-off; the headline needs users with two ratings or more."""
    if split.train.empty or split.test.empty:
        side = "training" if split.train.empty else "test"
        hint = {"time": " (do the timestamps record when each rating was made, not when it "
                        "was imported? every rating before the cut-off trains, and the test "
                        "needs a user who rated on both sides)",
                "last_n": " (every user has a single rating)"}.get(split.name, "")
        return f"no rating falls in its {side} part{hint}"
    return None


def choose_ranking_params(splits: Mapping[str, Split], titles: pd.DataFrame,
                          grid: Mapping[str, Sequence[Any]], *, time_quantile: float = 0.8,
                          holdout_fraction: float = 0.2, holdout_n: int | None = None,
                          k: int = 10, threshold: float = RELEVANCE_THRESHOLD,
                          min_coverage_ratio: float = 5.0, seed: int = DEFAULT_SEED,
                          ) -> dict[str, TuningResult]:
    """Tune the ranking on validation data carved from the training part of the ``time``
    and ``last_n`` splits, the same kind of split one level down (``tune_ranking``)."""
    validations = {
        "time": lambda df: time_split(df, time_quantile),
        "last_n": lambda df: per_user_split(df, holdout_fraction, holdout_n),
    }
    return {name: tune_ranking(splits[name].train, titles, grid, k=k,
                               threshold=threshold, seed=seed,
                               min_coverage_ratio=min_coverage_ratio, validation=validation)
            for name, validation in validations.items() if name in splits}


def _ranking_params_per_split(splits: Mapping[str, Split], tuning: Mapping[str, TuningResult],
                              registered: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ranking parameters each split retrains: the registered configuration, or with
    re-tuning the per-split choice (random folds reuse the per-user one)."""
    params = {name: dict(tuning[name].best_params if name in tuning else registered)
              for name in splits}
    if "random" in params and "last_n" in tuning:
        params["random"] = params["last_n"]
    return params


def registered_configuration(champion: tuple[Any, Mapping[str, Any]] | None,
                             model_df: pd.DataFrame, titles: pd.DataFrame, *,
                             grid: Mapping[str, Any] | None = None,
                             holdout_fraction: float = 0.2, holdout_n: int | None = None,
                             min_coverage_ratio: float = 5.0, seed: int = DEFAULT_SEED,
                             ) -> tuple[dict[str, Any], dict[str, Any], str]:
    """``(ranking_params, tuning record, source)`` of the configuration to evaluate.

    The champion's manifest (``params.ranking_params`` and ``params.tuning.ranking``)
    when one is registered: what the API serves. Without a champion, the same choice
    ``03_modeling`` makes (``tune_ranking`` on ``validation_split`` of ``model_df``)."""
    if champion is not None:
        _, manifest = champion
        params = manifest.get("params", {})
        ranking = Recommender(ranking_params=params.get("ranking_params")).ranking_params
        record = params.get("tuning", {}).get("ranking", {"tuned": False})
        return ranking, record, registered_label(manifest)
    choice = tune_ranking(model_df, titles, grid, holdout_fraction=holdout_fraction,
                          holdout_n=holdout_n, min_coverage_ratio=min_coverage_ratio, seed=seed)
    return (choice.best_params, choice.record(),
            "chosen here on validation data (no recommender registered)")


def registered_label(manifest: Mapping[str, Any]) -> str:
    """Which registered version is evaluated: the champion, or the recommender standing in
    for a Spark batch champion (``registry.load_evaluated``)."""
    version = manifest.get("version", "?")
    spark = manifest.get("stand_in_for")
    if spark is None:
        return f"registered champion {version}"
    return (f"registered recommender {version} (the champion {spark} is a Spark batch "
            "version, evaluated by 06_scale_out)")


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
        return model, registered_label(manifest)
    rec = Recommender(rating_params, ranking_params, seed=seed).fit(model_df, titles)
    return rec, "trained in this notebook (no recommender registered)"


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
    #: The evaluated configuration: ``ranking_params``, its ``tuning`` record (manifest)
    #: and ``source`` (which champion, or chosen here).
    configuration: dict[str, Any] = field(default_factory=dict)

    @property
    def rivals(self) -> pd.DataFrame | None:
        """The validation table of the rival rankers behind the registered choice."""
        rivals = self.configuration.get("tuning", {}).get("rivals")
        return pd.DataFrame(rivals) if rivals else None

    @property
    def split_table(self) -> pd.DataFrame:
        """Sizes of each split's two sides, and whether it was evaluated (else why not)."""
        skipped = self.protocol.get("not_evaluated", {})
        return pd.DataFrame([{**s.summary(), "evaluated": skipped.get(n, "yes")}
                             for n, s in self.splits.items()]).set_index("split")

    def tuning_tables(self) -> dict[str, pd.DataFrame]:
        """Per re-tuned split (``retune=True`` only), a caption with the choice and its
        validation table (best NDCG first)."""
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
        """Per split: the recommender against popularity (ratios and the paired NDCG gain),
        with the number of test users each mean is over."""
        rows = {}
        for name, e in self.evaluations.items():
            paired = e.ranking.paired["popularity"]
            m = e.ranking.metrics["model"]
            rows[name] = {"test users": m["n_users"], "NDCG@k": m["ndcg"], "NDCG s.e.": m["ndcg_se"],
                          "popularity NDCG@k": e.ranking.metrics["popularity"]["ndcg"],
                          "NDCG ratio vs popularity": e.ranking.ratio("ndcg"),
                          "coverage ratio vs popularity": e.ranking.ratio("coverage"),
                          "paired NDCG gain vs popularity": paired["gain"],
                          "gain s.e.": paired["gain_se"],
                          "users better": paired["share_better"],
                          "users worse": paired["share_worse"]}
        return pd.DataFrame(rows).T.astype({"test users": int})

    @property
    def platforms(self) -> list[str]:
        return list(self.evaluations["last_n"].recommender.platforms)

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
    def configuration_line(self) -> str:
        """Where the evaluated configuration comes from and its parameters, the re-ranker's
        weights summarised (they are in the manifest)."""
        params = dict(self.configuration.get("ranking_params", {}))
        rerank = params.pop("rerank", None)
        params["rerank"] = (f"learned re-ranker ({len(rerank['features'])} features, "
                            f"{rerank['candidates']} candidates)" if rerank else None)
        return f"{self.configuration.get('source', '')}: {params}"

    @property
    def key_numbers(self) -> dict[str, Any]:
        """The headline numbers as plain Python values (glued into the book as ``eval_*``).

        Headline: the per-user split (``last_n``, every user); ``time_*``: the global time
        split (secondary; ``time_n_test_users`` users); ``random_fold_rmse``: the random
        fold's RMSE (when evaluated); ``ranker``, ``weighting``, ``l2``, ``pop_weight``: the
        evaluated (registered) configuration.
        """
        main = self.evaluations["last_n"]
        m, pop, rnd = (main.ranking.metrics[s] for s in ("model", "popularity", "random"))
        paired = main.ranking.paired["popularity"]
        rmse = main.ratings.set_index("model")
        params = main.recommender.ranking_params
        key = {
            "k": self.protocol["k"], "relevance_threshold": self.protocol["relevance_threshold"],
            "holdout": main.split.info["holdout"], "n_test_users": m["n_users"],
            "n_users_no_relevant": m["n_users_no_relevant"],
            "n_test_ratings": len(main.split.test),
            "ndcg": m["ndcg"], "ndcg_se": m["ndcg_se"], "pop_ndcg": pop["ndcg"],
            "pop_ndcg_se": pop["ndcg_se"],
            "ndcg_gain": paired["gain"], "ndcg_gain_se": paired["gain_se"],
            "share_users_better": paired["share_better"],
            "share_users_worse": paired["share_worse"],
            "random_ndcg": rnd["ndcg"], "ndcg_ratio": main.ranking.ratio("ndcg"),
            "precision": m["precision"], "recall": m["recall"], "map": m["map"],
            "pop_precision": pop["precision"], "pop_map": pop["map"],
            "coverage": m["coverage"], "pop_coverage": pop["coverage"],
            "coverage_ratio": main.ranking.ratio("coverage"),
            "novelty": m["novelty"], "pop_novelty": pop["novelty"],
            "rmse": rmse.loc["model", "rmse"], "mae": rmse.loc["model", "mae"],
            "item_mean_rmse": rmse.loc["item_mean", "rmse"],
            "global_mean_rmse": rmse.loc["global_mean", "rmse"],
            **self._time_numbers(),
            "ranker": params["ranker"], "weighting": params["weighting"],
            "l2": params["l2"], "pop_weight": params["pop_weight"],
            "configuration_source": self.configuration.get("source", ""),
        }
        if "random" in self.evaluations:
            key["random_fold_rmse"] = (self.evaluations["random"].ratings.set_index("model")
                                       .loc["model", "rmse"])
        return jsonable(key)  # plain Python numbers: the book formats them

    def _time_numbers(self) -> dict[str, Any]:
        """The ``time_*`` key numbers: NaN (and 0 users) when the time split was not
        evaluated, the reason in ``time_not_evaluated``."""
        info = self.splits["time"].info
        key = {"time_quantile": info["quantile"], "cutoff": info["cutoff"],
               "time_not_evaluated": self.protocol.get("not_evaluated", {}).get("time", "")}
        timed = self.evaluations.get("time")
        if timed is None:
            return {**key, "time_n_test_users": 0, "time_n_test_ratings": 0,
                    **dict.fromkeys(["time_ndcg", "time_ndcg_se", "time_pop_ndcg",
                                     "time_ndcg_ratio", "time_ndcg_gain", "time_ndcg_gain_se",
                                     "time_coverage_ratio", "time_rmse"], float("nan"))}
        tm, tpaired = timed.ranking.metrics, timed.ranking.paired["popularity"]
        return {**key, "time_n_test_users": tm["model"]["n_users"],
                "time_n_test_ratings": len(timed.split.test),
                "time_ndcg": tm["model"]["ndcg"], "time_ndcg_se": tm["model"]["ndcg_se"],
                "time_pop_ndcg": tm["popularity"]["ndcg"],
                "time_ndcg_ratio": timed.ranking.ratio("ndcg"),
                "time_ndcg_gain": tpaired["gain"], "time_ndcg_gain_se": tpaired["gain_se"],
                "time_coverage_ratio": timed.ranking.ratio("coverage"),
                "time_rmse": timed.ratings.set_index("model").loc["model", "rmse"]}

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
            "configuration": self.configuration,
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
                         retune: bool = False, grid: Mapping[str, Any] | None = None,
                         min_coverage_ratio: float = 5.0, random_fold: bool = True,
                         rank_by_rating: bool = False, sample_user: int | None = None,
                         sample_item: str | None = None,
                         champion: tuple[Any, Mapping[str, Any]] | None = None,
                         seed: int = DEFAULT_SEED, paths: ProjectPaths | None = None,
                         ) -> EvaluationResult:
    """Evaluate the recommender on held-out ratings against baselines (``04_evaluation``).

    The configuration evaluated is ``champion``'s (``registry.load_champion``'s
    ``(model, manifest)``: its registered ranking parameters, retrained on each split's
    training part); without a champion, the choice ``03_modeling`` would make
    (``registered_configuration``). ``retune`` re-chooses the ranking on each split's
    training part instead (over ``grid``). ``rating_model``: ``evaluation.rating_params_for``
    choice (the rating model gives the displayed scores and RMSE; it does not change the
    ranking). ``rank_by_rating`` adds the predicted-rating ranking to the strategies. With
    ``paths``, the report goes to ``outputs/reports/evaluation.json`` and the figures to
    ``outputs/figures/``.
    """
    rating_params = rating_params_for(rating_model)
    splits = evaluation_splits(model_df, time_quantile=time_quantile,
                               holdout_fraction=holdout_fraction, holdout_n=holdout_n,
                               random_fold=random_fold, seed=seed)
    skipped = {name: why for name, split in splits.items() if (why := not_evaluable(split))}
    if "last_n" in skipped:
        raise DataError(f"the per-user split (the headline) cannot be evaluated: "
                        f"{skipped['last_n']}")
    evaluable = {name: split for name, split in splits.items() if name not in skipped}
    registered, record, source = registered_configuration(
        champion, model_df, titles, grid=grid, holdout_fraction=holdout_fraction,
        holdout_n=holdout_n, min_coverage_ratio=min_coverage_ratio, seed=seed)
    tuning = (choose_ranking_params(evaluable, titles, grid, time_quantile=time_quantile,
                                    holdout_fraction=holdout_fraction, holdout_n=holdout_n,
                                    k=k, threshold=relevance_threshold,
                                    min_coverage_ratio=min_coverage_ratio, seed=seed)
              if retune else {})
    ranking_params = _ranking_params_per_split(evaluable, tuning, registered)
    strategies = ["model", "popularity", "bayes", "random"] + (["rating"] if rank_by_rating else [])
    evaluations = {name: evaluate_split(split, titles, rating_params=rating_params,
                                        ranking_params=ranking_params[name], seed=seed, k=k,
                                        threshold=relevance_threshold, strategies=strategies)
                   for name, split in evaluable.items()}
    served, served_from = served_recommender(model_df, titles, champion, rating_params,
                                             registered, seed)
    protocol = {"k": k, "relevance_threshold": relevance_threshold, "candidates": _CANDIDATES,
                "rating_model": rating_model, "seed": seed, "retune": retune,
                "headline": "last_n",
                "splits": {n: {"description": s.description, **s.summary()}
                           for n, s in splits.items()},
                "not_evaluated": skipped}
    result = EvaluationResult(
        protocol=protocol, splits=splits, tuning=tuning,
        evaluations=evaluations,
        served=served_sample(served, served_from, model_df, titles, k=k, user=sample_user,
                             item=sample_item),
        figures=_figures(evaluations),
        configuration={"ranking_params": registered, "tuning": record, "source": source})
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
