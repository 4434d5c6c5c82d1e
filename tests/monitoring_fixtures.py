"""A small model table for the monitoring step: a few dozen users over a chosen span of years."""

from __future__ import annotations

import numpy as np
import pandas as pd


def rating_history(first_day: str = "2002-01-01", last_day: str = "2003-12-31",
                   n_users: int = 80, n_items: int = 40, per_user: int = 12,
                   seed: int = 0) -> pd.DataFrame:
    """A model table (user, item, score, timestamp) whose ratings span ``first_day..last_day``.

    Users arrive at random days of the span and rate ``per_user`` distinct titles over the
    next weeks; scores follow user and title biases, rounded to half stars in 0.5..5.
    """
    rng = np.random.default_rng(seed)
    t0, t1 = pd.Timestamp(first_day), pd.Timestamp(last_day)
    span_days = (t1 - t0).days
    item_bias = rng.normal(0, 0.6, n_items)
    rows = []
    for user in range(1, n_users + 1):
        arrival = rng.integers(0, span_days + 1)
        bias = rng.normal(0, 0.4)
        for item in rng.choice(n_items, size=per_user, replace=False):
            day = min(span_days, arrival + int(rng.integers(0, 60)))
            score = np.clip(np.round(2 * (3.5 + bias + item_bias[item] + rng.normal(0, 0.5))) / 2,
                            0.5, 5.0)
            stamp = t0 + pd.Timedelta(days=day, seconds=int(rng.integers(0, 86_400)))
            rows.append((user, f"i{item}", score, stamp))
    df = pd.DataFrame(rows, columns=["user", "item", "score", "timestamp"])
    df["score"] = df["score"].astype("float32")
    return df.sort_values("timestamp", ignore_index=True)
