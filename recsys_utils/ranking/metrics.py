"""Top-N ranking metrics: precision, recall, NDCG, MAP at k, catalog coverage, novelty.

Why a module of its own: the numbers in ``04_evaluation``, the benchmark and the
retraining decision must all mean the same thing, so every definition lives here once,
with its conventions written down (and tested against hand-computed cases):

* **Input.** ``recommended[user]`` is an *ordered* list (best first). Ties in the
  underlying scores must be broken by whoever produced the list (the recommender breaks
  them on the unclipped score, then on catalog order; ``top_k`` below breaks them on
  the item id), so a metric never sees a tie: it sees positions. A title repeated in a
  list counts once, at its first position (a duplicate cannot earn a second hit).
* **Relevance is binary.** ``relevant[user]`` is the set of held-out titles that count
  as hits (``evaluation.relevant_items``: test score >= 4.0 by default).
* **Users with no relevant item** (absent from ``relevant`` or with an empty set) are
  *excluded* from the accuracy means (their precision would be 0 whatever the model
  does, recall and NDCG are undefined) and *counted separately* as
  ``n_users_no_relevant``. A user with relevant items but no list scores 0.
* **Precision@k** divides by ``k`` even when a list is shorter (a short list is a
  missed opportunity, not a smaller denominator). **Recall@k** divides by ``|relevant|``.
* **NDCG@k** uses binary gains and ``1/log2(rank + 1)`` discounts; the ideal DCG puts
  ``min(k, |relevant|)`` hits first, so a perfect list scores 1.
* **MAP@k**: ``AP@k = sum over hit positions i <= k of precision@i / min(k, |relevant|)``
  (the normalisation that lets a perfect list score 1 when ``|relevant| > k``).
* **Catalog coverage** is the share of the catalog (``n_catalog`` titles) that appears in
  the top-k of *at least one* user in ``recommended`` (all listed users, not only the
  evaluated ones: coverage is a property of what the service shows its users).
* **Novelty** is the mean self-information ``-log2 p(i)`` of the recommended titles,
  ``p(i)`` = share of training users who rated title ``i`` (popular titles carry little
  information); averaged within a user's top-k, then over users with a non-empty list.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "average_precision_at_k",
    "catalog_coverage",
    "dedupe",
    "map_at_k",
    "ndcg_at_k",
    "novelty",
    "per_user_ndcg",
    "precision_at_k",
    "ranking_report",
    "recall_at_k",
    "top_k",
]


def dedupe(items: Iterable[Hashable], k: int | None = None) -> list[Hashable]:
    """The first ``k`` distinct items in order (a repeated item keeps its first position)."""
    seen: set[Hashable] = set()
    out: list[Hashable] = []
    for item in items:
        if item in seen:
            continue
        seen.add(item)
        out.append(item)
        if k is not None and len(out) == k:
            break
    return out


def _check_k(k: int) -> None:
    if int(k) < 1:
        raise ValueError(f"k must be a positive integer, got {k}")


def top_k(scores: Mapping[Hashable, float], k: int) -> list[Hashable]:
    """The ``k`` best items of a score mapping, ties broken by ascending item id.

    The deterministic tie rule for lists built from scores outside the recommender
    (baselines, tests): equal scores are ordered by the item id itself.
    """
    _check_k(k)
    return [item for item, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def _hits(recommended: Sequence[Hashable], relevant: set, k: int) -> np.ndarray:
    """0/1 hit indicator of the first ``k`` distinct recommended items."""
    return np.array([item in relevant for item in dedupe(recommended, k)], dtype=np.float64)


def precision_at_k(recommended: Sequence[Hashable], relevant: set, k: int) -> float:
    """Hits in the top ``k`` divided by ``k`` (also when the list is shorter than ``k``)."""
    _check_k(k)
    return float(_hits(recommended, relevant, k).sum() / k)


def recall_at_k(recommended: Sequence[Hashable], relevant: set, k: int) -> float:
    """Hits in the top ``k`` divided by the number of relevant items (NaN if there are none)."""
    _check_k(k)
    if not relevant:
        return float("nan")
    return float(_hits(recommended, relevant, k).sum() / len(relevant))


def ndcg_at_k(recommended: Sequence[Hashable], relevant: set, k: int) -> float:
    """Binary-gain NDCG@k: DCG of the list over the DCG of ``min(k, |relevant|)`` hits first.

    NaN when there is no relevant item (the ideal DCG is 0).
    """
    _check_k(k)
    if not relevant:
        return float("nan")
    hits = _hits(recommended, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(hits @ discounts[: hits.size])
    idcg = float(discounts[: min(k, len(relevant))].sum())
    return dcg / idcg


def average_precision_at_k(recommended: Sequence[Hashable], relevant: set, k: int) -> float:
    """AP@k: sum of precision@i at each hit position i <= k, over ``min(k, |relevant|)``.

    NaN when there is no relevant item.
    """
    _check_k(k)
    if not relevant:
        return float("nan")
    hits = _hits(recommended, relevant, k)
    if not hits.any():
        return 0.0
    precision_at_i = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float((precision_at_i * hits).sum() / min(k, len(relevant)))


def map_at_k(recommended: Mapping[Any, Sequence[Hashable]], relevant: Mapping[Any, set],
             k: int) -> float:
    """Mean AP@k over the users with at least one relevant item (NaN when there are none)."""
    users = [u for u, rel in relevant.items() if rel]
    if not users:
        return float("nan")
    return float(np.mean([average_precision_at_k(recommended.get(u, ()), relevant[u], k)
                          for u in users]))


def catalog_coverage(recommended: Mapping[Any, Sequence[Hashable]], k: int,
                     n_catalog: int) -> float:
    """Share of the ``n_catalog`` titles found in at least one user's top ``k``."""
    _check_k(k)
    if n_catalog < 1:
        raise ValueError(f"n_catalog must be positive, got {n_catalog}")
    shown: set[Hashable] = set()
    for items in recommended.values():
        shown.update(dedupe(items, k))
    return len(shown) / n_catalog


def novelty(recommended: Mapping[Any, Sequence[Hashable]], k: int,
            item_popularity: Mapping[Hashable, float]) -> float:
    """Mean self-information ``-log2 p(i)`` of the top-k titles (per user, then over users).

    ``item_popularity[i]`` is the share of training users who rated ``i``, in (0, 1].
    A title missing from the mapping (or with ``p <= 0``: never rated in training) gets
    the smallest positive popularity of the mapping, i.e. it counts as the rarest
    known title rather than as infinitely novel. NaN when no user has a list.
    """
    _check_k(k)
    positive = [p for p in item_popularity.values() if p > 0]
    if not positive:
        raise ValueError("item_popularity has no positive value")
    floor = min(positive)
    per_user = []
    for items in recommended.values():
        top = dedupe(items, k)
        if not top:
            continue
        p = np.array([item_popularity.get(i, floor) for i in top], dtype=np.float64)
        p = np.where(p > 0, p, floor)
        per_user.append(float(np.mean(-np.log2(p))))
    return float(np.mean(per_user)) if per_user else float("nan")


def per_user_ndcg(recommended: Mapping[Any, Sequence[Hashable]], relevant: Mapping[Any, set],
                  k: int) -> dict[Any, float]:
    """NDCG@k of each user with at least one relevant item (a missing list scores 0).

    For paired comparisons of two recommenders on the same users.
    """
    return {u: ndcg_at_k(recommended.get(u, ()), rel, k) for u, rel in relevant.items() if rel}


def ranking_report(recommended: Mapping[Any, Sequence[Hashable]],
                   relevant: Mapping[Any, set], k: int,
                   item_popularity: Mapping[Hashable, float], n_catalog: int) -> dict[str, Any]:
    """Every top-N metric of one set of recommendation lists, as a flat dict.

    Accuracy metrics (``precision``, ``recall``, ``ndcg``, ``map``) are means over the
    users of ``relevant`` with at least one relevant item (``n_users``); their standard
    errors over users are ``ndcg_se`` etc. (the evaluated users are few on a time-aware
    split: the error bar matters). ``n_users_no_relevant`` counts the users of
    ``relevant`` with an empty set (held-out ratings, none relevant): excluded from the
    means. ``n_lists`` counts the lists; users with a list but no entry in ``relevant``
    (no held-out ratings) only enter ``coverage`` and ``novelty``, which use every list.
    """
    _check_k(k)
    users = [u for u, rel in relevant.items() if rel]
    no_relevant = [u for u, rel in relevant.items() if not rel]
    per_metric: dict[str, list[float]] = {"precision": [], "recall": [], "ndcg": [], "map": []}
    for u in users:
        rec, rel = recommended.get(u, ()), relevant[u]
        per_metric["precision"].append(precision_at_k(rec, rel, k))
        per_metric["recall"].append(recall_at_k(rec, rel, k))
        per_metric["ndcg"].append(ndcg_at_k(rec, rel, k))
        per_metric["map"].append(average_precision_at_k(rec, rel, k))
    out: dict[str, Any] = {"k": int(k)}
    for name, values in per_metric.items():
        arr = np.asarray(values, dtype=np.float64)
        out[name] = float(arr.mean()) if arr.size else float("nan")
        out[f"{name}_se"] = (float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1
                             else float("nan"))
    out["coverage"] = catalog_coverage(recommended, k, n_catalog)
    out["novelty"] = novelty(recommended, k, item_popularity)
    out["n_users"] = len(users)
    out["n_users_no_relevant"] = len(no_relevant)
    out["n_lists"] = len(recommended)
    return out
