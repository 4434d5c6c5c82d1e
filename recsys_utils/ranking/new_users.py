"""New users: which list a user gets before rating anything, and from how many ratings
the personal list (and its re-ranker) takes over, chosen on validation data.

Why: the ranker and its re-ranker are chosen on known users, most of whom have many
ratings. A new user has none or a few, and there the choice differs. Measured with
``benchmarks/cold_start_curve.py``: for a user with no rating, the most rated titles beat
the best Bayesian averages on both real data sets, and on the linked catalogs they still
beat the personal list after one or two ratings.

How it is chosen (``choose_new_user_policy``, called by ``evaluation.tune_ranking`` after
the ranking and its re-ranker): a seeded ``HELD_OUT_SHARE`` of the training window's
users is held out whole, and the chosen ranking, with its re-ranker, is fitted on the
other users. Each held-out user then arrives as a request does
(``Recommender.recommend_for_ratings``) with their first ``n`` ratings in time order
(``n`` in ``GIVEN``), and every list is scored by NDCG@k on the user's next ``NEXT``
ratings (relevant: score >= the threshold; the ``n`` given titles are not candidates).
``choose_policy`` then reads the mean of each list at each ``n``:

* ``cold_start_list``: the better of the two cold-start lists (``catalog.COLD_START_LISTS``)
  at ``n = 0``; a tie keeps the Bayesian average;
* ``personalise_from``: the smallest ``n >= 1`` of the grid from which the personal list
  scores at least the cold-start list at every larger ``n`` of the grid;
* ``rerank_from``: from ``personalise_from`` on, the smallest ``n`` from which the
  re-ranked list scores at least the same list without the re-ranker at every larger ``n``.

When the personal list (or the re-ranker) has not caught up by the grid's last ``n``, that
``n`` is taken: beyond it, the known users' validation, where every user has more ratings,
made the choice. Each request is made at the time of the user's
latest given rating, so the re-ranker's time features (how much each title was rated in the
months before) see the user's time, as a known user's do in validation; as there, the fit
is not strictly time-aware: the other users' ratings after that time are in it.

What the choice changes is in ``Recommender``: a user with fewer than ``personalise_from``
ratings (a request's, or a known user's training ratings) gets the cold-start list without
the titles they rated (``cold_start=True``); with fewer than ``rerank_from``, the personal
list without the re-ranker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils.ranking.metrics import ndcg_at_k
from recsys_utils.ranking.recommender import Recommender

__all__ = ["GIVEN", "HELD_OUT_SHARE", "LISTS", "NEXT", "POLICY_OFF", "choose_new_user_policy",
           "choose_policy", "new_user_curve", "new_user_lists", "summarise_curve"]

#: Numbers of first ratings a held-out user is given.
GIVEN: tuple[int, ...] = (0, 1, 2, 3, 5, 10)
#: The ratings after them that are scored.
NEXT = 20
#: Share of the training window's users held out whole.
HELD_OUT_SHARE = 0.2
#: The lists compared; ``personal`` and ``reranked`` exist from one given rating on.
LISTS: tuple[str, ...] = ("popularity", "bayes", "personal", "reranked")
#: The policy of a recommender before any choice: every rating personalises, and re-ranks.
POLICY_OFF: dict[str, Any] = {"cold_start_list": "bayes", "personalise_from": 1,
                              "rerank_from": 0}


def new_user_lists(rec: Recommender, given: Mapping[str, float], k: int = 10,
                   served: bool = False, at: Any = None) -> dict[str, list[str]]:
    """Each list of ``LISTS`` a new user who rated ``given`` (the request made ``at``) would
    get from ``rec``, through the request path (``top_items_for_ratings``: the titles
    ``recommend_for_ratings`` lists) with the policy set to give it; with ``served``, also
    ``rec``'s own answer under its policy."""
    def ids(model: Recommender) -> list[str]:
        return model.top_items_for_ratings(given, k, at=at)

    cold_only = len(given) + 1  # fewer ratings than this: the cold-start list
    out = {by: ids(rec.with_ranking(cold_start_list=by, personalise_from=cold_only))
           for by in ("popularity", "bayes")}
    if given:
        personal = rec.with_ranking(personalise_from=1, rerank_from=0)
        out["personal"] = ids(personal.with_reranker(None))
        if rec.ranking_params["rerank"]:
            out["reranked"] = ids(personal)
    if served:
        out["served"] = ids(rec)
    return out


def new_user_curve(rec: Recommender, histories: pd.DataFrame, given: Sequence[int] = GIVEN,
                   next_n: int = NEXT, k: int = 10, threshold: float = 4.0,
                   served: bool = False) -> pd.DataFrame:
    """NDCG@``k`` of each list (``new_user_lists``) for each held-out user (``histories``:
    their ``user``, ``item``, ``score``, ``timestamp``) given their first ``n`` catalog
    ratings, scored on the next ``next_n``: one row per user and ``n`` with a relevant title
    among those and at least five of them. The request is made at the time of the ``n``-th
    rating, so the re-ranker's time features see the user's time, as a known user's do."""
    in_catalog = histories["item"].astype(str).isin(set(rec.item_ids.tolist()))
    rows = []
    for user, history in histories[in_catalog].groupby("user", sort=True):
        history = history.sort_values(["timestamp", "item"], kind="mergesort")
        items, scores = history["item"].astype(str).tolist(), history["score"].tolist()
        times = history["timestamp"].tolist()
        for n in given:
            relevant = {i for i, s in zip(items[n:n + next_n], scores[n:n + next_n],
                                          strict=True) if s >= threshold}
            if len(items) < n + 5 or not relevant:
                continue
            lists = new_user_lists(rec, dict(zip(items[:n], scores[:n], strict=True)), k, served,
                                   at=times[n - 1] if n else None)
            rows.append({"n_given": n, "user": user,
                         **{name: ndcg_at_k(lists[name], relevant, k) for name in lists}})
    return pd.DataFrame(rows, columns=["n_given", "user", *LISTS, *(["served"] if served else [])])


def summarise_curve(curve: pd.DataFrame) -> pd.DataFrame:
    """Per number of given ratings: users, each list's mean NDCG, and the personal list's
    paired difference with the better cold-start list at ``n = 0`` and its standard error."""
    table = curve.groupby("n_given").agg(users=("user", "size"),
                                         **{name: (name, "mean") for name in LISTS})
    cold = "popularity" if _better(table, "popularity", "bayes") else "bayes"
    diff = (curve["personal"] - curve[cold]).groupby(curve["n_given"])
    table["personal_minus_cold"] = diff.mean()
    table["personal_minus_cold_se"] = diff.std() / np.sqrt(table["users"])
    return table


def _better(table: pd.DataFrame, a: str, b: str) -> bool:
    """Whether list ``a`` beats ``b`` for users with no rating (first row of the grid)."""
    first = table.iloc[0]
    return bool(first[a] > first[b])


def choose_policy(table: pd.DataFrame, reranker: bool) -> dict[str, Any]:
    """The policy ``table`` (``summarise_curve``) supports, by the rules of the module
    docstring; ``reranker``: whether the ranking has a re-ranker (else ``rerank_from`` 0)."""
    cold = "popularity" if _better(table, "popularity", "bayes") else "bayes"
    ns = [int(n) for n in table.index if n >= 1 and not np.isnan(table.loc[n, "personal"])]
    if not ns:
        return {"cold_start_list": cold, "personalise_from": 1, "rerank_from": 0}

    def catches_up(better: str, worse: str, grid: list[int]) -> int:
        for n in grid:
            if all(table.loc[m, better] >= table.loc[m, worse] for m in grid if m >= n):
                return n
        return grid[-1]

    personalise_from = catches_up("personal", cold, ns)
    rerank_from = (catches_up("reranked", "personal", [n for n in ns if n >= personalise_from])
                   if reranker else 0)
    return {"cold_start_list": cold, "personalise_from": personalise_from,
            "rerank_from": rerank_from}


def choose_new_user_policy(window: pd.DataFrame, titles: pd.DataFrame,
                           params: Mapping[str, Any], factory: Callable[[], Any], *,
                           seed: int, k: int = 10, threshold: float = 4.0,
                           share: float = HELD_OUT_SHARE) -> dict[str, Any]:
    """Choose the new-user policy for the ranking ``params`` on the training ``window``
    (see the module docstring); returns the record: ``chosen`` (``None``: nothing to
    choose on, the defaults stay), ``table`` (``summarise_curve``), ``held_out_users``,
    ``rule``, ``outcome``."""
    users = np.sort(window["user"].unique())
    held = set(np.random.default_rng(seed).choice(
        users, max(1, int(round(users.size * share))), replace=False).tolist())
    record: dict[str, Any] = {"tried": True, "held_out_users": len(held), "given": list(GIVEN),
                              "next": NEXT, "share": share, "rule": RULE}
    rest = window[~window["user"].isin(held)]
    if rest.empty:
        return {**record, "chosen": None, "outcome": "kept the defaults: too few users to "
                "hold any out"}
    rec = Recommender(ranking_params={**params, **POLICY_OFF}, seed=seed,
                      rating_model=factory()).fit(rest, titles)
    curve = new_user_curve(rec, window[window["user"].isin(held)], k=k, threshold=threshold)
    if curve.empty or not (curve["n_given"] == 0).any():
        return {**record, "chosen": None, "outcome": "kept the defaults: no held-out user has "
                "a relevant title among their first ratings"}
    table = summarise_curve(curve)
    chosen = choose_policy(table, reranker=bool(params.get("rerank")))
    return {**record, "chosen": chosen, "table": table.reset_index(),
            "outcome": describe(chosen, table, k)}


RULE = ("cold_start_list: the better cold-start list for held-out users with no rating; "
        "personalise_from (rerank_from): the smallest number of given ratings from which the "
        "personal list beats the cold-start list (the re-ranked list the one without) at every "
        "larger number of the grid, else the grid's last")


def _ratings(n: int) -> str:
    return f"{n} rating{'' if n == 1 else 's'}"


def describe(chosen: Mapping[str, Any], table: pd.DataFrame, k: int = 10) -> str:
    """One sentence: the chosen policy and the validation figures behind it."""
    first = table.iloc[0]
    cold = chosen["cold_start_list"]
    other = "bayes" if cold == "popularity" else "popularity"
    name = {"popularity": "the most rated titles", "bayes": "the best Bayesian averages"}
    text = (f"users with no rating get {name[cold]} (validation NDCG@{k} {first[cold]:.4f} "
            f"vs {first[other]:.4f}, {int(first['users'])} held-out users); the personal list "
            f"from {_ratings(chosen['personalise_from'])}")
    if chosen["rerank_from"]:
        text += f", its re-ranker from {_ratings(chosen['rerank_from'])}"
    return text
