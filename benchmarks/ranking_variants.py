"""Ranking variants tried against the registered configuration (issue 10's record).

The headline target asks NDCG@10 >= 2.5x popularity on the per-user time-aware split.
This script re-runs, in one go, the variants tried beyond the rivals ``03_modeling``
tunes, so the negative result can be checked and extended rather than taken on trust:

* ``slit``: a sequential linear model in closed form (SLIT-style, Choi et al. 2021):
  a user's recent ratings (decayed by position) -> the ratings that follow, blended into
  the registered ranker's z-scores;
* ``liked``: EASE trained to reconstruct the *liked* titles (score >= 4) from the
  score-weighted rows (a zero-diagonal closed form);
* ``edlae``: EASE with an emphasised-dropout penalty (Steck 2020) on its diagonal;
* ``userknn``: user-kNN (cosine over the weighted rows), alone and blended;
* ``content``: content-based user profiles (genres, release period, age rating,
  duration; like user-kNN, it also scores titles with too few ratings for EASE), alone
  and blended;
* ``session``: only the user's current session (a gap of more than an hour or a day
  starts a new one) as the ranker's input, older sessions down-weighted;
* ``rerank``: a logistic re-ranker over the ranker's top 200 (ranker scores with and
  without recency, the sequential score, popularity, Bayesian average, popularity in the
  month / year before the user's last training rating, title age, user activity: the
  served re-ranker's features, computed by its code; the figures below up to 2026-12-07
  were measured with 30 / 365-day windows instead of whole months), fitted on the validation labels -- and, as a reference for these features (not a
  method), on the test labels themselves. It is not a strict bound: the fit minimises the
  logistic loss, not NDCG, and on the linked catalogs the validation fit scores higher.
  On the default data the validation fit gains +0.0078 (s.e. 0.0035) on test, 2.26x
  popularity, and on the linked catalogs +0.0149 (s.e. 0.0034); dropping any one feature
  costs at most 0.0045 (the rank position), so the gain is spread over the features and
  no single one could be a parameter of the ranker instead. With the rivals' scores added
  as features (binary EASE, item-kNN, ALS, RP3beta with their validation-chosen parameters,
  user-kNN, the content profile): on the default data +0.0119 (s.e. 0.0041) on test, 2.32x
  popularity, the most any variant here reached (fitted on the test labels, 2.30x); on the
  linked catalogs +0.0123 (s.e. 0.0047), less than without them (+0.0149) although its
  validation gain is larger (+0.0184 against +0.0102): more features, more to overfit.
  The gain needs what the ranker does not compute: with only what the registered ranker
  already holds at serving time (``SERVED_RANKER_FEATURES``, the row "the served ranker's
  features only"), test +0.0002 (s.e. 0.0011) on the default data and +0.0001 on the
  linked catalogs; with the sequential score added back, +0.0052 / +0.0055; with the
  recent popularity and title age instead, +0.0017 / +0.0061. A listwise fit of the same
  linear model (softmax over each user's candidates, l2 1e-4 to 0.1) instead of the
  pointwise one, on the default data: test +0.0065 to +0.0092, and fitted on the test
  labels at most 2.29x: a linear re-ranker of these features tops out near 2.3x. Fitted on
  the window before validation (so its validation score is out of sample, as a rule
  choosing whether to re-rank would need): validation +0.0164 / +0.0076 (default /
  linked), test +0.0066 / +0.0133, against +0.0078 / +0.0149 with the weights fitted on
  validation.

Also tried, not kept here (the issue's note has the figures): the re-ranker fitted on
more labels, the validation window stacked with one to two earlier windows carved the same
way (each user's latest 20% of what remains): test +0.0065 to +0.0080 without the rivals'
scores, +0.0108 / +0.0109 with them, no better than the one window; EASE with time-period
pseudo-titles (the periods a user rated in, as extra columns; at best test 0.1457,
validation below the registered one); a LightGBM lambdarank re-ranker on the same
features (test 0.1435-0.1490: it overfits the validation labels); ``min_item_ratings``
1-3 and finer ``recency`` / ``l2`` grids (within +-0.001 of the registered one); a
"future-target" linear model regressing each user's later training ratings on the earlier
ones (cut at 80%, or at 50/65/80/90%; l2 100-2000; alone at best test 0.0846, blended
never above the registered one); SASRec (Kang & McAuley 2018: 2 causal self-attention
blocks, 64 dims, full-softmax next-title loss, the last 200 ratings), which needs PyTorch
(not a dependency) and lives in ``sasrec_trial.py``: seed 0, epochs 35 / 70, validation
alone 0.0936 / 0.0945, blended into the registered z-scores (weights 0.25-1) 0.1419-0.1435;
test alone 0.0796 / 0.0863, blended 0.1438-0.1485 (at most 2.23x popularity). Seed 1:
validation blended 0.1419-0.1458, test 0.1454-0.1480; a first run with a different
initialisation: validation up to 0.1468, test up to 0.1458. The seed moves the blend by
about +-0.004. The blend chosen on validation scores on test 0.1446 at seed 0 (epoch 35,
weight 0.25: 2.17x) and 0.1471 at seed 1 (epoch 70, weight 1: 2.21x). EASE trained on
sessions as rows (a gap of an hour or a week starts a new one; l2 50 / 200; scored from the
current session, older ones x 0 / 0.3): alone at best test 0.1307, blended at weight 0.3 /
1 test 0.1345-0.1455, validation at best 0.1436, whose test is 0.1419. EASE's item-item
statistics weighted by absolute time (each rating, or each user by their latest rating,
as exp(-age / 2, 5 or 10 years); l2 30 / 100): the stronger the decay the worse, at best
test 0.1409 blended. Trending popularity (each title's ratings in the 30, 90, 365 or 730
days before the user's last training rating, z-scored): alone at best test 0.0742, blended
into the registered z-scores (weights 0.1-0.7) never above it on either split. The tuned
rivals (item-kNN, implicit ALS, binary EASE) blended into its z-scores (weights 0.2-1):
validation never above it, test at most 0.1436. The rating model's predicted ratings
(baseline, or baseline + SVD), z-scored, added (weights 0.1-0.5) or re-ranking the ranker's
top 30 / 100: never above it (alone 0.014-0.036: a predicted score says little about
what a user rates next). Titles not yet in the catalog at the user's time (first rated in
training after the user's last training rating, plus 0-1,095 days' slack) masked for both the
ranker and popularity: the ranker moves by -0.0007 to +0.0020, popularity gains more (0.0666
-> 0.0671-0.0753), so the ratio falls (1.90-2.13x). The popularity weight chosen per activity quartile (users by
number of training ratings; weights -0.3 to 1) on validation: test 0.1402, below the one
global weight (each quartile's curve is flat within +-0.002). GF-CF (Shen et al. 2021: the
normalised item-item matrix plus an ideal low-pass filter of its top 64 / 256 singular
vectors, binary or score-weighted rows, alpha 0.3 / 1): alone 0.102-0.121, blended at 0.3
0.134-0.144 on test, validation never above the registered one. Position popularity
(each title's training ratings by other users at the positions in their sequences just
after the user's count -- what users rate at that stage of their history; windows of
20-200 positions, 0-50 back): alone 0.043-0.053 on test, below plain popularity; blended
(weights 0.1-0.6) never above the registered one on either split. EASE's item-item
statistics from activity-normalised rows (each user's row x n_u^-0.25 or ^-0.5, so heavy
raters weigh less; l2 x 0.5-2, rescaled to the gram's diagonal): worse on both splits
(validation -0.002 to -0.011, test -0.002 to -0.015).
Wider candidate pools for the served re-ranker (2026-12-07; its features and fit, weights
fitted on the validation labels; served: validation 0.1603, test 0.1502, 41.5% of the
relevant test titles among its candidates): the ranker's top 200 plus the sequential
model's top 50 / 100 / 200 (reach 43.0 / 44.8 / 48.5%): test 0.1516 / 0.1517 / 0.1514,
validation 0.1597 / 0.1591 / 0.1584; the ranker's top 400 (reach 52.8%): test 0.1493; top
200 plus the sequential model's 100 and popularity's 50: 0.1508. More reach, no gain: the
titles added are those the features cannot tell apart. Eight more products of features
(Bayesian average x the user's mean score and x activity, sequential x popularity and x
ranking score, log position x activity, title age and last month's ratings x activity),
one at a time or all together: test 0.1496-0.1510, validation 0.1589-0.1612.
The candidate against the user's *latest* titles (2026-12-08; users who browse by genre or
period rate runs of alike titles): the cosine between the candidate's genres and those of the
user's last k training ratings, and the log distance between its release year and their
median one, added to the served features (k = 1, 3, 10, 50 or pairs of them), weights fitted
on the validation labels: on the default data test 0.1502-0.1533 (at best 2.30x; validation
0.1603-0.1635), fitted on the test labels at most 2.35x; on the linked catalogs test
0.1772-0.1802 against the served 0.1794 (no gain). The ranker's z-scores from only the last 3
and 10 ratings as two more features: -0.0003 / -0.0013. Too small, and not on both data sets,
to be worth a feature the served re-ranker must compute per request.
The last line printed says how much of the test is within reach of any re-ranker.

Since 2026-12-07 the re-ranker is part of the product (``recsys_utils.ranking.rerank``, adopted
by ``03_modeling`` when weights fitted one window earlier gain on validation): the rows
below re-rank the registered ranker *without* its re-ranker, and the row "registered, with
its re-ranker" is the served lists (its weights were fitted on the validation labels, so
its validation score is in sample; its test score is not).

Every variant is scored on ``03_modeling``'s validation split and on ``04_evaluation``'s
per-user test split (``evaluation.validation_split`` / ``last_n_split``, relevance and
NDCG from ``ranking.evaluation`` / ``ranking.metrics``); Δ is the paired gain over the
registered configuration with its standard error. Asserts nothing; prints the table.

    .venv/bin/python benchmarks/ranking_variants.py            # ~1.5 min on the default data
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from _common import served_ranking

from recsys_utils.ranking.catalog import catalog_rows, top_positions, zscore_rows
from recsys_utils.ranking.evaluation import (
    Split,
    last_n_split,
    rating_params_for,
    relevant_items,
    validation_split,
)
from recsys_utils.ranking.metrics import per_user_ndcg
from recsys_utils.ranking.recommender import Recommender
from recsys_utils.ranking.rerank import (
    DEFAULT_STRUCTURE,
    FEATURES,
    candidate_labels,
    fit_weights,
    user_candidates,
)

K = 10
CANDIDATES = DEFAULT_STRUCTURE["candidates"]  # the re-ranker's candidates per user


class Scored:
    """One split: the registered configuration fitted on its training part, the users'
    sequences, and NDCG@10 of any score matrix (users x catalog) over its candidates."""

    def __init__(self, split: Split, titles: pd.DataFrame, ranking: dict[str, Any]) -> None:
        self.split = split
        self.titles = catalog_rows(titles)[1]  # one row per title (linked data lists several)
        self.rec = rec = Recommender(rating_params_for("baseline"), ranking).fit(split.train,
                                                                                 titles)
        self.base = zscore_rows(rec._ease_scores(rec._X))
        self.relevant = relevant_items(split.test)
        df = split.train.sort_values(["user", "timestamp", "item"], kind="mergesort")
        df = df[rec.catalog.index.get_indexer(df["item"].astype(str)) >= 0]  # catalog titles
        self.u = np.searchsorted(rec.user_ids, df["user"].to_numpy())
        self.i = rec.catalog.index.get_indexer(df["item"].astype(str))
        self.t = df["timestamp"].astype("datetime64[s]").astype("int64").to_numpy()
        self.w = (df["score"].to_numpy(dtype=np.float64) - 2.5) / 2.5
        last = pd.Series(np.arange(len(self.u))).groupby(self.u).transform("max").to_numpy()
        self.from_end = last - np.arange(len(self.u))  # 0 = the user's latest rating
        self.blocked = np.where(rec.candidate_mask(), 0.0, -np.inf)
        self.baseline = self.ndcg(self.base)

    def top(self, scores: np.ndarray, n: int) -> np.ndarray:
        s = scores + self.blocked
        rated = self.rec._rated.tocoo()
        s[rated.row, rated.col] = -np.inf
        return top_positions(s, n)[0]

    def ndcg_of_top(self, top: np.ndarray) -> np.ndarray:
        ids = self.rec.item_ids
        return self.ndcg_of_lists({int(u): ids[row].tolist()
                                   for u, row in zip(self.rec.user_ids, top, strict=True)})

    def ndcg_of_lists(self, lists: dict[int, list[str]]) -> np.ndarray:
        per = per_user_ndcg(lists, self.relevant, K)
        return np.array([per[u] for u in sorted(per)])

    def ndcg(self, scores: np.ndarray) -> np.ndarray:
        return self.ndcg_of_top(self.top(scores, K))

    def rows(self, weights: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((weights, (self.u, self.i)), shape=self.rec._weights.shape)


def _on_ease_cols(s: Scored, scores: np.ndarray) -> np.ndarray:
    """Scores over the ranker's titles, the rest below every scored title."""
    cols = s.rec._ease_cols
    out = np.empty((scores.shape[0], len(s.rec.item_ids)))
    out[:] = scores.min(axis=1, keepdims=True)
    out[:, cols] = scores
    return out


def slit(s: Scored, window: int = 50, decay: float = 10.0, l2: float = 100.0) -> np.ndarray:
    """Sequential closed form ``B = (S'S + l2 I)^-1 S'T``: ``S`` = each position's past
    ratings (decayed), ``T`` = the ratings after it; scored from each user's last ones."""
    cols = s.rec._ease_cols
    where = np.full(len(s.rec.item_ids), -1)
    where[cols] = np.arange(cols.size)
    ci, n, pos = where[s.i], len(s.u), np.arange(len(s.u))

    def pairs(lags: range, sign: int) -> sp.csr_matrix:
        rows, cc, vals = [], [], []
        for lag in lags:
            a = pos[lag:] if sign < 0 else pos[:n - lag]
            b = a + sign * lag
            ok = (s.u[a] == s.u[b]) & (ci[b] >= 0)
            rows.append(a[ok])
            cc.append(ci[b[ok]])
            vals.append(s.w[b[ok]] * np.exp(-(lag - (sign > 0)) / decay))
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cc))),
                             shape=(n, cols.size))

    source, target = pairs(range(window), -1), pairs(range(1, window + 1), +1)
    gram = (source.T @ source).toarray()
    gram[np.diag_indices_from(gram)] += l2
    b = np.linalg.solve(gram, (source.T @ target).toarray())
    last = np.r_[np.flatnonzero(np.diff(s.u)), n - 1]  # each user's last training rating
    return zscore_rows(_on_ease_cols(s, np.asarray(source[last] @ b)))


def ease_variant(s: Scored, l2: float, target: str = "self", dropout: float = 0.0
                 ) -> np.ndarray:
    """EASE on the registered rows, reconstructing ``target`` ("self" or "liked")."""
    cols = s.rec._ease_cols
    x = s.rec._weights.tocsr()[:, cols].astype(np.float64)
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += l2 + dropout / (1 - dropout) * np.diag(gram)
    p = np.linalg.inv(gram)
    if target == "liked":
        y = x.copy()
        y.data = (y.data >= 0.6 - 1e-9).astype(np.float64)  # score >= 4 on the (s-2.5)/2.5 scale
        c = p @ (x.T @ y).toarray()
        b = c - p * (np.diag(c) / np.diag(p))
    else:
        b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return zscore_rows(_on_ease_cols(s, np.asarray(s.rec._X[:, cols] @ b)))


def user_knn(s: Scored, k: int, shrink: float = 10.0) -> np.ndarray:
    x = s.rec._weights.tocsr().astype(np.float64)
    q = s.rec._X.tocsr().astype(np.float64)
    norm_x = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norm_q = np.sqrt(np.asarray(q.multiply(q).sum(axis=1)).ravel())
    sim = (q @ x.T).toarray() / (np.outer(norm_q, norm_x) + shrink)
    np.fill_diagonal(sim, 0.0)
    sim = np.clip(sim, 0.0, None)
    kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1:k]
    return zscore_rows(np.where(sim >= kth, sim, 0.0) @ x.toarray())


def session_input(s: Scored, gap_hours: float, older: float) -> np.ndarray:
    """The ranker scored from the current session (older sessions x ``older``) with the
    registered recency decay."""
    new = np.r_[True, (np.diff(s.t) > gap_hours * 3600) | (np.diff(s.u) != 0)]
    session = np.cumsum(new)
    current = session == pd.Series(session).groupby(s.u).transform("max").to_numpy()
    recency = float(s.rec.ranking_params["recency"])
    count = np.bincount(s.u)[s.u].astype(np.float64)
    decay = np.exp(-s.from_end / np.maximum(recency * count, 1.0)) if recency > 0 else 1.0
    rows = s.rows(s.w * decay * np.where(current, 1.0, older)).astype(np.float32)
    return zscore_rows(s.rec._ranker.scores(rows))


def content_profile(s: Scored, half_life: float | None) -> np.ndarray:
    """Content-based scores: each title as idf-weighted genres, release period (5 years),
    age rating and duration band (unit length); each user as the sum of the titles they
    rated times their centred score (halved every ``half_life`` ratings back, or not
    decayed); the score is the cosine between the two. Reaches titles EASE never ranks."""
    t = s.titles.set_index("item_id").reindex(s.rec.item_ids)
    year = pd.to_numeric(t["release_year"], errors="coerce") // 5
    minutes = pd.to_numeric(t["duration_int"], errors="coerce")
    parts = [(t["genres"].fillna("").str.get_dummies(sep=", "), 1.0),
             (pd.get_dummies(year.astype("Int64").astype(str)), 1.0),
             (pd.get_dummies(t["rating"].fillna("none")), 0.5),
             (pd.get_dummies(pd.cut(minutes, [0, 80, 95, 110, 130, np.inf]).astype(str)), 0.5)]
    f = np.hstack([part.to_numpy(np.float64) * weight for part, weight in parts])
    f *= np.log((len(f) + 1) / ((f > 0).sum(axis=0) + 1))
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    decay = 0.5 ** (s.from_end / half_life) if half_life else 1.0
    profile = s.rows(s.w * decay) @ f
    profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)
    return zscore_rows(profile @ f.T)


# --------------------------------------------------------------------------- re-ranker


#: Those the served ranker already computes for a request (no second model, no timestamps).
SERVED_RANKER_FEATURES = ("ranking score", "log position", "ranker without recency",
                          "popularity", "bayesian average", "user activity",
                          "ranking x activity", "popularity x activity", "ranking x popularity")


def rerank_features(s: Scored) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(top, features, labels, ok)`` of every user's candidates, computed by the served
    re-ranker's code (``rerank.user_candidates``; columns ``rerank.FEATURES``); ``ok``:
    a real candidate (a user with fewer unrated titles has fewer)."""
    top, features, ok = user_candidates(s.rec.fit_rerank_context(s.split.train))
    return top, features, candidate_labels(s.rec, top, s.relevant).ravel(), ok.ravel()


#: The rivals 03 tunes, with the parameters their validation chose on MovieLens (03's
#: record), refitted on each split for the re-ranker's extra features.
RIVALS: dict[str, dict[str, Any]] = {
    "ease (binary)": {"ranker": "ease", "weighting": "binary", "l2": 400.0},
    "itemknn": {"ranker": "itemknn", "neighbours": 100},
    "als": {"ranker": "als", "als_reg": 1.0},
    "rp3beta (binary)": {"ranker": "rp3beta", "weighting": "binary", "alpha": 0.8, "beta": 0.3},
}


def rival_features(s: Scored, titles: pd.DataFrame, ranking: dict[str, Any],
                   top: np.ndarray) -> np.ndarray:
    """The rivals' z-scores, user-kNN's and the content profile's on the same candidates."""
    users, items = np.repeat(np.arange(top.shape[0]), top.shape[1]), top.ravel()
    columns = []
    for change in RIVALS.values():
        rec = Recommender(rating_params_for("baseline"), {**ranking, **change}).fit(
            s.split.train, titles)
        columns.append(zscore_rows(rec._ease_scores(rec._X))[users, items])
    columns += [user_knn(s, 30)[users, items], content_profile(s, 50.0)[users, items]]
    return np.column_stack(columns)


def fit_logistic(x: np.ndarray, y: np.ndarray, ok: np.ndarray
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """The served re-ranker's logistic fit (``rerank.fit_weights``) on any feature columns
    of the real candidates."""
    w = fit_weights(x[ok], y[ok], DEFAULT_STRUCTURE)
    return lambda m: ((m - w["mean"]) / w["scale"]) @ w["weights"] + w["bias"]


def reranked(s: Scored, top: np.ndarray, x: np.ndarray, ok: np.ndarray,
             model: Callable) -> np.ndarray:
    scores = np.where(ok, model(x), -np.inf).reshape(top.shape)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return s.ndcg_of_top(np.take_along_axis(top, order, axis=1))


# --------------------------------------------------------------------------- the table


def variants(s: Scored) -> Iterator[tuple[str, np.ndarray]]:
    for window, decay, l2 in ((20, 5.0, 100.0), (50, 10.0, 100.0), (50, 20.0, 300.0)):
        seq = slit(s, window, decay, l2)
        for weight in (0.3, 1.0):
            yield f"slit w{window} d{decay:g} l2 {l2:g}, blend {weight}", s.base + weight * seq
    for l2 in (50.0, 100.0, 200.0):
        yield f"liked-target EASE l2 {l2:g}", ease_variant(s, l2, "liked")
    for dropout in (0.1, 0.25, 0.5):
        yield f"EDLAE-style dropout {dropout}, l2 50", ease_variant(s, 50.0, dropout=dropout)
    for k in (30, 100, 300):
        knn = user_knn(s, k)
        yield f"user-kNN k {k}", knn
        yield f"ranker + 0.2 user-kNN k {k}", s.base + 0.2 * knn
    for half_life in (None, 50.0):
        content = content_profile(s, half_life)
        label = f"content, half-life {half_life:g} ratings" if half_life else "content"
        yield label, content
        for weight in (0.25, 0.5):
            yield f"ranker + {weight} {label}", s.base + weight * content
    for gap in (1.0, 24.0):
        for older in (0.0, 0.3, 0.6):
            yield f"session input, gap {gap:g} h, older x {older}", session_input(s, gap, older)


def _row(name: str, split: str, per: np.ndarray, base: np.ndarray) -> dict[str, Any]:
    gain = per - base
    return {"variant": name, "split": split, "ndcg": per.mean(),
            "gain": gain.mean(), "gain_se": gain.std(ddof=1) / np.sqrt(gain.size)}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    model_df, titles, source, served, where = served_ranking()
    print(f"data: {source}; ranking: {where}; re-ranker: "
          f"{'registered' if served['rerank'] else 'none registered'}")
    ranking = {**served, "rerank": None}  # the variants change the ranker, not its re-ranker
    splits = {"validation": Scored(validation_split(model_df), titles, ranking),
              "test": Scored(last_n_split(model_df, fraction=0.2), titles, ranking)}
    rows = []
    for name, s in splits.items():
        pop = s.ndcg(np.broadcast_to(np.log1p(s.rec.n_ratings.astype(np.float64)),
                                     s.base.shape).copy())
        rows += [_row("registered", name, s.baseline, s.baseline),
                 _row("popularity", name, pop, s.baseline)]
        if served["rerank"]:  # what is served: its weights refitted on nothing, as 04 does
            with_it = Recommender(rating_params_for("baseline"), served).fit(s.split.train,
                                                                            titles)
            rows.append(_row("registered, with its re-ranker (served weights: validation "
                             "in sample)", name, s.ndcg_of_lists(with_it.recommend_all(K)),
                             s.baseline))
        rows += [_row(label, name, s.ndcg(scores), s.baseline) for label, scores in variants(s)]
    (top_v, x_v, y_v, ok_v), (top_t, x_t, y_t, ok_t) = (rerank_features(s)
                                                        for s in splits.values())
    with_rivals = [np.column_stack([x, rival_features(s, titles, ranking, top)])
                   for x, top, s in ((x_v, top_v, splits["validation"]),
                                     (x_t, top_t, splits["test"]))]
    own = [FEATURES.index(name) for name in SERVED_RANKER_FEATURES]
    for label, (xv, xt) in {"re-ranker": (x_v, x_t),
                            "re-ranker, the served ranker's features only": (x_v[:, own],
                                                                             x_t[:, own]),
                            "re-ranker + rivals' scores": tuple(with_rivals)}.items():
        on_validation = fit_logistic(xv, y_v, ok_v)
        rows += [_row(f"{label} (fitted on validation labels)", "validation",
                      reranked(splits["validation"], top_v, xv, ok_v, on_validation),
                      splits["validation"].baseline),
                 _row(f"{label} (fitted on validation labels)", "test",
                      reranked(splits["test"], top_t, xt, ok_t, on_validation),
                      splits["test"].baseline),
                 _row(f"{label} fitted on the test labels (reference)", "test",
                      reranked(splits["test"], top_t, xt, ok_t, fit_logistic(xt, y_t, ok_t)),
                      splits["test"].baseline)]
    # Fitted on the window before validation (each user's latest 20% of what remains), the
    # re-ranker's validation score is out of sample: what a choice rule could go by.
    earlier = Scored(last_n_split(splits["validation"].split.train, fraction=0.2), titles,
                     ranking)
    _, x_e, y_e, ok_e = rerank_features(earlier)
    on_earlier = fit_logistic(x_e, y_e, ok_e)
    rows += [_row("re-ranker (fitted on the window before validation)", name,
                  reranked(splits[name], top, x, ok, on_earlier), splits[name].baseline)
             for name, top, x, ok in (("validation", top_v, x_v, ok_v),
                                      ("test", top_t, x_t, ok_t))]
    table = pd.DataFrame(rows).pivot_table(index="variant", columns="split",
                                           values=["ndcg", "gain", "gain_se"], sort=False)
    pop = table.loc["popularity", ("ndcg", "test")]
    table[("x_pop", "test")] = table[("ndcg", "test")] / pop
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(table.round(4).to_string())
    print(f"target: test NDCG@{K} >= 2.5 x popularity = {2.5 * pop:.4f}")
    print(reach(splits["test"], top_t))


def reach(s: Scored, top: np.ndarray) -> str:
    """How many relevant test titles the ranker can reach at all, and within its top
    ``CANDIDATES`` (what any re-ranker of those candidates works with); and what the
    unreachable ones are: how old when the user last rated in training, and how many test
    users find each relevant (long-tail titles relevant to one user each cannot be learned
    from others' ratings; new releases shared by many users could)."""
    ids, in_ranker = s.rec.item_ids, np.zeros(len(s.rec.item_ids), dtype=bool)
    in_ranker[s.rec._ease_cols] = True
    position = {item: j for j, item in enumerate(ids)}
    released = pd.to_numeric(s.titles.set_index("item_id")["release_year"], errors="coerce"
                             ).reindex(ids).to_numpy()
    last_year = pd.to_datetime(pd.Series(s.t).groupby(s.u).max(), unit="s").dt.year.reindex(
        range(len(s.rec.user_ids))).to_numpy()
    total = found = 0
    outside: list[tuple[int, float]] = []  # (title position, years before the user's time)
    for row, user in enumerate(s.rec.user_ids):
        relevant = s.relevant.get(int(user), set())
        total += len(relevant)
        outside += [(position[item], last_year[row] - released[position[item]])
                    for item in relevant if item in position and not in_ranker[position[item]]]
        found += len(relevant & set(ids[top[row]].tolist()))
    users_per_title = pd.Series([j for j, _ in outside]).value_counts()
    return (f"relevant test titles: {total:,}; outside the ranker's titles (fewer than "
            f"min_item_ratings training ratings): {len(outside) / total:.1%} (released a "
            f"median {np.nanmedian([a for _, a in outside]):.0f} years before the user's last "
            f"training rating; {users_per_title.mean():.2f} test users per title, "
            f"{(users_per_title == 1).mean():.0%} relevant to one user only); in its top "
            f"{CANDIDATES}: {found / total:.1%}")


if __name__ == "__main__":
    main()
