"""Exploratory analysis: small functions that compute what each EDA figure shows, and the figures.

Two layers, so the numbers are testable without looking at pictures:

* ``compute`` functions take the processed tables (``ratings``, ``titles``, ``analytics``;
  schema in ``book/data_dictionary.md``) and return tidy DataFrames or dicts;
* ``plot_*`` functions take those frames and return a titled, labelled matplotlib
  :class:`~matplotlib.figure.Figure` (log scales where the data has a long tail).

The notebook ``02_eda`` strings them together and saves each figure with
:func:`recsys_utils.plots.save_figure`.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from recsys_utils import DEFAULT_SEED
from recsys_utils.explore.analytics import split_list

__all__ = [
    "activity_per_title",
    "activity_per_user",
    "activity_summary",
    "durations",
    "duration_summary",
    "has_values",
    "interaction_sample",
    "key_numbers",
    "maturity_ratings",
    "platform_overlap",
    "overlap_distribution",
    "popularity_vs_score",
    "ratings_distribution",
    "ratings_over_time",
    "release_year_counts",
    "sparsity",
    "titles_per_platform_type",
    "top_countries",
    "top_genres",
    "top_values",
]

# =========================================================================== ratings


def ratings_distribution(ratings: pd.DataFrame) -> pd.DataFrame:
    """How often each score is given: columns ``score``, ``n_ratings``, ``share`` (sums to 1)."""
    counts = ratings["score"].astype("float64").value_counts().sort_index()
    out = counts.rename("n_ratings").rename_axis("score").reset_index()
    out["n_ratings"] = out["n_ratings"].astype("int64")
    out["share"] = out["n_ratings"] / max(int(out["n_ratings"].sum()), 1)
    return out


def _activity(ratings: pd.DataFrame, key: str) -> pd.DataFrame:
    counts = ratings.groupby(key, observed=True).size().rename("n_ratings").reset_index()
    # Most active first, ties by id, so ranks (and rank plots) are reproducible.
    counts = counts.sort_values(["n_ratings", key], ascending=[False, True], kind="mergesort")
    counts["n_ratings"] = counts["n_ratings"].astype("int64")
    return counts.reset_index(drop=True)


def activity_per_user(ratings: pd.DataFrame) -> pd.DataFrame:
    """Ratings per user, most active first: columns ``user_id``, ``n_ratings``."""
    return _activity(ratings, "user_id")


def activity_per_title(ratings: pd.DataFrame) -> pd.DataFrame:
    """Ratings per rated title, most rated first: columns ``item_id``, ``n_ratings``."""
    return _activity(ratings, "item_id")


def activity_summary(activity: pd.DataFrame) -> dict[str, float]:
    """Shape of a long tail: ``n``, ``min``, ``median``, ``mean``, ``p90``, ``max`` of
    ``n_ratings``, and ``top10_share`` -- the share of all ratings that the most active
    10% (at least one) of users/titles account for."""
    n = activity["n_ratings"].astype("float64")
    if n.empty:
        return dict.fromkeys(("n", "min", "median", "mean", "p90", "max", "top10_share"), 0.0)
    top = n.sort_values(ascending=False).iloc[: max(1, math.ceil(len(n) * 0.1))]
    return {
        "n": float(len(n)),
        "min": float(n.min()),
        "median": float(n.median()),
        "mean": float(n.mean()),
        "p90": float(n.quantile(0.9)),
        "max": float(n.max()),
        "top10_share": float(top.sum() / n.sum()),
    }


def sparsity(ratings: pd.DataFrame) -> dict[str, float]:
    """How empty the user x title matrix is, over users and titles with at least one rating.

    Returns ``n_ratings``, ``n_users``, ``n_items`` (rated titles), ``density``
    (ratings / cells) and ``sparsity`` (1 - density). Duplicated (user, title) pairs count once.
    """
    pairs = ratings[["user_id", "item_id"]].drop_duplicates()
    n_users, n_items = pairs["user_id"].nunique(), pairs["item_id"].nunique()
    cells = n_users * n_items
    density = len(pairs) / cells if cells else 0.0
    return {
        "n_ratings": float(len(ratings)),
        "n_users": float(n_users),
        "n_items": float(n_items),
        "density": float(density),
        "sparsity": float(1.0 - density) if cells else 0.0,
    }


def interaction_sample(
    ratings: pd.DataFrame, max_points: int = 50_000, seed: int = DEFAULT_SEED
) -> pd.DataFrame:
    """Who-rated-what, for a picture of sparsity: columns ``user_rank``, ``item_rank``.

    Users are ranked by activity and titles by popularity (0 = most), so the dense corner is
    top-left. At most ``max_points`` ratings are kept, sampled with ``seed``.
    """
    users = activity_per_user(ratings)
    items = activity_per_title(ratings)
    user_rank = pd.Series(np.arange(len(users)), index=users["user_id"].to_numpy())
    item_rank = pd.Series(np.arange(len(items)), index=items["item_id"].to_numpy())
    pairs = ratings[["user_id", "item_id"]]
    if len(pairs) > max_points:
        pairs = pairs.sample(n=max_points, random_state=seed)
    return pd.DataFrame({
        "user_rank": user_rank.reindex(pairs["user_id"].to_numpy()).to_numpy(),
        "item_rank": item_rank.reindex(pairs["item_id"].to_numpy()).to_numpy(),
    })


def ratings_over_time(ratings: pd.DataFrame, freq: str = "M") -> pd.DataFrame:
    """Ratings per period: columns ``period`` (period start, Timestamp), ``n_ratings``,
    ``mean_score``. ``freq`` is a pandas period code: ``"M"`` (month) or ``"Y"`` (year)."""
    ts = pd.to_datetime(ratings["timestamp"])
    period = ts.dt.to_period(freq).dt.start_time.rename("period")
    out = (
        ratings.assign(period=period)
        .groupby("period", observed=True)["score"]
        .agg(n_ratings="size", mean_score="mean")
        .reset_index()
    )
    out["n_ratings"] = out["n_ratings"].astype("int64")
    out["mean_score"] = out["mean_score"].astype("float64")
    return out


def popularity_vs_score(
    analytics: pd.DataFrame, max_points: int = 5_000, seed: int = DEFAULT_SEED
) -> pd.DataFrame:
    """Rated titles' ``n_ratings`` and ``mean_score`` (one row per ``item_id``), sampled down
    to ``max_points`` with ``seed``: shows that rarely rated titles have the extreme means.

    ``attrs["n_rated"]`` is the number of rated titles before sampling (the figure says
    which share it shows)."""
    rated = analytics.loc[analytics["n_ratings"] > 0, ["item_id", "n_ratings", "mean_score"]]
    rated = rated.drop_duplicates("item_id").dropna(subset=["mean_score"])
    n_rated = len(rated)
    if len(rated) > max_points:
        rated = rated.sample(n=max_points, random_state=seed)
    out = rated.reset_index(drop=True).astype({"n_ratings": "int64", "mean_score": "float64"})
    out.attrs["n_rated"] = n_rated
    return out


# =========================================================================== catalog


def has_values(titles: pd.DataFrame, column: str) -> bool:
    """Whether ``column`` exists and holds at least one non-null value (catalog-only fields
    such as ``country`` or ``cast`` are empty on the MovieLens default)."""
    return column in titles.columns and bool(titles[column].notna().any())


def titles_per_platform_type(titles: pd.DataFrame) -> pd.DataFrame:
    """Titles per platform and type: columns ``platform``, ``type``, ``n_titles``
    (largest platform first)."""
    out = titles.groupby(["platform", "type"], observed=True).size().rename("n_titles")
    out = out.reset_index()
    order = out.groupby("platform")["n_titles"].sum().sort_values(ascending=False, kind="mergesort")
    out["platform"] = pd.Categorical(out["platform"], categories=list(order.index), ordered=True)
    out = out.sort_values(["platform", "type"]).reset_index(drop=True)
    out["platform"] = out["platform"].astype(str)
    out["n_titles"] = out["n_titles"].astype("int64")
    return out


def release_year_counts(titles: pd.DataFrame) -> pd.DataFrame:
    """Titles per release year and platform: columns ``platform``, ``release_year``, ``n_titles``."""
    rows = titles.dropna(subset=["release_year"])
    out = rows.groupby(["platform", "release_year"], observed=True).size().rename("n_titles")
    out = out.reset_index()
    return out.astype({"release_year": "int64", "n_titles": "int64"})


def durations(titles: pd.DataFrame) -> pd.DataFrame:
    """Titles with a known length: columns ``platform``, ``type``, ``duration_type``,
    ``duration_int`` (minutes for ``min``, seasons for ``season``)."""
    cols = ["platform", "type", "duration_type", "duration_int"]
    rows = titles.loc[titles["duration_int"].notna() & titles["duration_type"].notna(), cols]
    return rows.astype({"duration_int": "int64"}).reset_index(drop=True)


def duration_summary(titles: pd.DataFrame) -> pd.DataFrame:
    """Length per platform and type: columns ``platform``, ``type``, ``duration_type``,
    ``n``, ``median``, ``p90``, ``max``."""
    rows = durations(titles)
    out = rows.groupby(["platform", "type", "duration_type"], observed=True)["duration_int"].agg(
        n="size", median="median", p90=lambda s: s.quantile(0.9), max="max"
    )
    return out.reset_index()


def top_values(
    titles: pd.DataFrame, column: str, top_n: int = 15, by_platform: bool = False
) -> pd.DataFrame:
    """The ``top_n`` most frequent values of a comma-separated ``column`` (genres, country).

    A title counts once per value it lists. Columns: ``<column>``, ``n_titles``, ``share``
    (of titles that list any value); with ``by_platform`` also ``platform``, one row per
    (value, platform) for the overall top values. Ordered most frequent first (ties by name).
    """
    rows = titles.reset_index(drop=True)
    values = split_list(rows[column]).rename(column).rename_axis("row").reset_index()
    values = values.drop_duplicates()  # a title lists a value once
    n_with = max(values["row"].nunique(), 1)
    overall = values.groupby(column).size().rename("n_titles").reset_index()
    overall = overall.sort_values(["n_titles", column], ascending=[False, True], kind="mergesort")
    overall = overall.head(top_n).reset_index(drop=True)
    overall["share"] = overall["n_titles"] / n_with
    overall["n_titles"] = overall["n_titles"].astype("int64")
    if not by_platform:
        return overall
    values["platform"] = rows["platform"].to_numpy()[values["row"].to_numpy()]
    values = values[values[column].isin(overall[column])]
    per = values.groupby([column, "platform"]).size().rename("n_titles").reset_index()
    per[column] = pd.Categorical(per[column], categories=list(overall[column]), ordered=True)
    per = per.sort_values([column, "platform"]).reset_index(drop=True)
    per[column] = per[column].astype(str)
    per["share"] = per["n_titles"] / n_with
    return per.astype({"n_titles": "int64"})[[column, "platform", "n_titles", "share"]]


def top_genres(titles: pd.DataFrame, top_n: int = 15, by_platform: bool = False) -> pd.DataFrame:
    """:func:`top_values` of ``genres``."""
    return top_values(titles, "genres", top_n, by_platform)


def top_countries(titles: pd.DataFrame, top_n: int = 15, by_platform: bool = False) -> pd.DataFrame:
    """:func:`top_values` of ``country`` (a co-production counts for each country)."""
    return top_values(titles, "country", top_n, by_platform)


def maturity_ratings(titles: pd.DataFrame) -> pd.DataFrame:
    """Titles per maturity rating and platform: columns ``platform``, ``rating``, ``n_titles``,
    ``share`` (within the platform's rated titles). Titles without a rating are left out."""
    rows = titles.dropna(subset=["rating"])
    out = rows.groupby(["platform", "rating"], observed=True).size().rename("n_titles")
    out = out.reset_index().astype({"n_titles": "int64"})
    out["share"] = out["n_titles"] / out.groupby("platform")["n_titles"].transform("sum")
    return out.sort_values(["platform", "n_titles", "rating"], ascending=[True, False, True],
                           kind="mergesort").reset_index(drop=True)


def _overlap_keys(titles: pd.DataFrame) -> pd.DataFrame:
    # The same film on two platforms: same normalized title and release year (the linking rule).
    keys = titles[["title_norm", "release_year", "platform"]].dropna().drop_duplicates()
    return keys.astype({"release_year": "int64"})


def platform_overlap(titles: pd.DataFrame) -> pd.DataFrame:
    """Titles shared by each pair of platforms, matched on ``title_norm`` + ``release_year``.

    A square DataFrame (index and columns: platforms, sorted); the diagonal holds each
    platform's number of distinct (title, year) keys.
    """
    keys = _overlap_keys(titles)
    onehot = pd.crosstab([keys["title_norm"], keys["release_year"]], keys["platform"]).clip(upper=1)
    matrix = onehot.T @ onehot
    matrix.index.name, matrix.columns.name = "platform", "platform"
    return matrix.astype("int64")


def overlap_distribution(titles: pd.DataFrame) -> pd.DataFrame:
    """On how many platforms each (title, year) key is: columns ``n_platforms``, ``n_titles``."""
    keys = _overlap_keys(titles)
    per_key = keys.groupby(["title_norm", "release_year"]).size()
    out = per_key.value_counts().sort_index().rename("n_titles").rename_axis("n_platforms")
    return out.reset_index().astype("int64")


# =========================================================================== summary


def key_numbers(ratings: pd.DataFrame, titles: pd.DataFrame) -> dict[str, Any]:
    """The EDA's headline numbers (plain ints/floats), glued as ``eda_<name>`` by the notebook.

    Keys: ``n_ratings``, ``n_users``, ``n_titles`` (catalog rows), ``n_rated_titles``,
    ``n_platforms``, ``sparsity``, ``mean_score``, ``median_ratings_per_user``,
    ``median_ratings_per_title``, ``top10_users_share``, ``top10_titles_share``,
    ``first_rating_year``, ``last_rating_year``, ``n_multi_platform_titles`` (title+year keys
    on two or more platforms; 0 for a single platform).
    """
    sp = sparsity(ratings)
    users = activity_summary(activity_per_user(ratings))
    items = activity_summary(activity_per_title(ratings))
    years = pd.to_datetime(ratings["timestamp"]).dt.year
    overlap = overlap_distribution(titles)
    return {
        "n_ratings": int(sp["n_ratings"]),
        "n_users": int(sp["n_users"]),
        "n_titles": int(len(titles)),
        "n_rated_titles": int(sp["n_items"]),
        "n_platforms": int(titles["platform"].nunique()),
        "sparsity": float(sp["sparsity"]),
        "mean_score": float(ratings["score"].astype("float64").mean()) if len(ratings) else 0.0,
        "median_ratings_per_user": float(users["median"]),
        "median_ratings_per_title": float(items["median"]),
        "top10_users_share": float(users["top10_share"]),
        "top10_titles_share": float(items["top10_share"]),
        "first_rating_year": int(years.min()) if len(years) else 0,
        "last_rating_year": int(years.max()) if len(years) else 0,
        "n_multi_platform_titles": int(overlap.loc[overlap["n_platforms"] >= 2, "n_titles"].sum()),
    }


# =========================================================================== figures


def _log_bins(values: pd.Series, n: int = 30) -> np.ndarray:
    # Counts are integers: round log-spaced edges to half-integers so that small counts
    # (1, 2, 3 ratings) each get their own bar instead of gaps between empty bins.
    lo, hi = max(float(values.min()), 1.0), max(float(values.max()), 2.0)
    return np.unique(np.round(np.geomspace(lo, hi + 1, n))) - 0.5


def plot_ratings_distribution(dist: pd.DataFrame) -> Figure:
    """Bar chart of :func:`ratings_distribution`."""
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(dist["score"], dist["n_ratings"], width=0.4, color=sns.color_palette()[0])
    ax.set(title="How users rate: distribution of scores", xlabel="score",
           ylabel="number of ratings", xticks=dist["score"])
    for x, n, s in zip(dist["score"], dist["n_ratings"], dist["share"], strict=True):
        ax.annotate(f"{s:.0%}", (x, n), ha="center", va="bottom", fontsize=8)
    return fig


def plot_activity(user_activity: pd.DataFrame, title_activity: pd.DataFrame) -> Figure:
    """Long tails of activity: histograms of ratings per user and per title (log-log)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    for ax, act, who, color in (
        (axes[0], user_activity, "user", sns.color_palette()[0]),
        (axes[1], title_activity, "title", sns.color_palette()[1]),
    ):
        n = act["n_ratings"]
        ax.hist(n, bins=_log_bins(n), color=color)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axvline(n.median(), color="black", ls="--", lw=1, label=f"median {n.median():g}")
        ax.legend()
        ax.set(title=f"Ratings per {who}", xlabel=f"ratings per {who} (log)",
               ylabel=f"number of {who}s (log)")
    fig.suptitle("Activity is a long tail: few users and titles carry most ratings")
    return fig


def plot_interactions(sample: pd.DataFrame) -> Figure:
    """Spy plot of :func:`interaction_sample` (one dot per rating)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(sample["item_rank"], sample["user_rank"], s=0.3, alpha=0.4, marker=".",
               color=sns.color_palette()[0], rasterized=True)
    ax.invert_yaxis()
    ax.set(title="Who rated what: the user x title matrix is mostly empty",
           xlabel="titles, most rated first", ylabel="users, most active first")
    return fig


def plot_ratings_over_time(monthly: pd.DataFrame, yearly: pd.DataFrame) -> Figure:
    """Ratings per month (top) and mean score per year (bottom)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.plot(monthly["period"], monthly["n_ratings"], lw=1)
    top.set(title="Ratings per month", xlabel="month", ylabel="ratings")
    bottom.plot(yearly["period"], yearly["mean_score"], marker="o", color=sns.color_palette()[2])
    bottom.set(title="Mean score per year", xlabel="year", ylabel="mean score")
    fig.suptitle("Ratings over time")
    fig.tight_layout()
    return fig


#: Jitter of the popularity-vs-score points: x is multiplied by 10**U(-a, a), y moved by U(-b, b).
_JITTER_X, _JITTER_Y = 0.08, 0.08


def plot_popularity_vs_score(points: pd.DataFrame, seed: int = DEFAULT_SEED) -> Figure:
    """Scatter of :func:`popularity_vs_score`: few ratings, extreme means.

    Titles with 1-5 ratings share a few exact (count, mean) values, so the points are
    jittered (seeded) and drawn faint, and the number of titles at each of those counts is
    written out; the title says how many of the rated titles the sample shows."""
    rng = np.random.default_rng(seed)
    n = points["n_ratings"].to_numpy(dtype=float)
    x = n * 10 ** rng.uniform(-_JITTER_X, _JITTER_X, len(n))
    y = points["mean_score"].to_numpy(dtype=float) + rng.uniform(-_JITTER_Y, _JITTER_Y, len(n))
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.scatter(x, y, s=5, alpha=0.2, linewidths=0)
    ax.set_xscale("log")
    counts = [int((points["n_ratings"] == c).sum()) for c in range(1, 6)]
    ax.text(0.99, 0.03, "titles shown with 1 / 2 / 3 / 4 / 5 ratings:\n"
            + " / ".join(f"{k:,}" for k in counts), transform=ax.transAxes, ha="right",
            va="bottom", fontsize=8, color="0.25",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.8"})
    n_rated = int(points.attrs.get("n_rated", len(points)))
    shown = (f"all {n_rated:,} rated titles" if n_rated == len(points)
             else f"a random sample of {len(points):,} of the {n_rated:,} rated titles")
    ax.set(title="Rarely rated titles have the most extreme mean scores\n"
                 f"{shown}; points jittered to show how many overlap",
           xlabel="ratings per title (log scale)", ylabel="mean score")
    ax.title.set_fontsize(10)
    return fig


def plot_titles_per_platform(counts: pd.DataFrame) -> Figure:
    """Stacked bars of :func:`titles_per_platform_type`."""
    wide = counts.pivot(index="platform", columns="type", values="n_titles").fillna(0)
    wide = wide.loc[counts["platform"].drop_duplicates()]
    fig, ax = plt.subplots(figsize=(8, 4))
    wide.plot.bar(stacked=True, ax=ax, rot=0)
    ax.set(title="Titles per platform and type", xlabel="platform", ylabel="titles")
    ax.legend(title="type")
    return fig


def first_drawn_year(counts: pd.DataFrame, share: float = 0.01) -> int:
    """The first release year worth drawing: the start of the decade that holds the oldest
    ``share`` of the titles (1930 on the default data), so a thin tail of very old titles
    does not squeeze the years that hold the catalog, whatever years the catalog covers."""
    years = np.repeat(counts["release_year"].to_numpy(), counts["n_titles"].to_numpy())
    return int(np.quantile(years, share, method="lower") // 10 * 10) if years.size else 0


def plot_release_years(counts: pd.DataFrame, since: int | None = None) -> Figure:
    """Titles per release year, one line per platform (log scale: recent years dominate),
    from ``since`` on (``None``: :func:`first_drawn_year`)."""
    since = first_drawn_year(counts) if since is None else since
    rows = counts[counts["release_year"] >= since]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    sns.lineplot(data=rows, x="release_year", y="n_titles", hue="platform", ax=ax)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())  # 100, not 10^2: easier to read
    ax.set(title="Titles per release year", xlabel="release year", ylabel="titles (log)")
    return fig


def plot_durations(lengths: pd.DataFrame, max_seasons: int = 10) -> Figure:
    """Movie minutes (box plot per platform) and show seasons (share per platform)."""
    movies = lengths[lengths["duration_type"] == "min"]
    shows = lengths[lengths["duration_type"] == "season"]
    panels = [p for p, d in (("min", movies), ("season", shows)) if not d.empty]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6 * max(len(panels), 1), 4.5),
                             squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=False):
        if panel == "min":
            groups = movies.groupby("platform")["duration_int"]
            names = [str(name) for name, _ in groups]
            # Plain matplotlib: seaborn's boxplot warns on matplotlib >= 3.11 (``vert``).
            ax.boxplot([g.to_numpy() for _, g in groups], flierprops={"markersize": 1.5},
                       patch_artist=True, boxprops={"facecolor": sns.color_palette()[0]},
                       medianprops={"color": "black"})
            ax.set_xticks(range(1, len(names) + 1), names)
            ax.set(title="Movie length", xlabel="platform", ylabel="minutes")
        else:
            seasons = shows.assign(seasons=shows["duration_int"].clip(upper=max_seasons))
            share = (seasons.groupby("platform")["seasons"].value_counts(normalize=True)
                     .rename("share").reset_index())
            sns.barplot(data=share, x="seasons", y="share", hue="platform", ax=ax)
            ax.set_yscale("log")
            ax.set(title=f"Show length ({max_seasons} = {max_seasons} or more)",
                   xlabel="seasons", ylabel="share of the platform's shows (log)")
    if not panels:
        axes[0, 0].set(title="No lengths", xlabel="", ylabel="")
    fig.suptitle("Durations by type")
    fig.tight_layout()
    return fig


def plot_top_values(
    top: pd.DataFrame, column: str, label: str, plural: str | None = None
) -> Figure:
    """Horizontal bars of :func:`top_values` (stacked by platform when ``platform`` is a column).

    ``label`` names one value (y axis: ``"genre"``); ``plural`` is used in the title
    (default ``label + "s"``)."""
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.35 * top[column].nunique() + 1)))
    if "platform" in top.columns:
        wide = top.pivot(index=column, columns="platform", values="n_titles").fillna(0)
        wide = wide.loc[list(dict.fromkeys(top[column]))[::-1]]
        wide.plot.barh(stacked=True, ax=ax)
        ax.legend(title="platform", loc="lower right")
    else:
        ax.barh(top[column][::-1], top["n_titles"][::-1], color=sns.color_palette()[0])
    ax.set(title=f"Top {top[column].nunique()} {plural or label + 's'}", xlabel="titles",
           ylabel=label)
    return fig


def plot_maturity_ratings(counts: pd.DataFrame, top_n: int = 15) -> Figure:
    """:func:`maturity_ratings` as a heatmap of shares (several platforms) or as bars (one)."""
    order = counts.groupby("rating")["n_titles"].sum().sort_values(ascending=False).index[:top_n]
    title = "Maturity ratings: share of each platform's titles"
    if counts["platform"].nunique() <= 1:
        rows = counts.set_index("rating").reindex(order)
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(order) + 1.5))
        ax.barh(list(order)[::-1], rows["n_titles"][::-1], color=sns.color_palette()[0])
        for y, (n, share) in enumerate(zip(rows["n_titles"][::-1], rows["share"][::-1],
                                           strict=True)):
            ax.annotate(f" {share:.0%}", (n, y), va="center", fontsize=9)
        where = f" on {counts['platform'].iloc[0]}" if len(counts) else ""
        ax.set(title=f"Maturity ratings{where} (labels: share of rated titles)",
               xlabel="titles", ylabel="maturity rating")
        return fig
    wide = counts.pivot(index="rating", columns="platform", values="share").reindex(order)
    fig, ax = plt.subplots(figsize=(2 + 1.6 * wide.shape[1], 0.4 * len(order) + 1.5))
    sns.heatmap(wide, annot=True, fmt=".0%", cmap="Blues", cbar_kws={"label": "share"}, ax=ax)
    ax.grid(False)  # the house style's grid would cut through the cells
    ax.tick_params(axis="y", rotation=0)
    ax.set(title=title, xlabel="platform", ylabel="maturity rating")
    return fig


def plot_platform_overlap(matrix: pd.DataFrame) -> Figure:
    """Annotated heatmap of :func:`platform_overlap`."""
    values = matrix.to_numpy()
    off_diagonal = values[~np.eye(len(matrix), dtype=bool)]
    # Colour by the shared counts: the diagonal (whole catalogs) would wash them out.
    vmax = max(int(off_diagonal.max()), 1) if off_diagonal.size else None
    fig, ax = plt.subplots(figsize=(2.5 + 1.3 * len(matrix), 1.5 + 1.0 * len(matrix)))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Greens", vmin=0, vmax=vmax, ax=ax,
                cbar_kws={"label": "shared titles"})
    ax.set(title="Titles on both platforms (same title + release year; diagonal: all)",
           xlabel="platform", ylabel="platform")
    ax.tick_params(axis="y", rotation=0)
    ax.grid(False)
    return fig
