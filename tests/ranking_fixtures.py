"""A small synthetic catalog and ratings with a known structure, for the ranking tests.

Two taste groups: even users like titles ``i00``-``i19`` and dislike ``i20``-``i39``,
odd users the reverse. Two platforms: ``alpha`` carries titles 0-24, ``beta`` titles
15-39; titles 15-24 exist on both as *two catalog rows sharing one item_id* (the
``linked`` source's situation). Every fourth title is a TV show.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.ranking.recommender import Recommender
from recsys_utils.rating.predictors import make_component

N_ITEMS = 40
N_USERS = 60
#: Small settings of the rival rankers (the EASE default aside) for the fixture's size.
RIVALS = {"itemknn": {"neighbours": 5}, "rp3beta": {"neighbours": 20},
          "als": {"factors": 4, "als_iterations": 5}, "popularity": {}}


def item_id(k: int) -> str:
    return f"i{k:02d}"


def synthetic_titles() -> pd.DataFrame:
    """The processed-titles columns the recommender and the rating blend read."""
    rows = []
    for k in range(N_ITEMS):
        kind = "TV Show" if k % 4 == 3 else "Movie"
        platforms = (["alpha"] if k < 15 else ["alpha", "beta"] if k < 25 else ["beta"])
        for p in platforms:
            rows.append({"id": f"{p[0]}{k}", "item_id": item_id(k), "platform": p,
                         "type": kind, "title": f"Title {k}",
                         "genres": "Comedy" if k < 20 else "Drama, Thriller",
                         "release_year": 1990 + k})
    return pd.DataFrame(rows)


def synthetic_ratings(seed: int = 0, per_user: int = 12) -> pd.DataFrame:
    """The model table (``user``, ``item``, ``score``, ``timestamp``) of the two groups."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = np.datetime64("2020-01-01T00:00:00", "s")
    for u in range(1, N_USERS + 1):
        liked = np.arange(0, 20) if u % 2 == 0 else np.arange(20, 40)
        other = np.arange(20, 40) if u % 2 == 0 else np.arange(0, 20)
        n_like = per_user - 3
        items = np.concatenate([rng.choice(liked, n_like, replace=False),
                                rng.choice(other, 3, replace=False)])
        scores = np.concatenate([rng.choice([4.0, 4.5, 5.0], n_like),
                                 rng.choice([1.0, 1.5, 2.0, 2.5], 3)])
        times = t0 + np.sort(rng.integers(0, 3 * 365 * 86400, per_user)).astype("timedelta64[s]")
        order = rng.permutation(per_user)  # rated in random order over time
        for j in range(per_user):
            rows.append({"user": u, "item": item_id(int(items[order[j]])),
                         "score": float(scores[order[j]]), "timestamp": times[j]})
    df = pd.DataFrame(rows)
    return df.astype({"user": "int32", "score": "float32", "timestamp": "datetime64[s]"})


def movielens_titles(model_df: pd.DataFrame) -> pd.DataFrame:
    """A minimal titles table for a model table (one platform, all movies)."""
    items = np.sort(model_df["item"].astype(str).unique())
    return pd.DataFrame({"id": items, "item_id": items, "platform": "movielens",
                         "type": "Movie", "title": items, "genres": "Drama",
                         "release_year": 2000})


def svd_recommender(ratings: pd.DataFrame | None = None, seed: int = 0, **ranking) -> Recommender:
    """A ``Recommender`` on the synthetic titles with a small seeded SVD as rating model."""
    ratings = synthetic_ratings(seed) if ratings is None else ratings
    svd = make_component("svd", {"n_factors": 5, "n_epochs": 10, "keep_algo": True}, seed=seed)
    return Recommender(ranking_params=ranking, seed=seed, rating_model=svd).fit(
        ratings, synthetic_titles())
