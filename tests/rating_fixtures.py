"""A tiny model table and titles table for the rating tests (test_predictors, test_blend, ...).

~900 ratings by 40 users on 60 titles, with user/item biases and a 2-d taste structure,
so every surprise algorithm and blend component fits in milliseconds yet has something
to learn. Each test module wraps these in module-scoped fixtures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N_USERS, N_ITEMS = 40, 60


def synthetic_model_table() -> pd.DataFrame:
    """~900 ratings with user/item biases and a 2-d taste structure, on the 0.5 grid."""
    rng = np.random.default_rng(0)
    pu, qi = rng.normal(size=(N_USERS, 2)), rng.normal(size=(N_ITEMS, 2))
    bu, bi = rng.normal(0, 0.5, N_USERS), rng.normal(0, 0.5, N_ITEMS)
    rows = []
    for u in range(N_USERS):
        n = rng.integers(5, 40)  # uneven activity, like real users
        for i in rng.choice(N_ITEMS, size=n, replace=False):
            r = 3.4 + bu[u] + bi[i] + 0.6 * pu[u] @ qi[i] + rng.normal(0, 0.4)
            rows.append((u + 1, f"ml{i + 1}", float(np.clip(np.round(r * 2) / 2, 0.5, 5.0))))
    df = pd.DataFrame(rows, columns=["user", "item", "score"])
    df["user"] = df["user"].astype("int32")
    df["score"] = df["score"].astype("float32")
    df["timestamp"] = pd.Timestamp("2020-01-01")
    return df


def synthetic_titles() -> pd.DataFrame:
    """Genres (some missing) and release years of the ``N_ITEMS`` titles."""
    genres = ["Drama", "Comedy", "Action, Thriller", "Documentary", "Comedy, Romance"]
    return pd.DataFrame({
        "item_id": [f"ml{i + 1}" for i in range(N_ITEMS)],
        "genres": [genres[i % 5] if i % 11 else None for i in range(N_ITEMS)],
        "release_year": [1950 + (7 * i) % 70 for i in range(N_ITEMS)],
    })


def items_with_unknown(model) -> np.ndarray:
    """The model's known items plus one it has never seen."""
    return np.array([*model.item_ids.tolist(), "not-an-item"], dtype=object)
