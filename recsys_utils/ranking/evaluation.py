"""Honest offline evaluation: splits, the relevance rule, rating and top-N evaluation.

The protocol (stated again in ``04_evaluation``):

* **Splits.** ``time_split``: one global cut-off at a quantile of the rating times;
  train = every rating before it, test = the later ratings *of users seen in train*
  (the model is asked about the future of users it knows; later ratings of brand-new
  users are dropped and counted). ``last_n_split``: each user's last ``n`` (or last
  ``fraction``) ratings by time are held out; users too short to keep ``min_train``
  ratings stay whole in train. ``random_folds``: the shared 5 folds of ``03_modeling``
  (``models.kfold_splits``), for RMSE comparable with cross-validation.
* **Relevance.** A held-out rating is relevant when its score is >= 4.0
  (``RELEVANCE_THRESHOLD``; on a 0.5-5 scale, "liked it"). Users whose held-out ratings
  are all below it have nothing to find: they are excluded from the accuracy means and
  counted (``metrics.ranking_report``).
* **Candidates.** Every catalog title the user has not rated in train (not only the
  titles the user rated in test: that would leak what the user chose to watch).
* **Baselines in the same run.** ``popularity`` (most-rated training titles) and
  ``random`` (seeded) rank exactly the same candidates as the model.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import delayed

from recsys_utils import DEFAULT_SEED
from recsys_utils.data.tables import check_columns
from recsys_utils.errors import DataError
from recsys_utils.ranking.metrics import per_user_ndcg, ranking_report
from recsys_utils.ranking.new_users import POLICY_OFF, choose_new_user_policy
from recsys_utils.ranking.provenance import parameter_sources, untuned
from recsys_utils.ranking.rankers import RANKERS
from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS, Recommender
from recsys_utils.ranking.rerank import (
    DEFAULT_STRUCTURE,
    FEATURES,
    fit_weights,
    labelled_candidates,
    with_popularity_penalty,
)
from recsys_utils.rating.adapter import predict_pairs, rmse_mae
from recsys_utils.rating.comparison import kfold_splits, run_parallel

__all__ = [
    "ACTIVITY_BINS",
    "DEFAULT_RANKING_GRID",
    "RATING_MODEL_CHOICES",
    "RELEVANCE_THRESHOLD",
    "RankingResult",
    "Split",
    "SplitEvaluation",
    "TuningResult",
    "choose_reranker",
    "error_by_activity",
    "evaluate_rating",
    "evaluate_ranking",
    "evaluate_split",
    "item_popularity",
    "jsonable",
    "last_n_split",
    "per_user_split",
    "random_folds",
    "rating_params_for",
    "rating_table",
    "relevant_items",
    "time_split",
    "tune_ranking",
    "validation_split",
]

#: A held-out rating at or above this score is a relevant (liked) title.
RELEVANCE_THRESHOLD: float = 4.0

#: Edges of the user-activity buckets (number of training ratings) for ``error_by_activity``.
ACTIVITY_BINS: tuple[float, ...] = (0, 20, 50, 100, 200, 500, np.inf)


# =========================================================================== splits


@dataclass(frozen=True)
class Split:
    """A train/test pair with a readable description of how it was made."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    description: str
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Sizes of both sides (for the notebook's protocol table)."""
        return {
            "split": self.name,
            "train_ratings": len(self.train),
            "test_ratings": len(self.test),
            "train_users": int(self.train["user"].nunique()),
            "test_users": int(self.test["user"].nunique()),
            **self.info,
        }


def _check_model_table(df: pd.DataFrame, need_time: bool = True) -> None:
    columns = ["user", "item", "score"] + (["timestamp"] if need_time else [])
    check_columns(df, columns, "the ratings to evaluate",
                  hint="evaluation needs the model table's columns (data.tables)")


def time_split(model_df: pd.DataFrame, quantile: float = 0.8) -> Split:
    """Train on ratings before the ``quantile`` of rating times; test on the later ratings
    of users seen in train.

    The cut-off is an actual rating time (lower quantile), train is strictly before it and
    test at or after it, so every test rating is later than every training rating.
    """
    _check_model_table(model_df)
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    times = model_df["timestamp"].to_numpy()
    cut = np.quantile(times.astype("datetime64[s]").astype(np.int64), quantile, method="lower")
    cut_ts = np.datetime64(int(cut), "s")
    before = times < cut_ts
    train = model_df[before]
    later = model_df[~before]
    seen = later["user"].isin(pd.unique(train["user"]))
    test = later[seen]
    info = {"cutoff": str(pd.Timestamp(cut_ts)), "quantile": quantile,
            "later_ratings_of_new_users": int((~seen).sum()),
            "later_users_new": int(later.loc[~seen, "user"].nunique())}
    return Split("time", train, test,
                 f"global time cut-off at the {quantile:.0%} quantile of rating times "
                 f"({info['cutoff']}); test = later ratings of users seen before it", info)


def last_n_split(model_df: pd.DataFrame, n: int | None = None, fraction: float | None = 0.2,
                 min_train: int = 1) -> Split:
    """Hold out each user's last ``n`` ratings (or the last ``ceil(fraction * count)``).

    Ratings are ordered by time, then item id (equal times need a rule). A user who would
    keep fewer than ``min_train`` training ratings stays entirely in train.
    """
    _check_model_table(model_df)
    if (n is None) == (fraction is None):
        raise ValueError("give exactly one of n and fraction")
    if n is not None and n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if fraction is not None and not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    df = model_df.sort_values(["user", "timestamp", "item"], kind="mergesort")
    from_end = df.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
    count = df.groupby("user", sort=False)["item"].transform("size").to_numpy()
    hold = np.full(len(df), n) if n is not None else np.ceil(count * fraction).astype(np.int64)
    hold = np.where(count - hold >= min_train, hold, 0)
    is_test = from_end < hold
    label = f"last {n}" if n is not None else f"last {fraction:.0%}"
    train, test = df[~is_test], df[is_test]
    # held-out ratings made in the same second as the user's latest training one: between
    # those, title ids decide, not time (all of them in an export whose times are all equal)
    latest = test["user"].map(train.groupby("user")["timestamp"].max())
    ties = float((test["timestamp"] == latest).mean()) if len(test) else 0.0
    info = {"holdout": label, "users_kept_whole": int(
        pd.Series(hold == 0).groupby(df["user"].to_numpy()).all().sum()),
        "time_ties": round(ties, 4)}
    by = ("by time" if ties <= 0.5 else
          f"by time, though {ties:.0%} of them share the second of the user's latest training "
          "rating and are held out by title id")
    return Split("last_n", train, test,
                 f"per-user holdout: each user's {label} ratings {by} (>= {min_train} "
                 "kept in train)", info)


def random_folds(model_df: pd.DataFrame, n_folds: int = 5, seed: int = DEFAULT_SEED) -> list[Split]:
    """The shared random folds of ``03_modeling`` (surprise's ``KFold(random_state=seed)``)."""
    _check_model_table(model_df, need_time=False)
    return [Split(f"fold{f + 1}", train, test,
                  f"random fold {f + 1} of {n_folds} (seed {seed})", {"fold": f + 1})
            for f, (train, test) in enumerate(kfold_splits(model_df, n_folds, seed))]


# =========================================================================== relevance


def relevant_items(test: pd.DataFrame, threshold: float = RELEVANCE_THRESHOLD
                   ) -> dict[int, set[str]]:
    """Each test user's relevant titles (score >= ``threshold``); an empty set if none."""
    rel = test.loc[test["score"] >= threshold].groupby("user")["item"].agg(
        lambda s: set(s.astype(str)))
    return {int(u): rel.get(u, set()) for u in pd.unique(test["user"])}


def item_popularity(train: pd.DataFrame) -> dict[str, float]:
    """Share of training users who rated each title (for ``metrics.novelty``)."""
    n_users = max(int(train["user"].nunique()), 1)
    counts = train.drop_duplicates(["user", "item"])["item"].astype(str).value_counts()
    return (counts / n_users).to_dict()


# =========================================================================== ratings


def evaluate_rating(model: Any, test: pd.DataFrame) -> dict[str, float]:
    """RMSE and MAE of ``model.predict_items`` (clipped) on the test ratings."""
    _check_model_table(test, need_time=False)
    if len(test) == 0:
        return {"rmse": float("nan"), "mae": float("nan"), "n": 0}
    est = predict_pairs(model, test["user"].tolist(), test["item"].astype(str).tolist())
    rmse, mae = rmse_mae(test["score"].to_numpy(dtype=np.float64), est)
    return {"rmse": rmse, "mae": mae, "n": len(test)}


def _baseline_predictions(train: pd.DataFrame, test: pd.DataFrame, seed: int
                          ) -> dict[str, np.ndarray]:
    mu = float(train["score"].mean())
    stats = train.groupby("item")["score"].agg(["sum", "size"])
    # damped by 10 pseudo-ratings at the global mean (the cold-start list's Bayesian average)
    item_mean = (stats["sum"] + 10 * mu) / (stats["size"] + 10)
    rng = np.random.default_rng(seed)
    sigma = float(train["score"].std(ddof=0))
    return {
        "item_mean": test["item"].map(item_mean).fillna(mu).to_numpy(dtype=np.float64),
        "global_mean": np.full(len(test), mu),
        # surprise's NormalPredictor: N(mu, sigma) clipped to the scale
        "random": np.clip(rng.normal(mu, sigma, len(test)), 0.5, 5.0),
    }


def rating_table(model: Any, train: pd.DataFrame, test: pd.DataFrame, seed: int = DEFAULT_SEED
                 ) -> pd.DataFrame:
    """RMSE/MAE of the model and of three baselines on the same test ratings.

    Baselines: ``item_mean`` (the title's training mean damped by 10 pseudo-ratings at
    the global mean: the Bayesian average the cold-start list ranks by), ``global_mean``
    and ``random`` (normal draws around the mean, like surprise's NormalPredictor, seeded).
    """
    rows = [{"model": "model", **evaluate_rating(model, test)}]
    y = test["score"].to_numpy(dtype=np.float64)
    for name, est in _baseline_predictions(train, test, seed).items():
        rmse, mae = rmse_mae(y, est) if len(y) else (float("nan"), float("nan"))
        rows.append({"model": name, "rmse": rmse, "mae": mae, "n": len(test)})
    return pd.DataFrame(rows)


def error_by_activity(model: Any, train: pd.DataFrame, test: pd.DataFrame,
                      bins: Sequence[float] = ACTIVITY_BINS) -> pd.DataFrame:
    """RMSE/MAE of the test ratings grouped by the user's number of training ratings.

    Users unseen in train fall in the first bucket (0 training ratings). Columns:
    ``activity`` (bucket label ``lo-hi``), ``n_users``, ``n_ratings``, ``rmse``, ``mae``.
    """
    activity = train.groupby("user").size()
    n_train = test["user"].map(activity).fillna(0).to_numpy()
    est = predict_pairs(model, test["user"].tolist(), test["item"].astype(str).tolist())
    err = est - test["score"].to_numpy(dtype=np.float64)
    edges = list(bins)
    labels = [f"{int(lo)}-{'inf' if np.isinf(hi) else int(hi)}"
              for lo, hi in itertools.pairwise(edges)]
    bucket = pd.cut(n_train, edges, labels=labels, right=True, include_lowest=True)
    frame = pd.DataFrame({"activity": bucket, "user": test["user"].to_numpy(), "err": err})
    out = frame.groupby("activity", observed=False).agg(
        n_users=("user", "nunique"), n_ratings=("err", "size"),
        rmse=("err", lambda e: float(np.sqrt(np.mean(e**2))) if len(e) else np.nan),
        mae=("err", lambda e: float(np.mean(np.abs(e))) if len(e) else np.nan))
    return out.reset_index().astype({"activity": str})


# =========================================================================== ranking


@dataclass
class RankingResult:
    """Top-N metrics of the model and the baselines from one run.

    ``metrics[strategy]`` is a ``metrics.ranking_report`` dict; ``by_platform`` has one
    row per (platform, strategy) when the catalog has several platforms, else ``None``.
    ``paired[baseline]``: the model's NDCG@k minus the baseline's, user by user on the
    same users (``gain``), with its standard error (``gain_se``) and the share of users
    where the model is strictly better / worse: the honest way to say "better" when the
    users are few.
    """

    metrics: dict[str, dict[str, Any]]
    by_platform: pd.DataFrame | None
    k: int
    threshold: float
    recommender: Recommender | None = field(default=None, repr=False)
    paired: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """One row per strategy: precision, recall, ndcg, map, coverage, novelty, users."""
        cols = ["precision", "recall", "ndcg", "ndcg_se", "map", "coverage", "novelty",
                "n_users", "n_users_no_relevant"]
        return pd.DataFrame([{"strategy": s, **{c: m[c] for c in cols}}
                             for s, m in self.metrics.items()])

    def ratio(self, metric: str, baseline: str = "popularity") -> float:
        """``metric`` of the model over the baseline's; NaN when the baseline's is 0 (a
        split too small for the baseline to find anything has no ratio)."""
        base = self.metrics[baseline][metric]
        return float(self.metrics["model"][metric] / base) if base else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: metrics per strategy, and the platform breakdown as records."""
        out: dict[str, Any] = {"k": self.k, "relevance_threshold": self.threshold,
                               "metrics": self.metrics, "paired_ndcg_vs_model": self.paired}
        if self.by_platform is not None:
            out["by_platform"] = self.by_platform.to_dict(orient="records")
        return out


def evaluate_ranking(recommender_factory: Callable[[pd.DataFrame], Recommender] | Recommender,
                     train: pd.DataFrame, test: pd.DataFrame, k: int = 10, *,
                     threshold: float = RELEVANCE_THRESHOLD, seed: int = DEFAULT_SEED,
                     strategies: Sequence[str] = ("model", "popularity", "random"),
                     by_platform: bool = True) -> RankingResult:
    """Top-``k`` metrics of a recommender and the baselines, on the same candidates.

    ``recommender_factory(train)`` returns a fitted ``Recommender`` (or pass one already
    fitted on ``train``). Lists are made for every training user (coverage, novelty);
    accuracy is averaged over test users with a relevant title. The random baseline is
    seeded by ``seed``. With ``by_platform`` and several platforms in the catalog, each
    platform is evaluated alone (candidates and relevant titles on that platform).
    """
    rec = (recommender_factory if isinstance(recommender_factory, Recommender)
           else recommender_factory(train))
    relevant = relevant_items(test, threshold)
    popularity = item_popularity(train)
    metrics, per_user = {}, {}
    for strategy in strategies:
        lists = rec.recommend_all(k, strategy=strategy, seed=seed)
        metrics[strategy] = ranking_report(lists, relevant, k, popularity, len(rec.item_ids))
        per_user[strategy] = per_user_ndcg(lists, relevant, k)
    paired = {}
    if "model" in per_user:
        users = list(per_user["model"])
        for strategy in strategies:
            if strategy == "model":
                continue
            if not users:  # no test user has a relevant title: nothing to compare
                paired[strategy] = dict.fromkeys(
                    ("gain", "gain_se", "share_better", "share_worse"), float("nan"))
                continue
            diff = np.array([per_user["model"][u] - per_user[strategy][u] for u in users])
            paired[strategy] = {
                "gain": float(diff.mean()),
                "gain_se": float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1
                else float("nan"),
                "share_better": float(np.mean(diff > 0)),
                "share_worse": float(np.mean(diff < 0)),
            }
    platform_rows = []
    if by_platform and len(rec.platforms) > 1:
        for platform in rec.platforms:
            mask = rec.candidate_mask([platform])
            on_platform = set(rec.item_ids[mask].tolist())
            rel_p = {u: items & on_platform for u, items in relevant.items()}
            for strategy in strategies:
                lists = rec.recommend_all(k, platforms=[platform], strategy=strategy, seed=seed)
                rep = ranking_report(lists, rel_p, k, popularity, int(mask.sum()))
                platform_rows.append({"platform": platform, "strategy": strategy, **rep})
    return RankingResult(metrics=metrics,
                         by_platform=pd.DataFrame(platform_rows) if platform_rows else None,
                         k=k, threshold=threshold, recommender=rec, paired=paired)


@dataclass
class SplitEvaluation:
    """Everything ``04_evaluation`` reports for one split."""

    split: Split
    recommender: Recommender = field(repr=False)
    ratings: pd.DataFrame  # rating_table
    ranking: RankingResult
    activity: pd.DataFrame  # error_by_activity
    fit_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split.summary(), "description": self.split.description,
                "ranking_params": self.recommender.ranking_params,
                "rating": self.ratings.set_index("model").to_dict(orient="index"),
                "ranking": self.ranking.to_dict(), "error_by_activity": self.activity,
                "ndcg_ratio_vs_popularity": self.ranking.ratio("ndcg"),
                "coverage_ratio_vs_popularity": self.ranking.ratio("coverage")}


def evaluate_split(split: Split, titles: pd.DataFrame, *,
                   rating_params: Mapping[str, Any] | None = None,
                   ranking_params: Mapping[str, Any] | None = None, seed: int = DEFAULT_SEED,
                   k: int = 10, threshold: float = RELEVANCE_THRESHOLD,
                   strategies: Sequence[str] = ("model", "popularity", "bayes", "random"),
                   ) -> SplitEvaluation:
    """Fit a ``Recommender`` on ``split.train``; rating errors, top-N metrics (model and
    baselines, per platform too) and errors by user activity on ``split.test``."""
    import time

    t0 = time.perf_counter()
    rec = Recommender(rating_params, ranking_params, seed=seed).fit(split.train, titles)
    fit_seconds = time.perf_counter() - t0
    return SplitEvaluation(
        split=split, recommender=rec,
        ratings=rating_table(rec, split.train, split.test, seed),
        ranking=evaluate_ranking(rec, split.train, split.test, k, threshold=threshold,
                                 seed=seed, strategies=strategies),
        activity=error_by_activity(rec, split.train, split.test),
        fit_seconds=fit_seconds)


# =========================================================================== tuning


@dataclass
class TuningResult:
    """Validation table of ``tune_ranking``, the chosen parameters and where they came from.

    ``table``: one row per configuration tried (``ranker``, its parameters, the blend
    weights; validation ``ndcg``, ``coverage``, ... and the ratios to popularity's);
    ``best_params``: the full ``ranking_params`` chosen; ``grid``: the grid as given;
    ``popularity``: popularity's validation NDCG and coverage; ``split``: the validation
    split's sizes; ``min_coverage_ratio``: the coverage floor of the choice.
    """

    table: pd.DataFrame
    best_params: dict[str, Any]
    popularity: dict[str, float]
    constraint_met: bool
    split: dict[str, Any]
    grid: dict[str, Any] = field(default_factory=dict)
    min_coverage_ratio: float = 5.0
    k: int = 10
    #: each user's share held out for validation (or ``holdout_n`` ratings): how to choose
    #: again the same way (``lifecycle.retrain.rechoose_ranking``)
    holdout_fraction: float = 0.2
    holdout_n: int | None = None
    #: ``choose_reranker``'s record (``{"tried": False, ...}`` when it was not tried).
    rerank: dict[str, Any] = field(default_factory=lambda: {"tried": False,
                                                             "outcome": "not tried"})
    #: ``new_users.choose_new_user_policy``'s record (``{"tried": False, ...}`` when not).
    new_users: dict[str, Any] = field(default_factory=lambda: {"tried": False,
                                                                "outcome": "not tried"})

    @property
    def best_row(self) -> dict[str, Any]:
        """The chosen configuration's validation row."""
        return {key: _plain(v) for key, v in self.table.loc[self.table["chosen"]].iloc[0].items()
                if not (isinstance(v, float) and np.isnan(v))}

    @property
    def rivals(self) -> pd.DataFrame:
        """The best configuration of each ranker and weighting (``"ease (binary)"``, ...) on
        the same validation users and candidates
        (chosen by the same rule: best NDCG among those above the coverage floor, else the
        best NDCG), plus the popularity baseline; best NDCG first."""
        rows = []
        table = self.table.assign(weighting=self.table.get("weighting", pd.Series(
            DEFAULT_RANKING_PARAMS["weighting"], index=self.table.index)).fillna(
            self.best_params["weighting"]))
        for (ranker, weighting), group in table.groupby(["ranker", "weighting"], sort=False):
            ok = group[group["coverage_ratio"] >= self.min_coverage_ratio]
            best = (ok if len(ok) else group).sort_values("ndcg", ascending=False).iloc[0]
            params = {key: _plain(best[key]) for key in group.columns
                      if key not in _SCORE_COLUMNS + ("ranker", "chosen", "weighting")
                      and not pd.isna(best[key])}
            rows.append({"rival": f"{ranker} ({weighting})", "params": _describe(params),
                         "ndcg": best["ndcg"], "coverage": best["coverage"],
                         "ndcg_ratio": best["ndcg_ratio"],
                         "coverage_ratio": best["coverage_ratio"],
                         "meets_coverage_floor": bool(len(ok)),
                         "configurations": len(group), "chosen": bool(best["chosen"])})
        rows.append({"rival": "popularity (baseline)", "params": "",
                     "ndcg": self.popularity["ndcg"], "coverage": self.popularity["coverage"],
                     "ndcg_ratio": 1.0, "coverage_ratio": 1.0, "meets_coverage_floor": False,
                     "configurations": 1, "chosen": False})
        return pd.DataFrame(rows).sort_values("ndcg", ascending=False, kind="stable")

    @property
    def summary(self) -> str:
        """One line: what was chosen, by which rule, with which validation score."""
        p, row = self.best_params, self.best_row
        varied = {k: v for k, v in row.items()
                  if k not in _SCORE_COLUMNS + ("ranker", "chosen", "weighting")}
        return (f"chosen {p['ranker']} ({p['weighting']}) {_describe(varied)}: validation "
                f"NDCG@{self.k} {row['ndcg']:.4f} ({row['ndcg_ratio']:.2f}x popularity's), "
                f"coverage {row['coverage_ratio']:.2f}x; rule: {self.record()['rule']}"
                f"\nre-ranker: {self.rerank['outcome']}"
                f"\nnew users: {self.new_users['outcome']}")

    @property
    def new_users_table(self) -> pd.DataFrame:
        """Held-out new users' validation NDCG of each list by the number of ratings they
        gave (``new_users.summarise_curve``); empty when the policy was not chosen."""
        return pd.DataFrame(self.new_users.get("table", [])).set_index("n_given") \
            if self.new_users.get("table") else pd.DataFrame()

    def checked_numbers(self) -> dict[str, str]:
        """Each rival's validation NDCG and coverage ratio, as the checked cell prints them."""
        return {f"rival {r.rival}": f"val_ndcg {r.ndcg:.4f}, coverage x{r.coverage_ratio:.2f}"
                for r in self.rivals.itertuples()}

    def _floor_outcome(self) -> str:
        """How many configurations reached the coverage floor, as the book says it (on small
        data none may, and the rule then falls back to the best NDCG overall)."""
        reached = int((self.table["coverage_ratio"] >= self.min_coverage_ratio).sum())
        if not reached:
            return ("no configuration reached it on this data, so the best NDCG@10 overall "
                    "was chosen")
        return f"{reached:,} of the {len(self.table):,} configurations reached it"

    @property
    def key_numbers(self) -> dict[str, Any]:
        """The choice and every rival's validation NDCG/coverage as plain values (glued
        into the book as ``model_ranking_*``; rival keys like ``rival_ease_binary_ndcg``)."""
        row = self.best_row
        key: dict[str, Any] = {
            "ranker": self.best_params["ranker"], "weighting": self.best_params["weighting"],
            "pop_weight": self.best_params["pop_weight"], "l2": self.best_params["l2"],
            "val_ndcg": row["ndcg"], "val_coverage": row["coverage"],
            "val_pop_ndcg": self.popularity["ndcg"],
            "val_pop_coverage": self.popularity["coverage"],
            "val_ndcg_ratio": row["ndcg_ratio"], "val_coverage_ratio": row["coverage_ratio"],
            "val_users": row["n_users"], "configurations": len(self.table),
            "constraint_met": self.constraint_met,
            "coverage_floor": self.min_coverage_ratio,
            "floor_outcome": self._floor_outcome(),
            "rerank_outcome": self.rerank["outcome"],
            "rerank_adopted": bool(self.rerank.get("adopted", False)),
            "new_users_outcome": self.new_users["outcome"],
            "cold_start_list": self.best_params["cold_start_list"],
            "personalise_from": self.best_params["personalise_from"],
            "rerank_from": self.best_params["rerank_from"],
            "untuned": ", ".join(untuned(self.record()["sources"])) or "none",
        }
        for name, value in self.rerank.get("validation", {}).items():
            key[f"rerank_val_{name}"] = value
        for r in self.rivals.itertuples():
            if r.rival == "popularity (baseline)":
                continue
            name = r.rival.replace(" (", "_").replace(")", "")
            key[f"rival_{name}_ndcg"] = r.ndcg
            key[f"rival_{name}_coverage_ratio"] = r.coverage_ratio
        return jsonable(key)

    def record(self) -> dict[str, Any]:
        """What a registered model records about its ranking parameters: every chosen value,
        the validation scores of the choice, the grid, the rule and the rivals."""
        row = self.best_row
        record = jsonable({
            "chosen": self.best_params,
            "validation": {key: row[key] for key in _SCORE_COLUMNS if key in row},
            "validation_popularity": self.popularity,
            "validation_split": self.split,
            "grid": self.grid,
            "rule": f"best validation NDCG@{self.k} among configurations whose catalog coverage "
                    f">= {self.min_coverage_ratio} x popularity's (met: {self.constraint_met})",
            "rivals": self.rivals,
            "rerank": self.rerank,
            "new_users": self.new_users,
            "protocol": {"k": self.k, "min_coverage_ratio": self.min_coverage_ratio,
                         "holdout_fraction": self.holdout_fraction, "holdout_n": self.holdout_n,
                         "reranker_tried": bool(self.rerank.get("tried", False)),
                         "new_users_tried": bool(self.new_users.get("tried", False))},
        })
        return {**record, "sources": parameter_sources(record["chosen"], record)}


#: Popularity penalties ``choose_reranker`` tries, in order, until the coverage floor holds.
POPULARITY_PENALTIES: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)

#: The rivals ``03_modeling`` tunes side by side when its ``ranking_grid`` is ``None``
#: (``notebooks/params.yaml`` sets the same grid explicitly): about 10 fits.
DEFAULT_RANKING_GRID: dict[str, dict[str, list[Any]]] = {
    "ease": {"weighting": ["score", "binary"], "l2": [100.0, 400.0],
             "pop_weight": [0.0, -0.2, -0.4], "recency": [0.0, 0.4]},
    "itemknn": {"weighting": ["score"], "neighbours": [100], "pop_weight": [0.0, -0.2],
                "recency": [0.0, 0.4]},
    "rp3beta": {"weighting": ["binary"], "alpha": [0.8], "beta": [0.3], "pop_weight": [0.0, -0.2]},
    "als": {"weighting": ["score"], "als_reg": [1.0], "pop_weight": [0.0, -0.2],
            "recency": [0.0, 0.4]},
}

#: Ranking parameters that need a refit; the others only change the blend.
_BLEND_KEYS = ("ease_weight", "pop_weight", "rating_weight", "recency")
_REFIT_KEYS = tuple(k for k in DEFAULT_RANKING_PARAMS
                    if k not in _BLEND_KEYS + ("prior_count", "n_factors", "rerank")
                    + tuple(POLICY_OFF))
_SCORE_COLUMNS = ("ndcg", "coverage", "precision", "recall", "ndcg_ratio", "coverage_ratio",
                  "n_users")


def _describe(params: Mapping[str, Any]) -> str:
    """``l2=100.0, neighbours=50`` (whole numbers that a table made float shown as ints)."""
    def show(key: str, v: Any) -> Any:
        whole = isinstance(DEFAULT_RANKING_PARAMS.get(key), int) and float(v).is_integer()
        return int(v) if whole else v
    return ", ".join(f"{k}={show(k, v)}" for k, v in params.items())


def _per_ranker_grid(grid: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, dict]:
    """``{ranker: {param: values}}``; a flat grid (parameter keys) tunes the base ranker."""
    if grid and all(key in RANKERS for key in grid):
        return {name: dict(sub or {}) for name, sub in grid.items()}
    return {str(base.get("ranker", DEFAULT_RANKING_PARAMS["ranker"])): dict(grid)}


def per_user_split(df: pd.DataFrame, fraction: float, n: int | None) -> Split:
    """Each user's last ``n`` ratings when ``n`` is set, else each user's last ``fraction``."""
    return last_n_split(df, n=n, fraction=None) if n else last_n_split(df, fraction=fraction)


def validation_split(model_df: pd.DataFrame, holdout_fraction: float = 0.2,
                     holdout_n: int | None = None) -> Split:
    """The split the served ranking is chosen on: per user and time-aware, one level
    down. Each user's latest ``holdout_fraction`` (or ``holdout_n``) ratings are the
    evaluation's test window (``04_evaluation``'s per-user split) and are never looked at;
    of the rest, each user's latest share is the validation part. So the evaluation of
    the registered configuration is not contaminated by its choice."""
    inner = per_user_split(per_user_split(model_df, holdout_fraction, holdout_n).train,
                           holdout_fraction, holdout_n)
    return Split("validation", inner.train, inner.test,
                 f"per-user validation: each user's latest ratings of the training window "
                 f"({inner.info['holdout']} of what remains once the evaluation's "
                 f"{inner.info['holdout']} are held out)", inner.info)


def tune_ranking(model_df: pd.DataFrame, titles: pd.DataFrame,
                 grid: Mapping[str, Any] | None = None, *,
                 base_params: Mapping[str, Any] | None = None, holdout_fraction: float = 0.2,
                 holdout_n: int | None = None,
                 k: int = 10, threshold: float = RELEVANCE_THRESHOLD,
                 min_coverage_ratio: float = 5.0, seed: int = DEFAULT_SEED,
                 validation: Callable[[pd.DataFrame], Split] | None = None,
                 rating_params: Mapping[str, Any] | None = None,
                 n_jobs: int = 1, rerank: bool = True, new_users: bool = True) -> TuningResult:
    """Choose the ranker and its parameters on a validation split carved from ``model_df``.

    The validation split is ``validation(model_df)``, by default ``validation_split``:
    per user and time-aware, carved from the training window left once the evaluation's
    per-user test window (each user's latest ``holdout_fraction``) is set aside, so
    the test never informs the choice. ``grid`` is either
    ``{ranker: {parameter: values}}`` (rivals tuned side by side, ``rankers.RANKERS``) or
    one ranker's ``{parameter: values}``; parameters are keys of ``DEFAULT_RANKING_PARAMS``
    (blend weights ``ease_weight``, ``pop_weight``, ``rating_weight`` are varied without a
    refit). Every configuration is scored by NDCG@k and catalog coverage on the same
    validation users and candidates; the winner has the best NDCG among those whose
    coverage is at least ``min_coverage_ratio`` x popularity's (if none qualifies, the
    best NDCG overall, ``constraint_met=False``); ties go to the first in grid order.
    The validation fits use a surprise ``BaselineOnly`` component as rating model (fast;
    the ranking does not use it) unless the grid tries a non-zero ``rating_weight``.
    ``n_jobs``: refits run in that many processes; the table does not depend on it.
    With ``rerank``, the chosen configuration may then get a learned re-ranker
    (``choose_reranker``), recorded either way. With ``new_users``, the new-user policy
    (which cold-start list, from how many ratings the personal list and its re-ranker) is
    then chosen on users of the training window held out whole
    (``new_users.choose_new_user_policy``), recorded either way.
    """
    from recsys_utils.rating.blend import build_rating_model
    from recsys_utils.rating.predictors import make_component

    base = dict(base_params or {})
    grid = DEFAULT_RANKING_GRID if grid is None else grid
    per_ranker = _per_ranker_grid(grid, base)
    for name, sub in per_ranker.items():
        unknown = set(sub) - set(_REFIT_KEYS) - set(_BLEND_KEYS)
        if name not in RANKERS or unknown:
            raise ValueError(f"tune_ranking cannot tune {name!r} {sorted(unknown)}; rankers: "
                             f"{list(RANKERS)}; parameters: {sorted(_REFIT_KEYS + _BLEND_KEYS)}")
    # a partial, not a closure: refits in worker processes receive it by pickling
    factory = (functools.partial(build_rating_model,
                                 dict(rating_params) if rating_params else None, seed=seed,
                                 titles=titles)
               if any(float(w) != 0 for sub in per_ranker.values()
                      for w in sub.get("rating_weight", [0.0]))
               else functools.partial(make_component, "baseline", seed=seed))
    split = (validation(model_df) if validation is not None
             else validation_split(model_df, holdout_fraction, holdout_n))
    relevant = relevant_items(split.test, threshold)
    popularity = item_popularity(split.train)
    refits = []  # (ranker, refit parameters, blend-weight grid), in grid order
    for name, sub in per_ranker.items():
        refit_keys = [key for key in sub if key in _REFIT_KEYS]
        blend_grid = {key: sub[key] for key in sub if key in _BLEND_KEYS}
        refits += [(name, dict(zip(refit_keys, values, strict=True)), blend_grid)
                   for values in itertools.product(*(sub[key] for key in refit_keys))]
    if not refits:
        raise ValueError("the ranking grid is empty")
    tasks = [delayed(_score_refit)(name, {**base, **refit, "ranker": name}, refit, blend_grid,
                                   factory, split.train, titles, relevant, popularity, k, seed,
                                   with_popularity=n == 0)
             for n, (name, refit, blend_grid) in enumerate(refits)]
    done = run_parallel(tasks, n_jobs)
    rows = [row for task_rows, _, _ in done for row in task_rows]
    chosen_params = [params for _, task_params, _ in done for params in task_params]
    pop_report = done[0][2]
    table = pd.DataFrame(rows)
    table["ndcg_ratio"] = table["ndcg"] / pop_report["ndcg"]
    table["coverage_ratio"] = table["coverage"] / pop_report["coverage"]
    if table["ndcg"].isna().all():
        raise DataError(
            f"cannot choose the ranking on {len(model_df):,} ratings: no validation user has "
            f"a relevant title (a held-out score >= {threshold:g}) in the {split.description}; "
            "bring more ratings, or run 03_modeling with choose_ranking=False (registers "
            "ranking_params, recorded as not chosen on this data)")
    ok = table["coverage_ratio"] >= min_coverage_ratio
    pool = table[ok] if ok.any() else table
    best = int(pool["ndcg"].idxmax())
    table["chosen"] = table.index == best
    best_params = {key: _plain(v) for key, v in
                   Recommender(ranking_params=chosen_params[best]).ranking_params.items()}
    carve = validation or functools.partial(per_user_split, fraction=holdout_fraction,
                                            n=holdout_n)
    reranker = (choose_reranker(split, carve, best_params, titles, factory, k=k,
                                threshold=threshold, seed=seed, n_jobs=n_jobs,
                                min_coverage_ratio=min_coverage_ratio if ok.any() else None)
                if rerank else {"tried": False, "outcome": "not tried (rerank=False)"})
    best_params["rerank"] = reranker.pop("weights", None)
    policy = (choose_new_user_policy(pd.concat([split.train, split.test]), titles, best_params,
                                     factory, seed=seed, k=k, threshold=threshold)
              if new_users else {"tried": False, "outcome": "not tried (new_users=False)"})
    best_params.update(policy.get("chosen") or {})
    return TuningResult(table=table, best_params=best_params,
                        popularity={"ndcg": pop_report["ndcg"],
                                    "coverage": pop_report["coverage"]},
                        constraint_met=bool(ok.any()), split=split.summary(),
                        grid=jsonable(dict(grid)), min_coverage_ratio=min_coverage_ratio, k=k,
                        holdout_fraction=holdout_fraction, holdout_n=holdout_n,
                        rerank=jsonable(reranker), new_users=jsonable(policy))


def choose_reranker(split: Split, carve: Callable[[pd.DataFrame], Split],
                    params: Mapping[str, Any], titles: pd.DataFrame,
                    factory: Callable[[], Any], *, k: int = 10,
                    threshold: float = RELEVANCE_THRESHOLD, seed: int = DEFAULT_SEED,
                    min_coverage_ratio: float | None = None, n_jobs: int = 1) -> dict[str, Any]:
    """Whether the chosen configuration ``params`` gets a learned re-ranker
    (``ranking.rerank``), and its weights.

    The rule needs evidence the weights did not see: weights fitted on the window before
    validation (``carve(split.train)``: the same kind of split one level down) re-rank
    the validation lists; the re-ranker is adopted when that raises validation NDCG@k
    (and keeps catalog coverage at ``min_coverage_ratio`` x popularity's, with the smallest
    popularity penalty that does, both for those weights and for the served ones). The
    served weights are fitted on the validation window's labels, the nearest to the period
    served (coverage needs no labels, so their validation lists are checked as well).
    Returns the record (``weights``: the ``ranking_params["rerank"]`` to register, ``None``
    when not adopted). ``n_jobs``: the two windows' fits run in two processes when it is
    above 1 (same result)."""
    def outcome(text: str, **more: Any) -> dict[str, Any]:
        return {"tried": True, "adopted": False, "outcome": text, "weights": None,
                "features": list(FEATURES), "structure": DEFAULT_STRUCTURE, **more}

    if "timestamp" not in split.train.columns:
        return outcome("not adopted: the ratings have no times")
    earlier = carve(split.train)
    earlier_relevant = relevant_items(earlier.test, threshold)
    if not any(earlier_relevant.values()):
        return outcome("not adopted: no relevant title in the window before validation")

    # the window before validation (weights) and the validation fit, side by side
    on_earlier, rec = run_parallel(
        [delayed(_earlier_weights)(earlier.train, earlier_relevant, params, titles, factory,
                                   seed),
         delayed(_fitted_for_reranking)(split.train, params, titles, factory, seed)], n_jobs)
    if on_earlier is None:
        return outcome("not adopted: no relevant title among the candidates of the window "
                       "before validation")
    relevant, popularity = relevant_items(split.test, threshold), item_popularity(split.train)

    def scored(lists: Mapping[int, list[str]]) -> tuple[dict[str, Any], dict[int, float]]:
        return (ranking_report(lists, relevant, k, popularity, len(rec.item_ids)),
                per_user_ndcg(lists, relevant, k))

    (without, per_without), (pop, _) = (scored(rec.recommend_all(k)),
                                        scored(rec.recommend_all(k, strategy="popularity")))
    # the served weights: fitted on the validation window, the nearest to the period served
    features, labels = labelled_candidates(rec, relevant)
    served = fit_weights(features, labels, DEFAULT_STRUCTURE)
    # The smallest popularity penalty that keeps the coverage floor, like the ranker's own,
    # for the weights judged (fitted one window earlier) and for the weights served:
    # coverage needs no labels, so the served lists are checked on validation as well.
    for penalty in POPULARITY_PENALTIES:
        report, per_with = scored(rec.with_reranker(
            with_popularity_penalty(on_earlier, penalty)).recommend_all(k))
        coverage_ratio = report["coverage"] / pop["coverage"]
        served_ratio = scored(rec.with_reranker(with_popularity_penalty(
            served, penalty)).recommend_all(k))[0]["coverage"] / pop["coverage"]
        if min_coverage_ratio is None or min(coverage_ratio, served_ratio) >= min_coverage_ratio:
            break
    gain = np.array([per_with[u] - per_without[u] for u in per_with])
    evidence = {"ndcg_without": without["ndcg"], "ndcg_with": report["ndcg"],
                "gain": float(gain.mean()) if gain.size else float("nan"),
                "gain_se": float(gain.std(ddof=1) / np.sqrt(gain.size)) if gain.size > 1
                else float("nan"),
                "coverage_ratio_without": without["coverage"] / pop["coverage"],
                "coverage_ratio_with": coverage_ratio,
                "coverage_ratio_served": served_ratio,
                "popularity_penalty": penalty, "n_users": int(gain.size)}
    rule = (f"adopted when weights fitted on the window before validation (carved from "
            f"the validation split's training part as validation was carved) raise "
            f"validation NDCG@{k}"
            + (f" and keep coverage >= {min_coverage_ratio} x popularity's (with the smallest "
               f"popularity penalty of {list(POPULARITY_PENALTIES)} that does)"
               if min_coverage_ratio is not None else ""))
    if min_coverage_ratio is not None and min(coverage_ratio, served_ratio) < min_coverage_ratio:
        return outcome(f"not adopted: coverage {coverage_ratio:.2f}x popularity's (the served "
                       f"weights: {served_ratio:.2f}x) even with popularity penalty "
                       f"{penalty:g}, below the floor {min_coverage_ratio:g}",
                       rule=rule, validation=evidence)
    if not evidence["gain"] > 0:
        return outcome(f"not adopted: weights fitted one window earlier change validation "
                       f"NDCG@{k} by {evidence['gain']:+.4f}", rule=rule, validation=evidence)
    penalised = f", popularity penalty {penalty:g} (coverage floor)" if penalty else ""
    return {**outcome(f"adopted: weights fitted one window earlier raise validation "
                      f"NDCG@{k} by {evidence['gain']:+.4f} (s.e. {evidence['gain_se']:.4f})"
                      f"{penalised}; the served weights are fitted on the validation window",
                      rule=rule, validation=evidence),
            "adopted": True,
            "weights": with_popularity_penalty(served, penalty),
            "fitted_on": {"candidates": int(labels.size), "relevant": int(labels.sum())}}


def _fitted_for_reranking(train: pd.DataFrame, params: Mapping[str, Any], titles: pd.DataFrame,
                          factory: Callable[[], Any], seed: int) -> Recommender:
    """``params`` without a re-ranker, fitted on ``train``, with the re-ranker's context."""
    return Recommender(ranking_params={**params, "rerank": None}, seed=seed,
                       rating_model=factory()).fit(train, titles).fit_rerank_context(train)


def _earlier_weights(train: pd.DataFrame, relevant: Mapping[int, set],
                     params: Mapping[str, Any], titles: pd.DataFrame,
                     factory: Callable[[], Any], seed: int) -> dict[str, Any] | None:
    """Re-ranker weights fitted on ``relevant`` (``None``: none of them is a candidate).
    A function of its arguments only, so it can run in a worker process."""
    rec = _fitted_for_reranking(train, params, titles, factory, seed)
    features, labels = labelled_candidates(rec, relevant)
    return fit_weights(features, labels, DEFAULT_STRUCTURE) if labels.any() else None


def _score_refit(name: str, params: dict[str, Any], refit: dict[str, Any],
                 blend_grid: dict[str, Sequence[Any]], factory: Callable[[], Any],
                 train: pd.DataFrame, titles: pd.DataFrame, relevant: Mapping[int, set],
                 popularity: pd.Series, k: int, seed: int, with_popularity: bool
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """One refit of ``tune_ranking``'s grid and its blend-weight variants: the table rows,
    each row's parameters, and (``with_popularity``) popularity's report on the same
    candidates. A function of its arguments only, so it can run in a worker process."""
    rec = Recommender(ranking_params=params, seed=seed, rating_model=factory())
    rec.fit(train, titles)
    pop_report = (ranking_report(rec.recommend_all(k, strategy="popularity"), relevant, k,
                                 popularity, len(rec.item_ids)) if with_popularity else None)
    rows, chosen = [], []
    for blend_values in itertools.product(*blend_grid.values()):
        changes = dict(zip(blend_grid, blend_values, strict=True))
        variant = rec.with_ranking(**changes) if changes else rec
        rep = ranking_report(variant.recommend_all(k), relevant, k, popularity,
                             len(rec.item_ids))
        rows.append({"ranker": name, **refit, **changes,
                     **{key: rep[key] for key in ("ndcg", "coverage", "precision", "recall",
                                                  "n_users")}})
        chosen.append({**params, **changes})
    return rows, chosen, pop_report


def _plain(value: Any) -> Any:
    """numpy scalars as Python scalars (JSON, params dicts)."""
    return value.item() if isinstance(value, np.generic) else value


# =========================================================================== notebook helpers

#: ``rating_model`` choices of ``04_evaluation``, ``06_scale_out`` and the benchmark.
RATING_MODEL_CHOICES: tuple[str, ...] = ("fast", "default", "baseline")

#: The blend's components each choice keeps (``default``: all of ``DEFAULT_COMPONENTS``).
_CHOICE_COMPONENTS = {"fast": ("baseline", "svd"), "baseline": ("baseline",)}


def rating_params_for(choice: str) -> dict[str, Any] | None:
    """``rating_params`` for a named choice: ``default`` = the served blend (``None``:
    ``blend.DEFAULT_RATING_PARAMS``, about 30 s per fit on the default data); ``fast`` =
    the same blend with only its baseline and SVD components (a few seconds per fit);
    ``baseline`` = the baseline component alone (the large preset: at 10 M ratings the
    SVD's 50 epochs cost minutes per fit).

    Only the displayed scores and RMSE depend on it: with ``rating_weight=0`` the
    ranking (and every top-N metric) is the same for all three.
    """
    if choice not in RATING_MODEL_CHOICES:
        raise ValueError(f"unknown rating model {choice!r}; valid: {list(RATING_MODEL_CHOICES)}")
    if choice == "default":
        return None
    from recsys_utils.rating.blend import DEFAULT_COMPONENTS

    return {"components": {name: DEFAULT_COMPONENTS[name] for name in _CHOICE_COMPONENTS[choice]}}


def jsonable(value: Any) -> Any:
    """Nested dicts/lists/DataFrames/numpy values as plain JSON types (NaN -> None)."""
    if isinstance(value, pd.DataFrame):
        return jsonable(value.to_dict(orient="records"))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
