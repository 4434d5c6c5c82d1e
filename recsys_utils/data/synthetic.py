"""Synthetic scale data, fitted to the real data at hand, in the raw streaming layout.

Why: everything else is built on ~100 k ratings; to measure how each stage grows we
need 1 M-10 M ratings that behave like the real ones. :func:`generate` fits a small
model to the real model table and titles (:func:`fit_source`) and draws from it:

* **users** are noisy copies of real users (a real user is drawn as the template): the
  template's number of ratings (rescaled so the total is exactly ``n_ratings``; the
  long tail of activity is kept), whole- or half-star habit, active period and latent
  taste (user factors and bias of a biased low-rank model plus jitter);
* **titles** per platform in the source's proportions: the real titles first, then
  "grown" ones modelled on a real title of the same platform (a sequel-like name, the
  template's type, genres, year, duration, maturity rating; its factors plus jitter).
  A title's popularity is its template's number of ratings times a log-normal jitter,
  so the long tail of popularity is kept;
* **ratings**: a user rates distinct titles drawn by popularity; the score is
  ``mu + b_u + b_i + p_u.q_i + noise`` (noise = the model's held-out RMSE on the real
  ratings, so accuracy metrics stay meaningful), then mapped to the 0.5-5 scale by
  quantiles of the real score histogram (separately for whole-star and half-star
  users); a timestamp uniform in the user's active period.

The biased low-rank model is fitted by a few sweeps of alternating least squares in
numpy (normal equations of all users or all titles solved as one batch).

Output (the layout :func:`recsys_utils.data.cleaning.build_processed` reads as a user's
files, with 0 rejected rows): ``<platform>_titles.csv`` (Kaggle columns) and
``ratings/part-NNNNN.csv`` (``userId,rating,timestamp,movieId``; ``movieId`` = platform
prefix + ``show_id``), written in chunks of users (bounded memory) with atomic writes,
plus ``SYNTHETIC.md`` and ``synthetic.json`` (parameters, source, statistics, sha256 of
every file and an overall fingerprint) that label the folder synthetic. The same seed
and parameters give the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils import DEFAULT_SEED
from recsys_utils.atomic import atomic_write, atomic_write_text
from recsys_utils.data.catalogs import CATALOG_SUFFIX, platform_prefixes
from recsys_utils.data.ratings import EXPECTED_COLUMNS
from recsys_utils.errors import DataError, bounded, run_command

__all__ = ["MANIFEST", "SourceModel", "SyntheticResult", "default_titles", "default_users",
           "fit_source", "generate", "load_source", "main", "parse_count"]

#: The manifest written next to the generated files (its presence marks a synthetic folder).
MANIFEST = "synthetic.json"
LABEL = "SYNTHETIC.md"
#: The catalog columns written (the Netflix/Kaggle layout; ``listed_in`` holds the genres).
CATALOG_COLUMNS = ["show_id", "type", "title", "director", "cast", "country", "date_added",
                   "release_year", "rating", "duration", "listed_in", "description"]
#: Suffixes that turn a template title into a plausible new one (the n-th copy takes the n-th).
_SUFFIXES = ("II", "Returns", "III", "Reloaded", "Origins", "The Series", "Legacy", "Rising",
             "Revisited", "Forever", "Unbound", "Chronicles", "Redux", "Beyond", "Awakening")
#: Titles grow much more slowly than ratings: titles = source titles x (ratings ratio)^this.
#: 0.22 takes the MovieLens default (9 k titles at 100 k ratings) to ~25 k at 10 M.
TITLE_GROWTH_EXPONENT = 0.22
#: No user rates more than this share of the catalog (the real maximum is ~26%).
MAX_USER_SHARE = 0.5
_DAY = 86_400


def parse_count(text: str | int | float) -> int:
    """``"1M"`` → 1_000_000, ``"0.1M"`` → 100_000, ``"250k"`` → 250_000, ``"5000"`` → 5000."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        s = str(text).strip().lower().replace("_", "")
        scale = {"k": 1e3, "m": 1e6}.get(s[-1:], 1.0)
        try:
            value = float(s[:-1] if scale != 1.0 else s) * scale
        except ValueError:
            raise DataError(f"not a count: {text!r} (e.g. 100000, 250k, 1M)") from None
    if not math.isfinite(value) or value < 1:
        raise DataError(f"a count must be at least 1, got {text!r}")
    return int(round(value))


# --------------------------------------------------------------------------- the source model


@dataclass(frozen=True)
class SourceModel:
    """What the generator learnt from the real ratings and titles."""

    mu: float
    user_bias: np.ndarray          # per source user
    user_factors: np.ndarray       # (n_users, k)
    item_bias: np.ndarray          # per source item (model index)
    item_factors: np.ndarray       # (n_items, k)
    item_ids: np.ndarray           # source item ids, model index order
    item_counts: np.ndarray        # ratings per source item
    user_counts: np.ndarray        # ratings per source user
    user_first: np.ndarray         # first rating time (unix s) per source user
    user_span: np.ndarray          # last - first rating time (s) per source user
    user_half: np.ndarray          # True: the user gives half stars
    levels: np.ndarray             # the score levels 0.5..5
    hist_whole: np.ndarray         # share of each level among whole-star users' ratings
    hist_half: np.ndarray          # share of each level among half-star users' ratings
    score_hist: np.ndarray         # share of each level among all ratings
    noise_sd: float                # held-out RMSE of the low-rank model
    t_min: int
    t_max: int
    n_ratings: int
    description: str = ""

    @property
    def n_users(self) -> int:
        return len(self.user_bias)


def _als(users: np.ndarray, items: np.ndarray, y: np.ndarray, n_users: int, n_items: int,
         k: int, reg: float, sweeps: int, rng: np.random.Generator
         ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Biased matrix factorisation ``mu + b_u + b_i + p_u.q_i`` by alternating least squares.

    Each half-sweep solves every user's (or title's) ridge problem at once: the
    ``(k+1)x(k+1)`` normal equations are summed per row with one sparse product.
    """
    mu = float(y.mean())
    p = rng.normal(0, 0.1, (n_users, k))
    q = rng.normal(0, 0.1, (n_items, k))
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    n = len(y)
    by_user = sp.csr_matrix((np.ones(n), (users, np.arange(n))), shape=(n_users, n))
    by_item = sp.csr_matrix((np.ones(n), (items, np.arange(n))), shape=(n_items, n))
    eye = np.eye(k + 1) * reg
    eye[0, 0] = reg * 0.1  # the bias is shrunk less than the factors

    def solve(group: sp.csr_matrix, other_bias: np.ndarray, other: np.ndarray,
              idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.hstack([np.ones((n, 1)), other[idx]])             # (n, k+1)
        target = y - mu - other_bias[idx]
        outer = (x[:, :, None] * x[:, None, :]).reshape(n, -1)  # (n, (k+1)^2)
        a = np.asarray(group @ outer).reshape(-1, k + 1, k + 1) + eye
        b = np.asarray(group @ (x * target[:, None]))
        sol = np.linalg.solve(a, b[:, :, None])[:, :, 0]
        return sol[:, 0], sol[:, 1:]

    for _ in range(sweeps):
        bu, p = solve(by_user, bi, q, items)
        bi, q = solve(by_item, bu, p, users)
    return mu, bu, p, bi, q


def fit_source(model_df: pd.DataFrame, n_factors: int = 10, reg: float = 8.0, sweeps: int = 8,
               seed: int = DEFAULT_SEED, description: str = "") -> SourceModel:
    """Fit the generator's model to a model table (``user, item, score, timestamp``).

    The noise level is the low-rank model's RMSE on a random 10% of ratings held out of
    its fit (titles and users unseen in the fit part predict from the biases).
    """
    if len(model_df) < 100:
        raise DataError(f"the source has {len(model_df)} ratings; the generator needs >= 100")
    rng = np.random.default_rng(seed)
    users, user_ids = pd.factorize(model_df["user"], sort=True)
    items, item_ids = pd.factorize(model_df["item"].astype(str), sort=True)
    y = model_df["score"].to_numpy("float64")
    ts = model_df["timestamp"].to_numpy("datetime64[s]").astype("int64")
    n_u, n_i = len(user_ids), len(item_ids)

    held = rng.random(len(y)) < 0.1
    mu, bu, p, bi, q = _als(users[~held], items[~held], y[~held], n_u, n_i, n_factors, reg,
                            sweeps, rng)
    pred = mu + bu[users[held]] + bi[items[held]] + (p[users[held]] * q[items[held]]).sum(1)
    noise_sd = float(np.sqrt(np.mean((np.clip(pred, 0.5, 5.0) - y[held]) ** 2)))

    levels = np.arange(1, 11) / 2.0
    frame = pd.DataFrame({"u": users, "y": y, "ts": ts})
    per_user = frame.groupby("u").agg(n=("y", "size"), first=("ts", "min"), last=("ts", "max"),
                                      half=("y", lambda s: bool((s % 1 != 0).any())))
    half = per_user["half"].to_numpy(bool)

    def hist(mask_users: np.ndarray) -> np.ndarray:
        sel = mask_users[users]
        if not sel.any():
            return np.zeros(len(levels))
        counts = np.bincount(np.rint(y[sel] * 2).astype(int) - 1, minlength=10)[:10]
        return counts / counts.sum()

    return SourceModel(
        mu=mu, user_bias=bu, user_factors=p, item_bias=bi, item_factors=q,
        item_ids=np.asarray(item_ids, dtype=object),
        item_counts=np.bincount(items, minlength=n_i),
        user_counts=per_user["n"].to_numpy("int64"),
        user_first=per_user["first"].to_numpy("int64"),
        user_span=(per_user["last"] - per_user["first"]).to_numpy("int64"),
        user_half=half, levels=levels, hist_whole=hist(~half), hist_half=hist(half),
        score_hist=hist(np.ones(n_u, bool)),
        noise_sd=noise_sd, t_min=int(ts.min()), t_max=int(ts.max()), n_ratings=len(y),
        description=description)


def load_source(which: str = "processed") -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """``(model table, titles, description)`` of the real data at hand.

    ``processed``: the cleaning step's tables (``make pipeline`` / 01 first), refusing a
    synthetic set (a copy of a copy drifts); ``embedded``: the embedded MovieLens
    default cleaned in memory.
    """
    from recsys_utils.data.cleaning import embedded_movielens, load_processed
    from recsys_utils.paths import project_paths

    if which == "embedded":
        titles, model = embedded_movielens()
        return model, titles, "embedded MovieLens sample (dslabs/movielens), cleaned in memory"
    if which != "processed":
        raise DataError(f"unknown source {which!r}; expected processed or embedded")
    paths = project_paths()
    data = load_processed(paths)
    meta_file = paths.processed / "accounting.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    raw_dir = meta.get("raw_dir")
    if raw_dir and (Path(raw_dir) / MANIFEST).is_file():
        raise DataError(f"the processed tables were cleaned from synthetic data ({raw_dir}); "
                        "run 01 on real data first or use --source embedded")
    what = f"processed tables ({meta.get('source', '?')}" + (f", {raw_dir})" if raw_dir else ")")
    return data.model, data.titles, what


# --------------------------------------------------------------------------- sizes


def default_users(n_ratings: int, source: SourceModel) -> int:
    """Users keeping the source's mean number of ratings per user."""
    return max(1, round(n_ratings * source.n_users / source.n_ratings))


def default_titles(n_ratings: int, n_source_titles: int, n_source_ratings: int) -> int:
    """Titles growing with ``(ratings ratio) ** TITLE_GROWTH_EXPONENT`` (never fewer than
    the source has when there are more ratings)."""
    return max(1, round(n_source_titles * (n_ratings / n_source_ratings) ** TITLE_GROWTH_EXPONENT))


def _allocate(weights: np.ndarray, total: int, cap: np.ndarray | int | None = None,
              floor: int = 0) -> np.ndarray:
    """Integers proportional to ``weights`` summing to ``total`` (largest remainders),
    each in ``[floor, cap]`` (excess over a cap goes to the others)."""
    weights = np.asarray(weights, dtype="float64")
    caps = np.full(len(weights), np.iinfo(np.int64).max) if cap is None else \
        np.broadcast_to(np.asarray(cap, dtype="int64"), weights.shape)
    out = np.full(len(weights), floor, dtype="int64")
    free = np.ones(len(weights), bool)
    for _ in range(50):
        left = total - out.sum()
        if left <= 0 or not free.any():
            break
        share = weights * free / (weights * free).sum() * left
        add = np.floor(share).astype("int64")
        rem = int(left - add.sum())
        if rem > 0:  # the largest remainders get one more (stable: ties by position)
            order = np.argsort(-(share - add), kind="stable")[:rem]
            add[order] += 1
        out = np.minimum(out + add, caps)
        free = out < caps
    return out


# --------------------------------------------------------------------------- titles


def _grow_catalog(titles: pd.DataFrame, n_titles: int, source: SourceModel,
                  rng: np.random.Generator) -> pd.DataFrame:
    """The generated catalog: real titles first, then titles modelled on real ones, per
    platform in the source's proportions. Adds ``platform``, ``donor`` (source model index
    of the title whose factors it takes) and ``weight`` (popularity) columns."""
    titles = titles.reset_index(drop=True)
    index_of = {item: i for i, item in enumerate(source.item_ids)}
    donor_all = titles["item_id"].astype(str).map(index_of)
    rated = np.flatnonzero(source.item_counts > 0)
    platforms = sorted(titles["platform"].astype(str).unique())
    sizes = titles["platform"].astype(str).value_counts().reindex(platforms).to_numpy()
    per_platform = _allocate(sizes, n_titles, floor=0)
    parts = []
    for platform, n_p in zip(platforms, per_platform, strict=True):
        src = titles[titles["platform"].astype(str) == platform]
        n_src = len(src)
        if n_p <= n_src:
            pick = np.sort(rng.choice(n_src, size=n_p, replace=False))
            copy_no = np.zeros(n_p, dtype="int64")
        else:
            extra = rng.integers(0, n_src, n_p - n_src)
            pick = np.concatenate([np.arange(n_src), extra])
            # the n-th grown copy of a template takes the n-th suffix
            seen = pd.Series(extra).groupby(extra).cumcount().to_numpy() + 1
            copy_no = np.concatenate([np.zeros(n_src, dtype="int64"), seen])
        out = src.iloc[pick].reset_index(drop=True)
        # a copy: with unrated titles the column is already float64, and pandas' copy-on-write
        # then hands out a read-only view
        donor = donor_all.loc[src.index[pick]].to_numpy(dtype="float64", copy=True)
        missing = np.isnan(donor)  # an unrated template takes a random rated title's taste
        donor[missing] = rng.choice(rated, size=int(missing.sum()))
        grown = copy_no > 0
        suffix = np.array([""] + [
            f" {_SUFFIXES[(c - 1) % len(_SUFFIXES)]}" + (f" {(c - 1) // len(_SUFFIXES) + 2}"
                                                          if c > len(_SUFFIXES) else "")
            for c in range(1, int(copy_no.max()) + 1)], dtype=object)
        out["title"] = out["title"].astype(str) + suffix[copy_no]
        year = out["release_year"].astype("Float64")
        bump = rng.integers(1, 6, len(out))
        out["release_year"] = year.where(~grown, (year + bump).clip(upper=2100)).astype("Int64")
        out["description"] = out["description"].astype(object).where(
            ~grown, "Synthetic title modelled on " + src["title"].astype(str).iloc[pick]
            .reset_index(drop=True) + ".")
        out["platform"] = platform
        out["show_id"] = [f"s{i}" for i in range(1, len(out) + 1)]
        out["donor"] = donor.astype("int64")
        out["grown"] = grown
        parts.append(out)
    catalog = pd.concat(parts, ignore_index=True)
    counts = source.item_counts[catalog["donor"].to_numpy()].astype("float64")
    counts = np.maximum(counts, 1.0)
    catalog["weight"] = counts * np.exp(rng.normal(0.0, 0.3, len(catalog)))
    return catalog


def _duration_text(row_int: pd.Series, row_type: pd.Series) -> pd.Series:
    n = row_int.astype("Int64")
    known = n.notna().to_numpy()
    season = (row_type.astype(object) == "season").to_numpy()
    one = (n.fillna(0) == 1).to_numpy()
    unit = np.where(season, np.where(one, " Season", " Seasons"), " min")
    text = n.fillna(0).astype("int64").astype(str) + unit
    return text.where(known, "")


def _catalog_csv(catalog: pd.DataFrame) -> pd.DataFrame:
    """The catalog in the raw Kaggle layout (text only; newlines flattened)."""
    def clean(col: str) -> pd.Series:
        s = catalog[col].astype(object).where(catalog[col].notna(), "").map(str)
        return s.str.replace(r"[\r\n]+", " ", regex=True)

    dates = pd.to_datetime(catalog["date_added"])
    return pd.DataFrame({
        "show_id": catalog["show_id"], "type": clean("type"), "title": clean("title"),
        "director": clean("director"), "cast": clean("cast"), "country": clean("country"),
        "date_added": dates.dt.strftime("%Y-%m-%d").where(dates.notna(), ""),
        "release_year": catalog["release_year"].astype("Int64").astype(str),
        "rating": clean("rating"),
        "duration": _duration_text(catalog["duration_int"], catalog["duration_type"]),
        "listed_in": clean("genres"), "description": clean("description"),
    })[CATALOG_COLUMNS]


# --------------------------------------------------------------------------- ratings


def _draw_items(counts: np.ndarray, cdf: np.ndarray, n_titles: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For users ``0..len(counts)-1``: ``counts[u]`` distinct titles each, drawn by popularity.

    Draws with replacement, keeps each (user, title) pair's first draw, and tops up the
    users left short (a few rounds; the last rounds draw uniformly so heavy users finish).
    Returns ``(local user, title)`` sorted by user, in draw order within a user.
    """
    n_users = len(counts)
    have_u = np.empty(0, dtype="int64")
    have_i = np.empty(0, dtype="int64")
    need = counts.astype("int64").copy()
    for round_no in range(30):
        short = np.flatnonzero(need > 0)
        if not len(short):
            break
        draws = np.ceil(need[short] * 1.3).astype("int64") + 2
        u = np.repeat(short, draws)
        uniform = round_no >= 6
        i = rng.integers(0, n_titles, len(u)) if uniform else \
            np.minimum(np.searchsorted(cdf, rng.random(len(u)) * cdf[-1], side="right"),
                       n_titles - 1)
        all_u = np.concatenate([have_u, u])
        all_i = np.concatenate([have_i, i])
        keys = all_u * n_titles + all_i
        _, first = np.unique(keys, return_index=True)
        first.sort()  # earlier draws (and everything kept before) win
        all_u, all_i = all_u[first], all_i[first]
        order = np.argsort(all_u, kind="stable")
        all_u, all_i = all_u[order], all_i[order]
        start = np.searchsorted(all_u, np.arange(n_users))
        rank = np.arange(len(all_u)) - start[all_u]
        keep = rank < counts[all_u]
        have_u, have_i = all_u[keep], all_i[keep]
        need = counts - np.bincount(have_u, minlength=n_users)
    return have_u, have_i


@dataclass
class _Users:
    template: np.ndarray
    counts: np.ndarray
    bias: np.ndarray
    factors: np.ndarray
    half: np.ndarray
    start: np.ndarray
    span: np.ndarray


def _make_users(source: SourceModel, n_users: int, n_ratings: int, n_titles: int,
                rng: np.random.Generator) -> _Users:
    tmpl = rng.integers(0, source.n_users, n_users)
    activity = source.user_counts[tmpl] * np.exp(rng.normal(0.0, 0.2, n_users))
    cap = max(1, int(MAX_USER_SHARE * n_titles))
    if n_users > n_ratings:  # a user without a rating is not in a rating file
        raise DataError(f"{n_users:,} users need at least {n_users:,} ratings (one each); "
                        f"give --users {n_ratings:,} or fewer")
    if n_ratings > cap * n_users:
        raise DataError(f"{n_ratings} ratings do not fit {n_users} users x {n_titles} titles "
                        f"(at most {MAX_USER_SHARE:.0%} of the catalog per user)")
    counts = _allocate(activity, n_ratings, cap=cap, floor=1)
    k = source.user_factors.shape[1]
    f_sd = source.user_factors.std(axis=0) * 0.3
    b_sd = float(source.user_bias.std()) * 0.3
    span = source.user_span[tmpl]
    period = source.t_max - source.t_min
    # shift the template's active period by up to a year, staying inside the source period
    shift = rng.normal(0.0, 180 * _DAY, n_users)
    start = np.clip(source.user_first[tmpl] + shift, source.t_min,
                    np.maximum(source.t_min, source.t_min + period - span))
    return _Users(template=tmpl, counts=counts,
                  bias=source.user_bias[tmpl] + rng.normal(0.0, b_sd, n_users),
                  factors=source.user_factors[tmpl] + rng.normal(0.0, 1.0, (n_users, k)) * f_sd,
                  half=source.user_half[tmpl], start=start.astype("int64"), span=span)


def _thresholds(latent: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """Cut points of ``latent`` at the cumulative shares of ``hist`` (9 cuts, 10 levels)."""
    cum = np.cumsum(hist)[:-1]
    return np.quantile(latent, np.clip(cum, 0.0, 1.0)) if len(latent) else np.zeros(9)


@dataclass
class SyntheticResult:
    """What :func:`generate` wrote."""

    out_dir: Path
    n_ratings: int
    n_users: int
    n_titles: int
    files: dict[str, str] = field(default_factory=dict)   # relative path -> sha256
    fingerprint: str = ""
    seconds: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n"))


def generate(out_dir: str | Path, n_ratings: int, n_users: int | None = None,
             n_titles: int | None = None, seed: int = DEFAULT_SEED,
             source: str | tuple[pd.DataFrame, pd.DataFrame, str] = "processed",
             chunk_ratings: int = 500_000, verbose: bool = False) -> SyntheticResult:
    """Generate a synthetic rating set in ``out_dir`` (the raw streaming layout).

    Args:
        out_dir: the folder to write (created; its ``ratings/part-*.csv`` and
            ``*_titles.csv`` are replaced, nothing else is touched).
        n_ratings: exactly this many ratings (distinct user-title pairs).
        n_users: default: the source's ratings per user kept (:func:`default_users`).
        n_titles: default: :func:`default_titles`.
        seed: every draw; the same seed and sizes give the same bytes.
        source: ``processed`` | ``embedded`` (see :func:`load_source`) or a
            ``(model table, titles, description)`` tuple.
        chunk_ratings: about this many ratings are held in memory and written per file.
    """
    started = time.perf_counter()
    ours = _files_to_replace(Path(out_dir))  # before the fit: a refusal costs nothing
    model_df, titles, what = load_source(source) if isinstance(source, str) else source
    src = fit_source(model_df, seed=seed, description=what)
    n_titles = n_titles or default_titles(n_ratings, len(titles), src.n_ratings)
    n_users = n_users or default_users(n_ratings, src)
    seeds = np.random.SeedSequence(seed).spawn(5)  # titles, users, pilot, title taste, chunks
    rng_titles, rng_users, rng_pilot, item_rng = (np.random.default_rng(s) for s in seeds[:4])

    catalog = _grow_catalog(titles, n_titles, src, rng_titles)
    prefixes = platform_prefixes(catalog["platform"].unique())
    movie_ids = (catalog["platform"].map(prefixes) + catalog["show_id"]).to_numpy(dtype=object)
    users = _make_users(src, n_users, n_ratings, n_titles, rng_users)
    cdf = np.cumsum(catalog["weight"].to_numpy())
    k = src.item_factors.shape[1]
    jitter_sd = src.item_factors.std(axis=0) * 0.3
    grown = catalog["grown"].to_numpy()
    item_factors = src.item_factors[catalog["donor"]] + \
        grown[:, None] * item_rng.normal(0.0, 1.0, (n_titles, k)) * jitter_sd
    item_bias = src.item_bias[catalog["donor"]] + \
        grown * item_rng.normal(0.0, float(src.item_bias.std()) * 0.3, n_titles)

    def latent(u: np.ndarray, i: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (src.mu + users.bias[u] + item_bias[i] + np.einsum(
            "ij,ij->i", users.factors[u], item_factors[i]) + rng.normal(0.0, src.noise_sd, len(u)))

    # Cut points mapping the latent score to the real histogram, from a pilot draw.
    pilot_users = rng_pilot.integers(0, n_users, 200_000)
    pilot_items = np.minimum(np.searchsorted(cdf, rng_pilot.random(200_000) * cdf[-1],
                                             side="right"), n_titles - 1)
    pilot = latent(pilot_users, pilot_items, rng_pilot)
    cuts = {False: _thresholds(pilot[~users.half[pilot_users]], src.hist_whole),
            True: _thresholds(pilot[users.half[pilot_users]], src.hist_half)}

    out = Path(out_dir)
    (out / "ratings").mkdir(parents=True, exist_ok=True)
    for old in ours:
        old.unlink()
    files: dict[str, str] = {}
    for platform, part in catalog.groupby("platform", sort=True):
        path = out / f"{platform}{CATALOG_SUFFIX}"
        _write_csv(_catalog_csv(part), path)
        files[path.name] = _sha256(path)

    # Chunks of whole users of about chunk_ratings ratings, each with its own seed.
    bounds = np.searchsorted(np.cumsum(users.counts), np.arange(chunk_ratings, n_ratings,
                                                                chunk_ratings), side="left") + 1
    edges = np.unique(np.concatenate([[0], bounds, [n_users]]))
    chunk_seeds = seeds[4].spawn(len(edges) - 1)
    written = 0
    for c, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        rng = np.random.default_rng(chunk_seeds[c])
        local_u, items = _draw_items(users.counts[lo:hi], cdf, n_titles, rng)
        u = local_u + lo
        z = latent(u, items, rng)
        half = users.half[u]
        level = np.where(half, np.searchsorted(cuts[True], z), np.searchsorted(cuts[False], z))
        score = src.levels[level]
        ts = users.start[u] + (rng.random(len(u)) * (users.span[u] + 1)).astype("int64")
        order = np.lexsort((ts, u))
        frame = pd.DataFrame({"userId": u[order] + 1, "rating": score[order],
                              "timestamp": ts[order], "movieId": movie_ids[items[order]]},
                             columns=list(EXPECTED_COLUMNS))
        path = out / "ratings" / f"part-{c:05d}.csv"
        atomic_write(path, lambda tmp, f=frame: f.to_csv(tmp, index=False, lineterminator="\n",
                                                         float_format="%.1f"))
        files[f"ratings/{path.name}"] = _sha256(path)
        written += len(frame)
        if verbose:
            print(f"  {path.name}: {len(frame):,} ratings ({written:,}/{n_ratings:,})")

    fingerprint = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(files.items()))
                                 .encode()).hexdigest()[:16]
    manifest = {
        "synthetic": True,
        "generator": "recsys_utils.data.synthetic",
        "seed": seed, "n_ratings": written, "n_users": n_users, "n_titles": n_titles,
        "platforms": {p: int(n) for p, n in catalog["platform"].value_counts().sort_index().items()},
        "grown_titles": int(grown.sum()),
        "source": {"what": what, "ratings": src.n_ratings, "users": src.n_users,
                   "titles": len(titles), "noise_sd": round(src.noise_sd, 4),
                   "period": [pd.Timestamp(src.t_min, unit="s").isoformat(),
                              pd.Timestamp(src.t_max, unit="s").isoformat()],
                   "score_hist": dict(zip(map(str, src.levels), np.round(src.score_hist, 4)
                                          .tolist(), strict=True))},
        "files": files, "fingerprint": fingerprint,
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    atomic_write_text(out / LABEL, _label(manifest))
    return SyntheticResult(out, written, n_users, n_titles, files, fingerprint,
                           time.perf_counter() - started, manifest)


def _is_generated(path: Path, out: Path) -> bool:
    """A file this generator writes in ``out``: a catalog, a ratings part, the manifest,
    the label, or the temporary file of one of them."""
    rel = path.relative_to(out)
    if rel.name.startswith(".") and rel.name.endswith(".tmp"):
        return True  # an atomic write's leftover from a killed run
    return (rel.name in (MANIFEST, LABEL) and len(rel.parts) == 1) or (
        len(rel.parts) == 1 and rel.name.endswith(CATALOG_SUFFIX)) or (
        rel.parts[0] == "ratings" and len(rel.parts) == 2
        and re.fullmatch(r"part-\d{5}\.csv", rel.name) is not None)


def _files_to_replace(out: Path) -> list[Path]:
    """The previous generation's catalogs and parts in ``out``, to replace; ``DataError``
    when ``out`` holds anything else, or was not written by the generator (no manifest):
    a user's real catalogs are never deleted."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a new or empty folder")
    found = sorted(p for p in out.rglob("*") if not p.is_dir()) if out.exists() else []
    if not found:
        return []
    # without a manifest, not even a file named like ours was written by the generator
    foreign = ([p for p in found if not _is_generated(p, out)] if (out / MANIFEST).is_file()
               else found)
    if foreign:
        named = ", ".join(str(p.relative_to(out)) for p in foreign[:3])
        raise DataError(f"--out {out} holds files recsys-generate did not write ({named}"
                        f"{', ...' if len(foreign) > 3 else ''}); give a new or empty folder "
                        "(a folder it generated is replaced)")
    return [p for p in found if p.name not in (MANIFEST, LABEL)]


def _label(manifest: dict[str, Any]) -> str:
    s = manifest["source"]
    return (
        "# SYNTHETIC DATA\n\n"
        f"Generated by `recsys-generate` (seed {manifest['seed']}): {manifest['n_ratings']:,} "
        f"ratings by {manifest['n_users']:,} users on {manifest['n_titles']:,} titles "
        f"({manifest['grown_titles']:,} of them invented), fitted to {s['what']} "
        f"({s['ratings']:,} real ratings).\n\n"
        "Not real people, not real opinions: users are noisy copies of real users, scores "
        "come from a low-rank model fitted to the real ratings plus noise. Use it to measure "
        "cost and scaling; any metric computed on it describes the generator, not an "
        "audience. Parameters, statistics and file hashes: `synthetic.json`.\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``recsys-generate``: write a synthetic rating set in the raw streaming layout."""
    parser = argparse.ArgumentParser(prog="recsys-generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", default="1M", help="ratings to generate (e.g. 100k, 1M)")
    parser.add_argument("--users", default=None,
                        help="users (default: the source's ratings per user kept)")
    parser.add_argument("--titles", default=None,
                        help=f"titles (default: source titles x ratings ratio^"
                             f"{TITLE_GROWTH_EXPONENT})")
    parser.add_argument("--seed", type=bounded(int, 0), default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, required=True, help="output folder (the raw layout)")
    parser.add_argument("--source", choices=["processed", "embedded"], default="processed",
                        help="the real data to fit: the processed tables (default) or the "
                             "embedded MovieLens sample")
    parser.add_argument("--chunk-ratings", default="500k", help="ratings per written file")
    args = parser.parse_args(argv)

    def body() -> int:
        got = generate(args.out, parse_count(args.ratings),
                       parse_count(args.users) if args.users else None,
                       parse_count(args.titles) if args.titles else None, seed=args.seed,
                       source=args.source, chunk_ratings=parse_count(args.chunk_ratings),
                       verbose=True)
        print(f"SYNTHETIC: {got.n_ratings:,} ratings, {got.n_users:,} users, "
              f"{got.n_titles:,} titles in {got.out_dir} ({got.seconds:.1f} s, "
              f"fingerprint {got.fingerprint}); clean it with "
              f"`recsys-clean --raw-dir {got.out_dir}`")
        return 0

    return run_command(body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
