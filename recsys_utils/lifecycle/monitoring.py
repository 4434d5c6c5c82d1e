"""Monitoring: data drift, model decay over time, and a retraining trigger policy.

Three questions, answered on the ratings' own timeline (the model table's ``timestamp``):

1. **Does the data drift?** :func:`drift_summary` cuts the timeline into periods
   (quarters by default) and compares each with a reference window (every rating
   before the start period, i.e. what a model trained at the start has seen): the
   population stability index (PSI) of the score distribution, the share of users and
   titles never seen before, the mix of light/heavy users and, where several platforms
   exist, the platform mix.
2. **Does a model decay?** :func:`replay_timeline` trains a fast rating model on all
   ratings before each period start and scores every later period. Period ``t``'s error
   of the model *frozen* at the start is ``err[0, t]``; the error of a model *retrained
   every period* is ``err[t, t]``. Both are tested on ratings neither saw.
3. **When should we retrain?** :func:`simulate_trigger_policy` replays a rule that
   only uses what is known at the end of a period (that period's ratings and the
   serving model's error on them) and retrains when PSI, the share of unknown users or
   the relative error increase crosses a threshold; it reports the error reached and the
   number of retrains, next to "never" and "every period".

:func:`monitor_timeline` is the notebook's one call: it answers the three questions and
returns a :class:`MonitoringResult` with the tables, the figures
(:mod:`recsys_utils.lifecycle.figures`) and the key numbers glued into the book. The
start period, unless given, comes from the data (:func:`derived_start_period`: the
period of the median rating), so any calendar works; the result records which.

PSI (Siddiqi 2006): with reference proportions ``e_i`` and current proportions ``a_i``
over the same bins, ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)``. Empty bins would make
the log infinite, so proportions below ``eps`` (default ``1e-4``) are raised to ``eps``
(no renormalisation; the effect on the sum is at most ``k * eps`` for ``k`` bins). Rule
of thumb: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 significant shift.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils import DEFAULT_SEED
from recsys_utils.data.tables import check_model_table
from recsys_utils.errors import DataError
from recsys_utils.paths import ProjectPaths
from recsys_utils.rating.predictors import BaselineComponent, FastBaseline, SVDComponent

__all__ = [
    "PSI_EPS",
    "SCORE_BINS",
    "ACTIVITY_BUCKETS",
    "psi",
    "psi_band",
    "proportions",
    "score_psi",
    "assign_periods",
    "drift_summary",
    "Replay",
    "replay_timeline",
    "PolicyResult",
    "simulate_trigger_policy",
    "compare_policies",
    "sweep_trigger_policies",
    "derived_start_period",
    "derived_thresholds",
    "DEFAULT_THRESHOLDS",
    "THRESHOLDS_FILE",
    "write_thresholds",
    "read_thresholds",
    "MonitoringResult",
    "monitor_timeline",
]

#: Floor applied to proportions before taking logs in :func:`psi`.
PSI_EPS = 1e-4

#: The score categories of the model table (0.5..5 in steps of 0.5).
SCORE_BINS: tuple[float, ...] = tuple(np.round(np.arange(0.5, 5.01, 0.5), 1))

#: User activity buckets (ratings by one user within one period): label -> (low, high).
ACTIVITY_BUCKETS: dict[str, tuple[int, float]] = {
    "1-5": (1, 5),
    "6-20": (6, 20),
    "21-100": (21, 100),
    "100+": (101, np.inf),
}


# --------------------------------------------------------------------------- PSI


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray,
        eps: float = PSI_EPS) -> float:
    """Population stability index of ``actual`` against ``expected``.

    Both are counts or proportions over the same bins (each is normalised to sum to 1).
    Proportions below ``eps`` are raised to ``eps`` so empty bins give a large but
    finite contribution. Returns 0 when the two distributions are equal.

    Raises:
        ValueError: different lengths, negative entries, or an all-zero input.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"expected and actual need the same 1-d shape, got {e.shape} and {a.shape}")
    if (e < 0).any() or (a < 0).any():
        raise ValueError("counts/proportions must be non-negative")
    if e.sum() == 0 or a.sum() == 0:
        raise ValueError("an all-zero distribution has no proportions")
    e = np.maximum(e / e.sum(), eps)
    a = np.maximum(a / a.sum(), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_band(value: float) -> str:
    """The conventional reading of a PSI value: ``stable``, ``moderate`` or ``significant``."""
    if value < 0.1:
        return "stable"
    return "moderate" if value < 0.25 else "significant"


def proportions(values: Sequence[Any] | pd.Series, categories: Sequence[Any]) -> np.ndarray:
    """Share of ``values`` in each of ``categories`` (values outside are ignored)."""
    counts = pd.Series(values).value_counts()
    counts = counts.reindex(list(categories), fill_value=0).to_numpy(dtype=np.float64)
    total = counts.sum()
    return counts / total if total else counts


def score_psi(reference_scores: Sequence[float] | pd.Series,
              scores: Sequence[float] | pd.Series, eps: float = PSI_EPS) -> float:
    """PSI of a score sample against a reference sample, over the half-star categories."""
    ref = np.round(np.asarray(reference_scores, dtype=np.float64) * 2) / 2
    cur = np.round(np.asarray(scores, dtype=np.float64) * 2) / 2
    return psi(proportions(ref, SCORE_BINS), proportions(cur, SCORE_BINS), eps=eps)


# --------------------------------------------------------------------------- periods


def assign_periods(timestamps: pd.Series, period: str = "Q") -> pd.Series:
    """The calendar period (``pandas.Period``, e.g. ``2016Q3``) of each timestamp."""
    return pd.Series(pd.PeriodIndex(pd.to_datetime(timestamps), freq=period), index=timestamps.index)


#: Periods a derived ``period`` is chosen from, coarsest first.
PERIOD_LADDER = ("Q", "M", "W")
#: The fewest periods a derived ``period`` cuts the timeline into (when weeks can).
MIN_PERIODS = 8


def derived_period(timestamps: pd.Series) -> str:
    """The period chosen from the data: the coarsest of quarters, months and weeks that cuts
    the timeline (first to last rating) into at least :data:`MIN_PERIODS` periods, so a
    short history is still compared period by period (weeks when even months cannot).
    Quarters on the default data (1995-2016) and on any history of two years or more."""
    ends = pd.Series([timestamps.min(), timestamps.max()])  # all it needs, at any size
    for period in PERIOD_LADDER:
        first, last = assign_periods(ends, period)
        if last.ordinal - first.ordinal + 1 >= MIN_PERIODS:
            return period
    return PERIOD_LADDER[-1]


def _check_model_table(model_df: pd.DataFrame) -> None:
    check_model_table(model_df)
    if model_df.empty:
        raise DataError("the model table (data/processed/model.parquet) is empty")
    first, last = model_df["timestamp"].min(), model_df["timestamp"].max()
    if first == last:  # two passes, no hash table: this check runs on every call
        raise DataError(
            f"every rating has the same timestamp ({first}): "
            "monitoring follows the ratings over time and has nothing to compare; the "
            "ratings' timestamp must say when each rating was made, not when it was imported")


#: What each period alias is called in messages and in the book.
PERIOD_NAMES = {"Y": "year", "Q": "quarter", "M": "month", "W": "week", "D": "day"}


def _shorter_than(period: str) -> str:
    """The period aliases shorter than ``period``, named (for the one-period error)."""
    return ", ".join(f"{alias} {name}s" for alias, name in PERIOD_NAMES.items()
                     if periods_per_year(alias) > periods_per_year(period))


def derived_start_period(periods: pd.Series, period: str = "Q") -> pd.Period:
    """The start period chosen from the data: the period holding the median rating.

    About half of the ratings then form the reference window and half are replayed,
    whatever the calendar of the data (on the default MovieLens data, 1995-2016, this is
    2005Q1). When more than half of the ratings fall in the first period, the start moves
    to the second period, so the reference window is never empty.

    Raises:
        DataError: every rating falls in one period (nothing to compare).
    """
    ordered = pd.PeriodIndex(periods, freq=period).sort_values()
    first, last = ordered[0], ordered[-1]
    if first == last:
        raise DataError(
            f"every rating of the model table falls in one period ({first}): monitoring "
            f"compares periods and needs ratings in at least two; set a period shorter than "
            f"{period!r} (pandas alias: {_shorter_than(period)}) or bring a longer history"
        )
    median = ordered[(len(ordered) - 1) // 2]  # the lower median: an actual rating's period
    return max(median, first + 1)


def _as_period(start: str | pd.Period, period: str) -> pd.Period:
    """``start`` as a ``period``; a start in another unit (``2005Q1`` with weeks) becomes
    the ``period`` holding its first day. A bare year (``2005``, an int once YAML has read
    ``--set start_period=2005``) is that year, not pandas' period number 2005."""
    if isinstance(start, int) and not isinstance(start, bool):
        start = str(start)
    try:
        return pd.Period(start, freq=period)
    except (ValueError, TypeError):
        pass
    try:
        return pd.Period(pd.Period(start).start_time, freq=period)
    except (ValueError, TypeError) as exc:
        raise DataError(f"start_period {start!r} is not a calendar period: give one such as "
                        f"2005Q1, 2005-03 or 2005-03-07") from exc


def _period_list(periods: pd.Series, start: str | pd.Period | None, period: str
                 ) -> tuple[pd.Period, list[pd.Period]]:
    """The start period and every period from it to the last one with data (gaps included).

    ``start=None``: :func:`derived_start_period`.
    """
    last = periods.max()
    first_data = periods.min()
    start_p = derived_start_period(periods, period) if start is None else \
        _as_period(start, period)
    if start_p <= first_data:
        raise DataError(
            f"start period {start_p} leaves no ratings before it to train on "
            f"(the data starts in {first_data})"
        )
    if start_p > last:
        raise DataError(f"start period {start_p} is after the last rating ({last})")
    return start_p, list(pd.period_range(start_p, last, freq=period))


def _bucket(counts: pd.Series) -> pd.Series:
    labels = list(ACTIVITY_BUCKETS)
    edges = [ACTIVITY_BUCKETS[k][0] - 0.5 for k in labels] + [np.inf]
    return pd.cut(counts, bins=edges, labels=labels)


# --------------------------------------------------------------------------- drift


def drift_summary(model_df: pd.DataFrame, titles: pd.DataFrame | None = None,
                  period: str = "Q", start: str | pd.Period | None = None,
                  eps: float = PSI_EPS) -> pd.DataFrame:
    """Drift of each period from ``start`` on, against the reference window (all earlier ratings).

    Columns:
        period, n_ratings, n_users, n_titles, mean_score;
        share_half_stars: share of scores that are not whole stars (a scale change shows here);
        psi_score: PSI of the period's scores vs the reference window's;
        psi_score_prev: PSI vs the previous period (local change);
        share_new_users: share of the period's active users with no rating before the period;
        share_ratings_new_users: share of the period's ratings given by those users;
        share_new_titles: share of the period's rated titles never rated before;
        activity_<bucket>: share of the period's active users by ratings in the period
        (``ACTIVITY_BUCKETS``); psi_activity: PSI of that mix vs the reference
        window's (user, period) pairs;
        platform_<name> and psi_platform: share of ratings per platform, only when
        ``titles`` is given and names more than one platform.
    """
    _check_model_table(model_df)
    df = model_df[["user", "item", "score", "timestamp"]].copy()
    df["period"] = assign_periods(df["timestamp"], period)
    start_p, periods = _period_list(df["period"], start, period)

    platform_of: pd.Series | None = None
    if titles is not None and "platform" in titles and titles["platform"].nunique() > 1:
        platform_of = titles.drop_duplicates("item_id").set_index("item_id")["platform"]
        df["platform"] = df["item"].map(platform_of).fillna("unknown")
        platform_names = sorted(df["platform"].unique())

    ref = df[df["period"] < start_p]
    ref_scores = proportions(ref["score"], SCORE_BINS)
    ref_activity = proportions(_bucket(ref.groupby(["period", "user"]).size()),
                               list(ACTIVITY_BUCKETS))
    if platform_of is not None:
        ref_platform = proportions(ref["platform"], platform_names)

    # First appearance of every user and title, to tell "new" from "returning".
    first_user = df.groupby("user")["period"].min()
    first_item = df.groupby("item")["period"].min()
    by_period = dict(tuple(df[df["period"] >= start_p].groupby("period", sort=True)))

    rows = []
    prev_scores: np.ndarray | None = ref_scores if len(ref) else None
    for p in periods:
        cur = by_period.get(p)
        row: dict[str, Any] = {"period": str(p)}
        if cur is None or cur.empty:
            row.update(n_ratings=0, n_users=0, n_titles=0)
            rows.append(row)
            continue
        scores = proportions(cur["score"], SCORE_BINS)
        users = cur["user"].unique()
        new_users = users[first_user.loc[users].to_numpy() == p]
        items = cur["item"].unique()
        activity = _bucket(cur.groupby("user").size())
        act_mix = proportions(activity, list(ACTIVITY_BUCKETS))
        row.update(
            n_ratings=len(cur),
            n_users=len(users),
            n_titles=len(items),
            mean_score=float(cur["score"].mean()),
            share_half_stars=float((cur["score"] % 1 != 0).mean()),
            psi_score=psi(ref_scores, scores, eps),
            psi_score_prev=psi(prev_scores, scores, eps) if prev_scores is not None else np.nan,
            share_new_users=len(new_users) / len(users),
            share_ratings_new_users=float(cur["user"].isin(new_users).mean()),
            share_new_titles=float((first_item.loc[items].to_numpy() == p).mean()),
            **{f"activity_{k}": v for k, v in zip(ACTIVITY_BUCKETS, act_mix, strict=True)},
            psi_activity=psi(ref_activity, act_mix, eps),
        )
        if platform_of is not None:
            mix = proportions(cur["platform"], platform_names)
            row.update({f"platform_{k}": v for k, v in zip(platform_names, mix, strict=True)})
            row["psi_platform"] = psi(ref_platform, mix, eps)
        prev_scores = scores
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- replay


def _default_model_factory(name: str, seed: int, params: dict | None) -> Callable[[], Any]:
    """A factory of fresh, unfitted rating models for the replay."""
    params = dict(params or {})
    if name == "baseline":
        return lambda: FastBaseline(**params)
    if name == "surprise-baseline":
        return lambda: BaselineComponent(**params)
    if name == "svd":
        params.setdefault("random_state", seed)
        return lambda: SVDComponent(**params)
    raise ValueError(
        f"unknown replay model {name!r}; valid: 'baseline', 'surprise-baseline', 'svd'"
    )


def _predict_frame(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Predictions for every (user, item) row: one call if the model scores pairs, else per user."""
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy(dtype=object)
    if hasattr(model, "predict_pairs"):
        return model.predict_pairs(users, items)
    est = np.empty(len(frame), dtype=np.float64)
    codes, _ = pd.factorize(users)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for group in np.split(order, bounds):
        if len(group):
            est[group] = model.predict_items(users[group[0]], items[group])
    return est


@dataclass
class Replay:
    """The result of :func:`replay_timeline`.

    ``sse[c, t]``, ``sae[c, t]`` and ``n[t]`` hold the squared / absolute error sums on
    period ``t`` of the model trained on every rating before period ``c`` (``c <= t``;
    NaN elsewhere); ``unknown[c, t]`` the share of period ``t``'s ratings whose user the
    model trained before ``c`` has never seen. ``scores_before[c]`` holds the score
    counts of that training window (for PSI).
    """

    periods: list[str]
    n: np.ndarray
    sse: np.ndarray
    sae: np.ndarray
    unknown: np.ndarray
    period_scores: np.ndarray
    scores_before: np.ndarray
    model: str
    params: dict = field(default_factory=dict)
    novelty_sse: np.ndarray = field(default_factory=lambda: np.zeros((2, 4)))
    novelty_n: np.ndarray = field(default_factory=lambda: np.zeros((2, 4)))

    @property
    def novelty(self) -> pd.DataFrame:
        """Error by whether the user and the title were known to the serving model.

        One row per class (known/new user x known/new title): share of the replayed
        ratings and RMSE, for the frozen model and for the model retrained every period.
        """
        labels = [("known", "known"), ("known", "new"), ("new", "known"), ("new", "new")]
        rows = []
        for j, (user, title) in enumerate(labels):
            row = {"user": user, "title": title}
            for i, name in enumerate(("frozen", "retrained")):
                n = self.novelty_n[i, j]
                row[f"share_{name}"] = n / self.novelty_n[i].sum()
                row[f"rmse_{name}"] = float(np.sqrt(self.novelty_sse[i, j] / n)) if n else np.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def rmse(self, c: int, t: int) -> float:
        return float(np.sqrt(self.sse[c, t] / self.n[t])) if self.n[t] else np.nan

    def mae(self, c: int, t: int) -> float:
        return float(self.sae[c, t] / self.n[t]) if self.n[t] else np.nan

    @property
    def table(self) -> pd.DataFrame:
        """Per period: ratings, RMSE/MAE of the frozen and retrained models, unknown-user shares."""
        idx = range(len(self.periods))
        frame = pd.DataFrame({
            "period": self.periods,
            "n_ratings": self.n.astype(int),
            "rmse_frozen": [self.rmse(0, t) for t in idx],
            "rmse_retrained": [self.rmse(t, t) for t in idx],
            "mae_frozen": [self.mae(0, t) for t in idx],
            "mae_retrained": [self.mae(t, t) for t in idx],
            "unknown_users_frozen": [self.unknown[0, t] for t in idx],
            "unknown_users_retrained": [self.unknown[t, t] for t in idx],
        })
        frame["rmse_gap"] = frame["rmse_frozen"] - frame["rmse_retrained"]
        return frame

    def overall(self, cuts: Sequence[int]) -> float:
        """Rating-weighted RMSE over all periods when period ``t`` is served by ``cuts[t]``."""
        sse = sum(self.sse[c, t] for t, c in enumerate(cuts) if self.n[t])
        return float(np.sqrt(sse / self.n.sum()))


def replay_timeline(model_df: pd.DataFrame, period: str = "Q",
                    start: str | pd.Period | None = None, model: str = "baseline",
                    model_params: dict | None = None, seed: int = DEFAULT_SEED,
                    model_factory: Callable[[], Any] | None = None) -> Replay:
    """Train on all ratings before each period start; score that period and every later one.

    Args:
        model_df: the model table (user, item, score, timestamp).
        period: pandas period alias (``"Q"`` quarters, ``"Y"`` years, ``"M"`` months).
        start: first evaluated period (e.g. ``"2008Q1"``); default (``None``):
            :func:`derived_start_period`, the period of the median rating.
        model: ``"baseline"`` (:class:`FastBaseline`, surprise's BaselineOnly in numpy;
            milliseconds per fit), ``"surprise-baseline"`` (``recsys_utils.rating.comparison``
            wrapper of surprise itself; ~0.5 s per fit) or ``"svd"``.
        model_params: keyword arguments of that model.
        seed: random seed of the model (SVD).
        model_factory: overrides ``model``: a callable returning an unfitted model with
            ``fit(model_df)`` and ``predict_items(user, items)``.

    One fit per period (the model "retrained every period" at ``t`` is the model trained
    before ``t``), so the cost is ``len(periods)`` fits.
    """
    _check_model_table(model_df)
    df = model_df[["user", "item", "score", "timestamp"]].copy()
    df["period"] = assign_periods(df["timestamp"], period)
    start_p, periods = _period_list(df["period"], start, period)
    factory = model_factory or _default_model_factory(model, seed, model_params)

    k = len(periods)
    pos = {p: i for i, p in enumerate(periods)}
    df["t"] = df["period"].map(pos).fillna(-1).astype(int)  # -1: before the start
    df = df.sort_values("t", kind="stable")
    n = np.bincount(df.loc[df["t"] >= 0, "t"], minlength=k).astype(np.float64)
    sse = np.full((k, k), np.nan)
    sae = np.full((k, k), np.nan)
    unknown = np.full((k, k), np.nan)
    score_cat = np.round(df["score"].to_numpy(np.float64) * 2).astype(int) - 1  # 0..9
    period_scores = np.zeros((k, len(SCORE_BINS)))
    np.add.at(period_scores, (df["t"].to_numpy()[df["t"].to_numpy() >= 0],
                              score_cat[df["t"].to_numpy() >= 0]), 1)
    ref_counts = np.bincount(score_cat[df["t"].to_numpy() < 0], minlength=len(SCORE_BINS))
    scores_before = ref_counts + np.vstack([np.zeros(len(SCORE_BINS)),
                                            np.cumsum(period_scores, axis=0)[:-1]])

    t_arr = df["t"].to_numpy()
    novelty_sse, novelty_n = np.zeros((2, 4)), np.zeros((2, 4))
    for c in range(k):
        train = df[t_arr < c]
        future = df[t_arr >= c]
        if future.empty:
            continue
        fitted = factory().fit(train[["user", "item", "score"]])
        err = _predict_frame(fitted, future) - future["score"].to_numpy(np.float64)
        known_users = pd.Index(train["user"].unique())
        is_unknown = ~future["user"].isin(known_users).to_numpy()
        new_title = ~future["item"].isin(pd.Index(train["item"].unique())).to_numpy()
        ft = future["t"].to_numpy()
        # Error by novelty class (2 * new user + new title): frozen = c 0, retrained = t == c.
        cls = 2 * is_unknown.astype(int) + new_title.astype(int)
        for i, rows in ((0, np.ones(len(ft), bool) if c == 0 else None), (1, ft == c)):
            if rows is not None:
                novelty_sse[i] += np.bincount(cls[rows], weights=err[rows] ** 2, minlength=4)
                novelty_n[i] += np.bincount(cls[rows], minlength=4)
        sse[c, c:] = np.bincount(ft, weights=err**2, minlength=k)[c:]
        sae[c, c:] = np.bincount(ft, weights=np.abs(err), minlength=k)[c:]
        cnt = np.bincount(ft, minlength=k)[c:]
        with np.errstate(invalid="ignore", divide="ignore"):
            unknown[c, c:] = np.bincount(ft, weights=is_unknown, minlength=k)[c:] / cnt
    return Replay(
        periods=[str(p) for p in periods], n=n, sse=sse, sae=sae, unknown=unknown,
        period_scores=period_scores, scores_before=scores_before,
        model=model if model_factory is None else "custom", params=dict(model_params or {}),
        novelty_sse=novelty_sse, novelty_n=novelty_n,
    )


# --------------------------------------------------------------------------- policy


@dataclass
class PolicyResult:
    """A replayed retraining policy: per-period log and summary."""

    name: str
    log: pd.DataFrame
    cuts: list[int]
    rmse: float
    n_retrains: int
    thresholds: dict = field(default_factory=dict)


def simulate_trigger_policy(replay: Replay, psi_threshold: float = 0.1,
                            error_increase: float = 0.05, new_user_threshold: float = 0.3,
                            eps: float = PSI_EPS) -> PolicyResult:
    """Replay "retrain when a signal crosses its threshold" on the timeline.

    At the end of each period ``t`` the serving model (trained before period ``c``) is
    checked with what is known by then:

    * ``psi``: PSI of period ``t``'s scores vs the serving model's training window;
    * ``unknown_users``: share of period ``t``'s ratings from users the model never saw;
    * ``error_increase``: its RMSE on period ``t`` relative to its RMSE on the first
      period it served (``rmse_t / rmse_first - 1``).

    If any crosses its threshold the model is retrained on everything up to the end of
    ``t`` and serves from ``t + 1``. A threshold of ``inf`` disables that signal.
    Returns the per-period log, the rating-weighted RMSE and the number of retrains.
    """
    k = len(replay.periods)
    cuts: list[int] = []
    rows = []
    c, first_rmse = 0, None
    retrains = 0
    for t in range(k):
        cuts.append(c)
        if not replay.n[t]:
            rows.append({"period": replay.periods[t], "model_from": replay.periods[c],
                         "n_ratings": 0, "retrain": False})
            continue
        rmse_t = replay.rmse(c, t)
        if first_rmse is None:
            first_rmse = rmse_t
        sig_psi = psi(replay.scores_before[c], replay.period_scores[t], eps)
        sig_unknown = float(replay.unknown[c, t])
        sig_err = rmse_t / first_rmse - 1.0
        fire = (sig_psi > psi_threshold or sig_unknown > new_user_threshold
                or sig_err > error_increase)
        rows.append({
            "period": replay.periods[t], "model_from": replay.periods[c],
            "n_ratings": int(replay.n[t]), "rmse": rmse_t, "psi": sig_psi,
            "unknown_users": sig_unknown, "error_increase": sig_err,
            "retrain": bool(fire and t + 1 < k),
        })
        if fire and t + 1 < k:
            c, first_rmse = t + 1, None
            retrains += 1
    return PolicyResult(
        name="triggered", log=pd.DataFrame(rows), cuts=cuts, rmse=replay.overall(cuts),
        n_retrains=retrains,
        thresholds={"psi": psi_threshold, "error_increase": error_increase,
                    "unknown_users": new_user_threshold},
    )


def compare_policies(replay: Replay, triggered: PolicyResult) -> pd.DataFrame:
    """Rating-weighted RMSE and retrain count: never retrain, every period, the triggered rule."""
    k = len(replay.periods)
    rows = [
        {"policy": "frozen (never retrain)", "rmse": replay.overall([0] * k), "retrains": 0},
        {"policy": "retrain every period", "rmse": replay.overall(list(range(k))),
         "retrains": k - 1},
        {"policy": "triggered", "rmse": triggered.rmse, "retrains": triggered.n_retrains},
    ]
    return pd.DataFrame(rows)


def sweep_trigger_policies(replay: Replay, psi_thresholds: Sequence[float],
                           error_increases: Sequence[float],
                           new_user_thresholds: Sequence[float],
                           eps: float = PSI_EPS) -> pd.DataFrame:
    """Every combination of thresholds replayed: retrains, RMSE and share of the gain kept.

    ``gain_share`` is ``(rmse_frozen - rmse_policy) / (rmse_frozen - rmse_every_period)``:
    1 means the policy is as good as retraining every period, 0 as bad as never. Sorted
    by number of retrains, then RMSE; ``pareto`` marks the policies no other beats on
    both (fewer-or-equal retrains and lower RMSE).
    """
    k = len(replay.periods)
    frozen, every = replay.overall([0] * k), replay.overall(list(range(k)))
    rows = []
    for p in psi_thresholds:
        for e in error_increases:
            for u in new_user_thresholds:
                res = simulate_trigger_policy(replay, p, e, u, eps=eps)
                rows.append({"psi_threshold": p, "error_increase": e, "new_user_threshold": u,
                             "retrains": res.n_retrains, "rmse": res.rmse})
    out = pd.DataFrame(rows)
    gap = frozen - every
    out["gain_share"] = (frozen - out["rmse"]) / gap if gap > 0 else np.nan
    out = out.sort_values(["retrains", "rmse"], kind="stable").reset_index(drop=True)
    # Dominated: a policy earlier in this order (no more retrains) is at least as accurate.
    rmse = out["rmse"].to_numpy()
    prev_best = np.concatenate([[np.inf], np.minimum.accumulate(rmse)[:-1]])
    out["pareto"] = rmse < prev_best
    return out


#: The trigger thresholds, named as in :func:`simulate_trigger_policy` and the sweep.
THRESHOLDS = ("psi_threshold", "error_increase", "new_user_threshold")
#: The thresholds ``recsys-retrain`` uses when ``05_monitoring`` has not derived any (no
#: :data:`THRESHOLDS_FILE`): :func:`simulate_trigger_policy`'s defaults, which retrain
#: readily (PSI 0.1 is the start of a "moderate shift").
DEFAULT_THRESHOLDS = {"psi_threshold": 0.1, "error_increase": 0.05, "new_user_threshold": 0.3}
#: ``outputs/reports/monitoring.json``: the thresholds of the last ``05_monitoring`` run.
THRESHOLDS_FILE = "monitoring.json"


def write_thresholds(result: MonitoringResult, paths: ProjectPaths) -> Path:
    """Save the run's trigger thresholds for ``recsys-retrain`` (atomically; ``inf`` = off
    is written as ``null``)."""
    import json

    from recsys_utils.atomic import atomic_write_text

    s = result.settings
    payload = {
        "thresholds": {n: None if np.isinf(s[n]) else float(s[n]) for n in THRESHOLDS},
        "derived": list(s["thresholds_derived"]),
        "target_gain_share": s["target_gain_share"],
        "period": s["period"], "start_period": s["start_period"],
        "n_ratings": result.n_ratings, "policy_retrains": result.policy.n_retrains,
        "written_by": "05_monitoring (recsys_utils.lifecycle.monitoring.monitor_timeline)",
    }
    return atomic_write_text(paths.reports / THRESHOLDS_FILE, json.dumps(payload, indent=2) + "\n")


def read_thresholds(paths: ProjectPaths) -> tuple[dict[str, float], str]:
    """The trigger thresholds ``05_monitoring`` saved, or :data:`DEFAULT_THRESHOLDS`;
    and where they came from (for the decision record)."""
    from recsys_utils.data.tables import read_json_object
    from recsys_utils.paths import relative_posix

    path = paths.reports / THRESHOLDS_FILE
    if not path.is_file():
        return dict(DEFAULT_THRESHOLDS), (f"defaults (no {relative_posix(path, paths.root)}: "
                                          "run 05_monitoring to derive them)")
    saved = read_json_object(path, "re-run 05_monitoring (`make pipeline`) or delete it")
    values = saved.get("thresholds") or {}
    thresholds = {}
    for name in THRESHOLDS:
        value = values.get(name, DEFAULT_THRESHOLDS[name])
        if value is not None and not isinstance(value, int | float):
            raise DataError(f"{path}: threshold {name} is {value!r}, not a number; re-run "
                            "05_monitoring (`make pipeline`)")
        thresholds[name] = float("inf") if value is None else float(value)
    return thresholds, f"{relative_posix(path, paths.root)} (05_monitoring)"


def derived_thresholds(sweep: pd.DataFrame, target_gain_share: float = 0.9,
                       fixed: dict[str, float] | None = None) -> dict[str, float]:
    """The cheapest swept policy that keeps ``target_gain_share`` of the every-period gain.

    Among the Pareto policies of ``sweep`` (:func:`sweep_trigger_policies`) that agree
    with the ``fixed`` thresholds, the one with the fewest retrains whose ``gain_share``
    reaches the target; when none does (or retraining gains nothing, NaN shares), the
    most accurate one. On the default data (target 0.9) this is PSI 1.0, error increase
    0.2, new users 0.8. The choice is made on the timeline it is then evaluated on, so
    its kept share is optimistic.
    """
    rows = sweep
    for name, value in (fixed or {}).items():
        rows = rows[rows[name] == value]
    if rows.empty:
        raise ValueError(f"no swept policy has the thresholds {fixed}")
    front = rows.sort_values(["retrains", "rmse"], kind="stable")
    front = front[front["rmse"] < np.concatenate(
        [[np.inf], np.minimum.accumulate(front["rmse"].to_numpy())[:-1]])]
    enough = front[front["gain_share"] >= target_gain_share]
    pick = enough.iloc[0] if len(enough) else front.loc[front["rmse"].idxmin()]
    return {name: float(pick[name]) for name in THRESHOLDS}


# --------------------------------------------------------------------------- the step

#: Drift columns shown in the notebook (the rest are in ``MonitoringResult.drift``).
DRIFT_SHOWN = ["period", "n_ratings", "n_users", "mean_score", "share_half_stars", "psi_score",
               "psi_score_prev", "share_new_users", "share_ratings_new_users",
               "share_new_titles", "psi_activity"]


def periods_per_year(period: str) -> int:
    """How many periods make a year (4 quarters, 12 months, 1 year): the "last year" window."""
    first, last = pd.Period("2001-01-01", freq=period), pd.Period("2001-12-31", freq=period)
    return max(1, last.ordinal - first.ordinal + 1)


def _ratio(num: float, den: float) -> float:
    """``num / den``, NaN when ``den`` is 0 (e.g. one replayed period: frozen == retrained)."""
    return float(num / den) if den else float("nan")


@dataclass
class MonitoringResult:
    """Everything one monitoring run (``05_monitoring``) produced, with helpers for the notebook.

    ``settings`` holds every parameter the run used, the start period included, and
    ``start_period_source`` says whether that start was ``"derived"`` from the data
    (:func:`derived_start_period`) or ``"set"`` by the caller.
    """

    settings: dict[str, Any]
    start_period_source: str
    n_ratings: int
    n_reference: int
    first_rating: pd.Timestamp
    last_rating: pd.Timestamp
    drift: pd.DataFrame
    replay: Replay
    decay: pd.DataFrame
    novelty: pd.DataFrame
    policy: PolicyResult
    policies: pd.DataFrame
    sweep: pd.DataFrame
    half_stars_by_year: pd.DataFrame
    figures: dict[str, Any] = field(default_factory=dict)
    written: dict[str, Path] = field(default_factory=dict)

    @property
    def start_period(self) -> str:
        return self.settings["start_period"]

    @property
    def rmse_frozen(self) -> float:
        return self.replay.overall([0] * len(self.decay))

    @property
    def rmse_retrained(self) -> float:
        return self.replay.overall(list(range(len(self.decay))))

    @property
    def pareto(self) -> pd.DataFrame:
        """The swept policies no other beats on both retrains and RMSE."""
        return self.sweep[self.sweep["pareto"]]

    @property
    def platform_mix(self) -> pd.DataFrame:
        """Share of ratings per platform in the last 8 periods (empty with one platform)."""
        cols = [c for c in self.drift.columns if c.startswith("platform_")]
        if not cols:
            return pd.DataFrame()
        return self.drift[["period", *cols, "psi_platform"]].tail(8)

    def overview(self) -> str:
        """The timeline, its periods, its split into reference window and replay, and where
        the period and the start came from."""
        how = ("derived from the data: the period of the median rating"
               if self.start_period_source == "derived" else "set by the start_period parameter")
        s = self.settings
        derived = s["thresholds_derived"]
        rule = (f"the cheapest swept policy keeping {s['target_gain_share']:.0%} of the "
                f"every-period gain")
        rule = ("set" if not derived else f"derived: {rule}" if len(derived) == len(THRESHOLDS)
                else f"{', '.join(derived)} derived: {rule}")
        period = (f"derived from the data: the coarsest of {', '.join(PERIOD_LADDER)} cutting "
                  f"the timeline into at least {MIN_PERIODS} periods"
                  if s.get("period_source") == "derived" else "set by the period parameter")
        return (f"{self.n_ratings:,} ratings from {self.first_rating:%Y-%m-%d} to "
                f"{self.last_rating:%Y-%m-%d}; {self.n_reference:,} in the reference window "
                f"(before {self.start_period}), {self.n_ratings - self.n_reference:,} replayed\n"
                f"period {s['period']} ({period})\n"
                f"start period {self.start_period} ({how})\n"
                f"trigger thresholds: PSI {s['psi_threshold']:g}, error increase "
                f"{s['error_increase']:g}, new users {s['new_user_threshold']:g} ({rule})")

    def drift_recent(self, n: int = 8) -> pd.DataFrame:
        """The main drift columns of the last ``n`` periods."""
        return self.drift[DRIFT_SHOWN].tail(n)

    def drift_stats(self) -> pd.DataFrame:
        """Mean, median, min and max of the main drift columns over the replayed periods."""
        return self.drift[DRIFT_SHOWN[1:]].describe().loc[["mean", "50%", "min", "max"]]

    def _last_year(self) -> tuple[pd.DataFrame, pd.Series]:
        last = self.decay.tail(self.settings["last_year_periods"])
        return last, last["n_ratings"]

    def decay_summary(self) -> str:
        """Frozen vs retrained RMSE over the replay and over its last year, in words."""
        last, w = self._last_year()
        frozen, retrained = self.rmse_frozen, self.rmse_retrained
        n_p = len(self.decay)
        return "\n".join([
            f"{n_p} periods, {int(self.decay['n_ratings'].sum()):,} ratings: RMSE frozen "
            f"{frozen:.4f}, retrained every period {retrained:.4f} "
            f"({_ratio(frozen - retrained, frozen):.1%} lower)",
            f"last {len(last)} periods: frozen {_weighted_rmse(last['rmse_frozen'], w):.4f}, "
            f"retrained {_weighted_rmse(last['rmse_retrained'], w):.4f}",
            f"periods where retraining helped: {(self.decay['rmse_gap'] > 0).sum()} of {n_p}",
        ])

    def policy_signals(self) -> str:
        """How often the chosen policy fired, by the signal that crossed its threshold."""
        fired = self.policy.log[self.policy.log["retrain"]]
        if fired.empty:
            return "chosen policy fired 0 times"
        s = self.settings
        return (f"chosen policy fired {self.policy.n_retrains} times; by signal: "
                f"PSI {int((fired['psi'] > s['psi_threshold']).sum())}, "
                f"unknown users {int((fired['unknown_users'] > s['new_user_threshold']).sum())}, "
                f"error increase {int((fired['error_increase'] > s['error_increase']).sum())}")

    @property
    def period_noun(self) -> str:
        """The replayed period in words: "quarter", "week", ..."""
        return PERIOD_NAMES.get(str(self.settings["period"]), "period")

    def policy_rule(self) -> str:
        """The chosen trigger rule as a sentence: only the signals it watches (a threshold
        of infinity switches a signal off), or "never" when it watches none."""
        s = self.settings
        new_user, error, psi = s["new_user_threshold"], s["error_increase"], s["psi_threshold"]
        noun = self.period_noun
        signals = [
            (new_user, "the share of its ratings from users the serving model has never "
                       f"seen exceeds {new_user:.0%}"),
            (error, f"its RMSE exceeds that of the first {noun} it served by {error:.0%}"),
            (psi, f"the score PSI against its training window exceeds {psi:.2f}")]
        watched = [text for value, text in signals if np.isfinite(value)]
        if not watched:
            return ("never: on this data the replay switched every signal off (no threshold "
                    "was worth its retrainings)")
        return f"at the end of a {noun} when " + ", or when ".join(watched)

    def key_numbers(self) -> dict[str, Any]:
        """The run's headline numbers (glued into the book as ``mon_<name>``)."""
        decay, drift, novelty, s = self.decay, self.drift, self.novelty, self.settings
        last, w = self._last_year()
        frozen, retrained = self.rmse_frozen, self.rmse_retrained
        psi_scores = drift["psi_score"].dropna()
        new_user, new_title = novelty["user"] == "new", novelty["title"] == "new"
        return {
            "start_period": self.start_period,
            "end_period": str(decay["period"].iloc[-1]),
            "n_periods": len(decay),
            # the book names the run's period ("quarter", "week") instead of assuming one
            "period_noun": self.period_noun,
            "period_nouns": self.period_noun + "s",
            "last_year_periods": len(last),
            "n_replayed_ratings": int(decay["n_ratings"].sum()),
            "rmse_frozen": frozen,
            "rmse_retrained": retrained,
            "rmse_gain_pct": 100 * _ratio(frozen - retrained, frozen),
            "rmse_frozen_last4": _weighted_rmse(last["rmse_frozen"], w),
            "rmse_retrained_last4": _weighted_rmse(last["rmse_retrained"], w),
            "periods_retrain_helped": int((decay["rmse_gap"] > 0).sum()),
            "unknown_users_frozen_last4": float((last["unknown_users_frozen"] * w).sum() / w.sum()),
            "unknown_users_retrained_last4": float(
                (last["unknown_users_retrained"] * w).sum() / w.sum()),
            "share_new_user_frozen": float(novelty.loc[new_user, "share_frozen"].sum()),
            "share_new_user_retrained": float(novelty.loc[new_user, "share_retrained"].sum()),
            "share_new_title_frozen": float(novelty.loc[new_title, "share_frozen"].sum()),
            "share_new_title_retrained": float(novelty.loc[new_title, "share_retrained"].sum()),
            "half_star_share_after": float(drift["share_half_stars"].mean()),
            "psi_median": float(psi_scores.median()),
            "psi_max": float(psi_scores.max()),
            "psi_prev_median": float(drift["psi_score_prev"].median()),
            "share_periods_psi_significant": float((psi_scores > 0.25).mean()),
            "share_ratings_new_users_median": float(drift["share_ratings_new_users"].median()),
            "share_new_titles_median": float(drift["share_new_titles"].median()),
            "psi_threshold": s["psi_threshold"],
            "error_increase": s["error_increase"],
            "new_user_threshold": s["new_user_threshold"],
            "policy_rule": self.policy_rule(),
            "policy_retrains": self.policy.n_retrains,
            "policy_rmse": self.policy.rmse,
            "policy_gain_share": _ratio(frozen - self.policy.rmse, frozen - retrained),
            "every_retrains": len(decay) - 1,
        }


def _weighted_rmse(rmse: pd.Series, weights: pd.Series) -> float:
    """RMSE over several periods from each period's RMSE and rating count."""
    return float(np.sqrt((rmse**2 * weights).sum() / weights.sum()))


def monitor_timeline(
    model_df: pd.DataFrame,
    titles: pd.DataFrame | None = None,
    *,
    period: str | None = None,
    start_period: str | pd.Period | None = None,
    replay_model: str = "baseline",
    psi_threshold: float | None = None,
    error_increase: float | None = None,
    new_user_threshold: float | None = None,
    target_gain_share: float = 0.9,
    psi_eps: float = PSI_EPS,
    psi_grid: Sequence[float] = (0.25, 0.5, 1.0, np.inf),
    error_grid: Sequence[float] = (0.05, 0.1, 0.2, np.inf),
    new_user_grid: Sequence[float] = (0.5, 0.8, 0.9, np.inf),
    seed: int = DEFAULT_SEED,
    paths: ProjectPaths | None = None,
) -> MonitoringResult:
    """The monitoring step: drift, the frozen-vs-retrained replay and the retraining policy.

    Args:
        model_df: the model table (user, item, score, timestamp).
        titles: the titles table (adds the platform mix when it names several platforms).
        period: pandas period alias (``"Q"`` quarters, ``"Y"`` years, ``"M"`` months,
            ``"W"`` weeks). ``None``: :func:`derived_period`.
        start_period: first replayed period; every rating before it is the reference
            window. ``None``: :func:`derived_start_period` (the period of the median rating).
        replay_model: the rating model retrained in the replay (see :func:`replay_timeline`).
        psi_threshold, error_increase, new_user_threshold: the chosen trigger policy
            (:func:`simulate_trigger_policy`). ``None``: derived from the sweep
            (:func:`derived_thresholds`), keeping the thresholds that are given.
        target_gain_share: share of the "retrain every period" gain the derived policy
            keeps at least.
        psi_eps: floor of a bin's proportion in the PSI.
        psi_grid, error_grid, new_user_grid: thresholds swept to draw the policy frontier.
        seed: seed of the replay model (only the SVD model draws random numbers).
        paths: when given, the figures are saved to ``paths.figures`` (``mon_*.png``).

    Raises:
        DataError: a model table without the needed columns, empty, with every rating in
        one period, or a start period outside its timeline.
    """
    _check_model_table(model_df)
    period_source = "derived" if period is None else "set"
    period = period or derived_period(model_df["timestamp"])
    periods = assign_periods(model_df["timestamp"], period)
    start_p, _ = _period_list(periods, start_period, period)
    given = {name: value for name, value in zip(
        THRESHOLDS, (psi_threshold, error_increase, new_user_threshold), strict=True)
        if value is not None}
    # A given threshold is swept too, so the derived ones are chosen next to it.
    grids = [sorted({*grid, given[name]}) if name in given else list(grid) for name, grid
             in zip(THRESHOLDS, (psi_grid, error_grid, new_user_grid), strict=True)]
    drift = drift_summary(model_df, titles, period=period, start=start_p, eps=psi_eps)
    replay = replay_timeline(model_df, period=period, start=start_p, model=replay_model,
                             seed=seed)
    sweep = sweep_trigger_policies(replay, *grids, eps=psi_eps)
    thresholds = given if len(given) == len(THRESHOLDS) else derived_thresholds(
        sweep, target_gain_share, fixed=given)
    policy = simulate_trigger_policy(replay, **thresholds, eps=psi_eps)
    policies = compare_policies(replay, policy)
    k = len(replay.periods)
    frozen, every = replay.overall([0] * k), replay.overall(list(range(k)))
    policies["gain_share"] = (frozen - policies["rmse"]) / (frozen - every) if frozen != every \
        else np.nan
    settings: dict[str, Any] = {
        "period": period, "period_source": period_source, "start_period": str(start_p),
        "replay_model": replay_model,
        **thresholds, "thresholds_derived": [n for n in THRESHOLDS if n not in given],
        "target_gain_share": target_gain_share, "psi_eps": psi_eps,
        "psi_grid": grids[0], "error_grid": grids[1], "new_user_grid": grids[2], "seed": seed,
        "last_year_periods": periods_per_year(period),
    }
    half = pd.DataFrame({"year": model_df["timestamp"].dt.year,
                         "half_star": model_df["score"] % 1 != 0})
    result = MonitoringResult(
        settings=settings,
        start_period_source="derived" if start_period is None else "set",
        n_ratings=len(model_df),
        n_reference=int((periods < start_p).sum()),
        first_rating=model_df["timestamp"].min(),
        last_rating=model_df["timestamp"].max(),
        drift=drift, replay=replay, decay=replay.table, novelty=replay.novelty,
        policy=policy, policies=policies, sweep=sweep,
        half_stars_by_year=half.groupby("year")["half_star"].mean()
        .to_frame("share of half-star scores").T,
    )
    result.figures = _figures(result)
    if paths is not None:
        from recsys_utils.plots import save_figure

        result.written = {name: save_figure(fig, name, paths)
                          for name, fig in result.figures.items()}
        write_thresholds(result, paths)  # outputs/reports/monitoring.json, for recsys-retrain
    return result


def _figures(result: MonitoringResult) -> dict[str, Any]:
    """The step's figures in the house style, closed so they show only where displayed."""
    # Imported here: the drift and replay functions need no matplotlib. plots first: it
    # picks the headless backend when nobody chose one.
    from recsys_utils.plots import plt, set_style  # isort: skip
    from recsys_utils.lifecycle import figures

    with plt.rc_context():
        set_style()
        made = {
            "mon_drift": figures.plot_drift(result.drift),
            "mon_activity_mix": figures.plot_activity_mix(result.drift, list(ACTIVITY_BUCKETS)),
            "mon_decay": figures.plot_decay(result.decay, result.start_period),
            "mon_policy": figures.plot_policy_frontier(
                result.sweep, result.policy.n_retrains, result.policy.rmse,
                result.rmse_frozen, result.rmse_retrained),
        }
    for fig in made.values():
        plt.close(fig)  # still displayable and savable; not shown all at once by the step's cell
    return made
