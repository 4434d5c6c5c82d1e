"""Precomputed top-N lists per user (batch, written with the model), filtered per request.

Why: ranking a known user scores the whole catalog (EASE's ``x_u B`` plus a top-N over
every title), a few milliseconds of CPU per request, and with many users most requests
miss the per-user cache. The ranking of a user's unrated titles does not depend on the
request's filters: a filtered list is the unfiltered order restricted to the titles that
pass the filter. So a batch job stores, per user, the first ``depth`` titles of that
order with their ranking scores and displayed (predicted) ratings; a request keeps those
that pass its filters and takes the first ``n`` — the same list, in the same order, with
the same scores, as ``Recommender.recommend``, for the cost of a mask lookup. (Measured
on 1 M synthetic ratings: a known user's ``recommend(n=100)`` costs ~5.5 ms of CPU, of
which ~3 ms predict the displayed ratings and ~0.7 ms rank the catalog.)
When fewer than ``n`` stored titles pass a narrow filter and the stored list was cut at
``depth``, the request falls back to ``Recommender.recommend`` (still exact). Unknown
users get the cold-start list as before.

Memory: users x depth x 20 bytes (100 k users x 100: 200 MB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recsys_utils.ranking.recommender import Recommendations, Recommender

__all__ = ["DEFAULT_DEPTH", "PrecomputedLists", "attach_precomputed", "precompute_lists",
           "recommend_precomputed", "stored_top"]

#: Titles stored per user.
DEFAULT_DEPTH = 100


@dataclass(frozen=True)
class PrecomputedLists:
    """Per user (``users`` sorted): catalog positions of the best unrated titles, best first
    (``-1`` pads a user with fewer candidates), their ranking scores and predicted ratings."""

    users: np.ndarray
    positions: np.ndarray   # (n_users, depth) int32
    scores: np.ndarray      # (n_users, depth) float64, the ranking score
    ratings: np.ndarray     # (n_users, depth) float64, the displayed predicted rating
    depth: int
    #: the ranking parameters the lists were ranked with (``with_ranking`` makes them stale)
    ranking_params: dict = field(default_factory=dict)

    def fits(self, rec: Recommender) -> bool:
        """Whether the lists were ranked with ``rec``'s current ranking parameters."""
        return self.ranking_params == dict(rec.ranking_params)

    def row(self, user: int) -> int | None:
        k = int(np.searchsorted(self.users, user))
        return k if k < len(self.users) and int(self.users[k]) == int(user) else None

    @property
    def nbytes(self) -> int:
        return int(self.users.nbytes + self.positions.nbytes + self.scores.nbytes
                   + self.ratings.nbytes)


def precompute_lists(rec: Recommender, depth: int = DEFAULT_DEPTH,
                     users: Sequence[int] | None = None) -> PrecomputedLists:
    """The first ``depth`` titles of every known user's unfiltered ranking.

    Each user is ranked by the very code a request uses (``Recommender``'s per-user
    path), so the stored order and scores are those ``recommend`` computes; the displayed
    ratings are predicted per title, like ``recommend`` does for its ``n`` titles.
    """
    everything = rec.candidate_mask(None, None)
    ids = np.sort(np.asarray(rec.user_ids if users is None else
                             [u for u in users if rec.known_user(u)], dtype=np.int64))
    positions = np.full((len(ids), depth), -1, dtype=np.int32)
    scores = np.full((len(ids), depth), -np.inf, dtype=np.float64)
    ratings = np.full((len(ids), depth), np.nan, dtype=np.float64)
    for r, user in enumerate(ids.tolist()):
        top, ranking = rec._rank_known(int(user), depth, everything)
        positions[r, :len(top)] = top
        scores[r, :len(top)] = ranking[top]
        ratings[r, :len(top)] = rec.rating_model.predict_items(int(user), rec.item_ids[top],
                                                               clip=True)
    return PrecomputedLists(ids, positions, scores, ratings, int(depth),
                            dict(rec.ranking_params))


def attach_precomputed(rec: Recommender, depth: int = DEFAULT_DEPTH) -> PrecomputedLists:
    """Compute the lists and keep them on the model (``rec.precomputed_``), so they are
    pickled, registered and loaded with it."""
    lists = precompute_lists(rec, depth)
    rec.precomputed_ = lists
    return lists


def stored_top(rec: Recommender, lists: PrecomputedLists, user: int, n: int,
               valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Catalog positions, ranking scores and displayed ratings of ``user``'s first ``n``
    stored titles that ``valid`` allows; ``None`` when the lists cannot answer exactly
    (unknown user, one with too few ratings for a personal list, stale lists, or a filter
    that leaves fewer than ``n`` of a list that was cut at ``depth``): then
    ``rec.recommend`` must rank in full."""
    row = (lists.row(user) if rec.known_user(user) and rec.personal_user(user)
           and lists.fits(rec) else None)
    if row is None:
        return None
    stored = lists.positions[row]
    filled = stored >= 0
    keep = filled & valid[np.where(filled, stored, 0)]
    chosen = stored[keep][:n].astype(np.int64)
    if len(chosen) < n and bool(filled.all()):
        return None
    return chosen, lists.scores[row][keep][:n], lists.ratings[row][keep][:n]


def recommend_precomputed(rec: Recommender, lists: PrecomputedLists, user: int, n: int = 10,
                          platforms: Sequence[str] | None = None,
                          kind: str | None = None) -> Recommendations:
    """``rec.recommend(user, n, platforms, kind)`` answered from ``lists`` (same result)."""
    valid = rec.candidate_mask(platforms, kind)  # validates the filters like recommend
    got = stored_top(rec, lists, user, n, valid)
    if got is None:
        return rec.recommend(user, n, platforms, kind)
    chosen, ranking, pred = got
    return Recommendations(user=int(user), cold_start=False,
                           items=rec.catalog.frame(chosen, pred, ranking, platforms))
