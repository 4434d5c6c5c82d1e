"""Small processed tables (titles, ratings, model, analytics) built in code for store/retrain tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.data.store import write_store
from recsys_utils.paths import ProjectPaths
from recsys_utils.schema import cast_titles


def make_titles(n_items: int = 8) -> pd.DataFrame:
    ids = [f"ml{i}" for i in range(1, n_items + 1)]
    return cast_titles(pd.DataFrame({
        "id": ids, "item_id": ids, "platform": "movielens", "show_id": [i[2:] for i in ids],
        "type": "Movie", "title": [f"Film {i}" for i in ids], "title_norm": [f"film {i}" for i in ids],
        "director": None, "cast": None, "country": None, "genres": "Drama", "description": None,
        "date_added": pd.NaT, "release_year": 2000, "rating": None, "duration_int": 100,
        "duration_type": "min",
    }))


def make_ratings(n_users: int = 6, n_items: int = 8, seed: int = 0,
                 start: str = "2015-01-01", days: int = 180) -> pd.DataFrame:
    """Every user rates every item once, at distinct seconds spread over ``days``."""
    rng = np.random.default_rng(seed)
    users, items = np.meshgrid(np.arange(1, n_users + 1), np.arange(1, n_items + 1), indexing="ij")
    n = users.size
    offsets = np.sort(rng.choice(days * 86_400, size=n, replace=False))
    return pd.DataFrame({
        "user_id": users.ravel().astype("int32"),
        "item_id": [f"ml{i}" for i in items.ravel()],
        "score": (rng.integers(1, 11, size=n) / 2).astype("float32"),
        "timestamp": pd.Timestamp(start) + pd.to_timedelta(rng.permutation(offsets), unit="s"),
        "source_file": "fixture",
        "line": np.arange(2, n + 2, dtype="int32"),
    })


def build_store(paths: ProjectPaths, ratings: pd.DataFrame, titles: pd.DataFrame | None = None
                ) -> None:
    """Write titles.parquet and the ratings/model/analytics tables into ``paths.processed``."""
    titles = titles if titles is not None else make_titles()
    paths.processed.mkdir(parents=True, exist_ok=True)
    titles.to_parquet(paths.processed / "titles.parquet", index=False)
    write_store(ratings, paths, titles=titles)


def to_raw_csv(ratings: pd.DataFrame, path) -> None:
    """Write ratings in the raw layout ``userId,rating,timestamp,movieId``."""
    pd.DataFrame({
        "userId": ratings["user_id"].astype(int),
        "rating": ratings["score"].astype(float),
        "timestamp": pd.to_datetime(ratings["timestamp"]).astype("datetime64[s]").astype("int64"),
        "movieId": ratings["item_id"].astype(str),
    }).to_csv(path, index=False)


class FakeRecommendations:
    def __init__(self, user, items: pd.DataFrame):
        self.user, self.items, self.cold_start = user, items, False


class FakeRecommender:
    """A tiny Recommender stand-in: a numpy baseline (``mu + b_u + b_i``) ranking unseen titles.

    ``shift`` adds a constant to every prediction (a deliberately worse model).
    """

    def __init__(self, shift: float = 0.0):
        self.shift = shift

    def fit(self, model_df: pd.DataFrame, titles: pd.DataFrame) -> FakeRecommender:
        from recsys_utils.rating.predictors import FastBaseline

        self.base = FastBaseline().fit(model_df)
        self.n_train = len(model_df)
        self.item_ids = np.array(sorted(titles["item_id"].astype(str).unique()), dtype=object)
        self.seen = model_df.groupby("user")["item"].agg(lambda s: set(map(str, s))).to_dict()
        return self

    def predict(self, user: int, item_id: str) -> float:
        return float(np.clip(self.base.predict_items(user, np.array([item_id], dtype=object),
                                                     clip=False)[0] + self.shift, 0.5, 5.0))

    def recommend(self, user: int, n: int = 10, platforms=None, kind=None):
        scores = self.base.predict_items(user, self.item_ids, clip=False) + self.shift
        seen = self.seen.get(user, set())
        order = [i for i in np.argsort(-scores, kind="stable") if self.item_ids[i] not in seen][:n]
        items = pd.DataFrame({"rank": range(1, len(order) + 1), "item_id": self.item_ids[order],
                              "score": np.round(np.clip(scores[order], 0.5, 5.0), 3)})
        return FakeRecommendations(user, items)


def fake_trainer(shift: float = 0.0):
    """A retrain ``trainer``: ``(model_df, titles, params) -> FakeRecommender``."""

    def train(model_df: pd.DataFrame, titles: pd.DataFrame, params: dict) -> FakeRecommender:
        return FakeRecommender(shift=params.get("ranking_params", {}).get("shift", shift)).fit(
            model_df, titles)

    return train
