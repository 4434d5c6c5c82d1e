"""The catalog every served model answers from, and how a list is picked from it.

One place for what the ``Recommender``, the Spark batch model
(``scale_out.batch.BatchRecommender``) and the Spark jobs (``scale_out.als``) must agree
on, so their answers cannot drift apart:

* the order of the titles (``item_id`` ascending; a title's first row by platform gives
  its ``type`` and ``title``), which every served array follows;
* the filters: a title is on a platform when one of its rows is; ``kind`` is one of
  ``schema.KINDS``; an unknown value is an ``UnknownFilterError`` listing the valid ones;
* the displayed rows (the first of a title's platforms, sorted, that the filter allows);
* the cold-start list, one of ``COLD_START_LISTS``: the best Bayesian averages within the
  filters (ties to the title with more ratings), or the most rated titles (ties to the
  better Bayesian average); then catalog order;
* picking the top ``n`` of a row of scores, ties broken by catalog position.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils.errors import UnknownFilterError, UnknownItemError
from recsys_utils.schema import KINDS

__all__ = ["COLD_START_LISTS", "Catalog", "CatalogView", "bayesian_average", "catalog_rows",
           "cold_start_order", "top_positions", "top_valid", "zscore_rows"]

#: The lists a user without a personal one can get (``ranking_params["cold_start_list"]``).
COLD_START_LISTS: tuple[str, ...] = ("bayes", "popularity")

def catalog_rows(titles: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The catalog in the order every served array follows: rows sorted by ``(item_id,
    platform)`` with text columns as ``str``, and each title's first row (one per ``item_id``)."""
    t = titles.astype({"item_id": str, "platform": str, "type": str, "title": str})
    t = t.sort_values(["item_id", "platform"], kind="mergesort")
    return t, t.drop_duplicates("item_id")


class Catalog:
    """The titles a model serves: ids, titles, types and platform availability, one entry
    per ``item_id`` in catalog order; built from any table with ``item_id``, ``platform``,
    ``type`` and ``title`` (the titles table, or the analytics table)."""

    def __init__(self, titles: pd.DataFrame) -> None:
        t, first = catalog_rows(titles[["item_id", "platform", "type", "title"]])
        platforms = sorted(t["platform"].unique().tolist())
        avail = np.zeros((len(first), len(platforms)), dtype=bool)
        ids = first["item_id"].to_numpy(dtype=object)
        avail[pd.Index(ids).get_indexer(t["item_id"]),
              pd.Index(platforms).get_indexer(t["platform"])] = True
        self._set(ids, first["title"].to_numpy(dtype=object),
                  first["type"].to_numpy(dtype=object), platforms, avail)

    @classmethod
    def from_arrays(cls, item_ids: np.ndarray, titles: np.ndarray, types: np.ndarray,
                    platforms: list[str], availability: np.ndarray) -> Catalog:
        """A catalog from its arrays (what models pickled before this class stored)."""
        catalog = cls.__new__(cls)
        catalog._set(item_ids, titles, types, platforms, availability)
        return catalog

    def _set(self, item_ids: np.ndarray, titles: np.ndarray, types: np.ndarray,
             platforms: list[str], availability: np.ndarray) -> None:
        self.item_ids, self.titles, self.types = item_ids, titles, types
        self.platforms, self.availability = list(platforms), availability
        self.index = pd.Index(item_ids)
        self._masks: dict[tuple, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.item_ids)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("index", "_masks")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._set(state["item_ids"], state["titles"], state["types"], state["platforms"],
                  state["availability"])

    def positions(self, item_ids: Iterable[Any]) -> np.ndarray:
        """Catalog positions of ``item_ids`` in one lookup; the first unknown one raises
        ``UnknownItemError``."""
        ids = [str(i) for i in item_ids]
        pos = self.index.get_indexer(ids).astype(np.int64)
        if (pos < 0).any():
            item_id = ids[int(np.argmax(pos < 0))]
            raise UnknownItemError(item_id, f"unknown item {item_id!r}: not in the catalog")
        return pos

    def mask(self, platforms: Sequence[str] | None = None, kind: str | None = None
             ) -> np.ndarray:
        """Boolean mask over the titles: on any of ``platforms`` and of ``kind`` (read-only,
        cached). An empty ``platforms`` means no platform filter; an unknown platform or
        kind raises ``UnknownFilterError`` listing the valid values."""
        plats = tuple(sorted(set(platforms))) if platforms else ()
        key = (plats, kind)
        cached = self._masks.get(key)
        if cached is not None:
            return cached
        for name in plats:
            if name not in self.platforms:
                raise UnknownFilterError("platform", name, self.platforms)
        if kind is not None and kind not in KINDS:
            raise UnknownFilterError("kind", kind, KINDS)
        mask = np.ones(len(self.item_ids), dtype=bool)
        if plats:
            mask &= self.availability[:, [self.platforms.index(p) for p in plats]].any(axis=1)
        if kind is not None:
            mask &= self.types == kind
        mask.setflags(write=False)
        self._masks[key] = mask
        return mask

    def display_platforms(self, positions: np.ndarray,
                          platforms: Sequence[str] | None = None) -> list[str]:
        """Each title's first platform (sorted) that the filter allows."""
        allowed = (np.isin(self.platforms, list(platforms)) if platforms
                   else np.ones(len(self.platforms), dtype=bool))
        first = np.argmax(self.availability[positions] & allowed, axis=1)
        return [self.platforms[j] for j in first]

    def frame(self, positions: np.ndarray, scores: np.ndarray, ranking: np.ndarray,
              platforms: Sequence[str] | None = None) -> pd.DataFrame:
        """A served list: ``rank, item_id, title, platform, type, score, ranking_score``
        (``score`` rounded to 3 decimals)."""
        return pd.DataFrame({
            "rank": np.arange(1, len(positions) + 1, dtype=np.int64),
            "item_id": self.item_ids[positions].astype(str),
            "title": self.titles[positions].astype(str),
            "platform": self.display_platforms(positions, platforms),
            "type": self.types[positions].astype(str),
            "score": np.round(np.asarray(scores, dtype=np.float64), 3),
            "ranking_score": np.asarray(ranking, dtype=np.float64),
        })

    def similar_frame(self, positions: np.ndarray, similarity: np.ndarray,
                      basis: str = "ratings") -> pd.DataFrame:
        """Similar titles: ``item_id, title, platform, similarity`` (rounded to 4 decimals)
        and ``basis``: ``ratings`` (who rated them) or ``content`` (what they are)."""
        return pd.DataFrame({
            "item_id": self.item_ids[positions].astype(str),
            "title": self.titles[positions].astype(str),
            "platform": self.display_platforms(positions),
            "similarity": np.round(np.asarray(similarity, dtype=np.float64), 4),
            "basis": basis,
        }, columns=["item_id", "title", "platform", "similarity", "basis"])


class CatalogView:
    """What a served model (``Recommender``, ``BatchRecommender``) shows of its ``catalog``."""

    catalog: Catalog

    @property
    def item_ids(self) -> np.ndarray:
        """The catalog's title ids, in the order of every served array."""
        return self.catalog.item_ids

    @property
    def platforms(self) -> list[str]:
        return self.catalog.platforms


def bayesian_average(sums: np.ndarray, counts: np.ndarray, prior_count: float) -> np.ndarray:
    """``(sum of scores + prior_count * global mean) / (n_ratings + prior_count)`` per
    title, the global mean over all the ratings counted (0 when there are none)."""
    total = float(np.sum(counts))
    mean = float(np.sum(sums)) / total if total > 0 else 0.0
    return (sums + prior_count * mean) / (counts + prior_count)


def cold_start_order(bayes: np.ndarray, counts: np.ndarray, by: str = "bayes") -> np.ndarray:
    """What the cold-start list ``by`` ranks titles by: ``"bayes"``, the Bayesian average
    (ties to the title with more ratings); ``"popularity"``, the number of ratings (ties to
    the better Bayesian average, a fraction below one rating)."""
    if by == "popularity":
        # rank of the Bayesian average, equal ones to the earlier title, scaled below 1/2
        rank = np.argsort(np.lexsort((-np.arange(bayes.size), bayes)))
        return counts + 0.5 * rank / max(bayes.size, 1)
    if by != "bayes":
        raise ValueError(f"cold_start_list must be one of {list(COLD_START_LISTS)}, got {by!r}")
    return bayes + 1e-9 * np.log1p(counts)


def top_valid(scores: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` best finite scores among ``valid`` titles, best first, ties
    broken by position."""
    s = np.where(valid, scores, -np.inf)
    candidates = np.arange(s.size)
    # One user's request: select among the few titles scoring at least the n-th best of
    # every stride-th title (a bound never above the n-th best of all, so every title
    # that can make the list, ties included, is a candidate); a full partition of the
    # catalog costs more than scoring it.
    stride = s.size // (8 * max(n, 1))
    if n >= 1 and stride >= 2:
        bound = np.partition(s[::stride], -n)[-n]
        if not np.isnan(bound):
            candidates = np.flatnonzero(s >= bound)
    if candidates.size > 1024:  # a long list or many ties: partition before sorting
        pos, vals = top_positions(s[candidates][None, :], n)
        return candidates[pos[0][np.isfinite(vals[0])]]
    top = candidates[np.lexsort((candidates, -s[candidates]))[:max(n, 0)]]
    return top[np.isfinite(s[top])]


def top_positions(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise best ``min(n, columns)`` positions of ``scores`` and their values, best
    first, ties broken by position (the catalog order): ``(positions, values)``, each
    ``rows x m``. Linear in the columns (a partition, not a sort); ``-inf`` marks what may
    not be chosen (it comes last; the caller drops it)."""
    n_rows, n_items = scores.shape
    m = min(n, n_items)
    if m <= 0 or n_rows == 0:
        return np.zeros((n_rows, 0), dtype=np.int64), np.zeros((n_rows, 0))
    # the best m of each row, the m-th best last; right as they are unless more titles
    # than fit tie at the m-th value (few rows of real scores: -inf padding, integer counts)
    pos = np.argpartition(-scores, m - 1, axis=1)[:, :m]
    kth = np.take_along_axis(scores, pos[:, m - 1:], axis=1)
    tied_over = np.flatnonzero((scores >= kth).sum(axis=1) > m)
    if tied_over.size:  # everything above the m-th value is in; ties fill by position
        rows, k = ((scores, kth) if tied_over.size == n_rows
                   else (scores[tied_over], kth[tied_over]))
        above, tied = rows > k, rows == k
        need = m - above.sum(axis=1, keepdims=True)
        chosen = above | (tied & (np.cumsum(tied, axis=1) <= need))
        pos[tied_over] = np.nonzero(chosen)[1].reshape(tied_over.size, m)
    vals = np.take_along_axis(scores, pos, axis=1)
    order = np.lexsort((pos, -vals), axis=1)
    return np.take_along_axis(pos, order, axis=1), np.take_along_axis(vals, order, axis=1)


def zscore_rows(m: np.ndarray) -> np.ndarray:
    """Each row centred and scaled to unit variance (constant rows become 0), in place."""
    m -= m.mean(axis=1, keepdims=True)
    std = m.std(axis=1, keepdims=True)
    std[std == 0] = 1.0
    m /= std
    return m
