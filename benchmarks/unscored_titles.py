"""How well the titles the ranker cannot score are ordered (``ranking.content``).

Most of a real catalog has too few ratings for the ranker (on the linked catalogs, every TV
show). Such titles keep the ranker's neutral score and are ordered among themselves by
``content.ContentOrder``: content cosine with the user's profile plus their training ratings.
This scores that order where it can be checked: on the per-user test split of ``04`` and on
``03``'s validation split, each user's list of 10 drawn from the unscored titles only (not
rated in training), against the titles among them the user rated 4 or more afterwards; every
user with at least one such title. The served order is read from the served ranking scores
(so a popularity penalty would show; until 2026-12-08's review it ordered the linked
catalogs' unscored titles by their 0-4 ratings, 0.0000 / 0.0034), beside its content key: title-id order (what was served
before), the training ratings alone, the content cosine alone, and a random order. Then what
the order costs: ``recommend_all`` (every user's top 10) and ``recommend`` (one user), with
and without it, and the largest allocation of ``recommend_all`` (tracemalloc). Asserts
nothing; prints the tables.

    .venv/bin/python benchmarks/unscored_titles.py     # ~30 s on the default data

Measured 2026-12-08 (NDCG@10 within the unscored titles; s.e. in brackets):

| data | split | users | served order | title-id order | ratings only | content only | random |
|---|---|---|---|---|---|---|---|
| MovieLens (6,156 of 9,061 titles unscored) | validation | 275 | 0.0279 (0.0065) | 0.0002 | 0.0039 | 0.0078 | 0.0018 |
| | test | 318 | 0.0099 (0.0028) | 0.0007 | 0.0069 | 0.0062 | 0.0022 |
| linked catalogs (21,260 of 21,998 in the test's training window) | validation | 115 | 0.0226 (0.0094) | 0.0000 | 0.0281 | 0.0050 | 0.0000 |
| | test | 125 | 0.0381 (0.0103) | 0.0000 | 0.0089 | 0.0139 | 0.0000 |

Small in absolute terms (these are titles almost nobody rated, and a user rates few of them),
but title-id order finds nearly nothing, the same for everyone. On the linked catalogs'
validation split the ratings alone do as well (within the standard error). Cost (all users,
this machine, idle): MovieLens ``recommend_all`` 0.70 s against 0.59 s without the order,
``recommend`` 3.5 ms against 2.9 ms, the same peak allocation (90 MB); linked catalogs 1.71 s
against 1.16 s, 3.5 ms against 2.8 ms, peak 264 MB against 195 MB (a batch of 256 users x
21,136 unscored titles). Linear in users, as the ranker's own scoring.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from _common import served_ranking

from recsys_utils.ranking.evaluation import (
    last_n_split,
    rating_params_for,
    relevant_items,
    validation_split,
)
from recsys_utils.ranking.metrics import per_user_ndcg
from recsys_utils.ranking.recommender import Recommender

K = 10


def orders(rec: Recommender, rows: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Each order's key (users x unscored titles, higher first)."""
    content = rec._content
    key = content(rec._X[rows])
    prior = np.broadcast_to(content._prior, key.shape)
    return {"served order": rec._blended_rows(rows)[:, content.unscored],  # with pop_weight
            "content order's key": key, "title-id order": np.zeros_like(key),
            "ratings only": prior, "content only": key - prior,
            "random": np.random.default_rng(seed).random(key.shape)}


def score_split(split, titles, ranking, seed: int) -> tuple[dict[str, np.ndarray], int, int]:
    rec = Recommender(rating_params_for("baseline"), ranking).fit(split.train, titles)
    unscored = rec._content.unscored
    ids = rec.item_ids[unscored]
    inside = set(ids.tolist())
    relevant = {u: items & inside for u, items in relevant_items(split.test).items()}
    users = np.array(sorted(u for u, items in relevant.items() if items and rec.known_user(u)))
    rows = np.array([rec._user_pos[int(u)] for u in users], dtype=np.int64)
    rated = rec._rated[rows][:, unscored].toarray()
    result = {}
    for name, key in orders(rec, rows, seed).items():
        key = np.where(rated, -np.inf, key)
        top = np.argsort(-key, axis=1, kind="stable")[:, :K]  # ties: catalog (title-id) order
        per = per_user_ndcg({int(u): ids[t].tolist() for u, t in zip(users, top, strict=True)},
                            {int(u): relevant[u] for u in users}, K)
        result[name] = np.array([per[int(u)] for u in users])
    return result, len(users), unscored.size


def cost(rec: Recommender) -> str:
    out = []
    content, users = rec._content, rec.user_ids[:200]
    for label, value in (("with the order", content), ("without", None)):
        rec._content = value
        best = min(_timed(lambda: rec.recommend_all(K)) for _ in range(3))
        tracemalloc.start()
        rec.recommend_all(K)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        one = _timed(lambda: [rec.recommend(int(u), K) for u in users]) / users.size
        out.append(f"{label}: recommend_all {best:.2f} s (peak allocation {peak / 1e6:.0f} MB), "
                   f"recommend {one * 1000:.1f} ms")
    rec._content = content
    return "; ".join(out)


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the random order's seed")
    args = parser.parse_args()
    model_df, titles, source, served, where = served_ranking()
    print(f"data: {source}; ranking: {where}")
    for name, split in (("validation", validation_split(model_df)),
                        ("test", last_n_split(model_df, fraction=0.2))):
        result, n_users, n_unscored = score_split(split, titles, served, args.seed)
        cells = ", ".join(f"{k} {v.mean():.4f} ({v.std(ddof=1) / np.sqrt(v.size):.4f})"
                          for k, v in result.items())
        print(f"{name}: {n_users} users, {n_unscored:,} unscored titles: {cells}")
    rec = Recommender(rating_params_for("baseline"), served).fit(model_df, titles)
    print("cost on all the data:", cost(rec))


if __name__ == "__main__":
    main()
