"""Cold-start curve: how good is a new user's list after their first n ratings?

A seeded fifth of the users is held out whole; the registered configuration (with its
re-ranker's weights, if it has one) is fitted on the other users' ratings. Each held-out
user then arrives as a request does (``Recommender.recommend_for_ratings``, the API's
path): their first ``n`` ratings in time order, and NDCG@10 is scored on their *next* 20
ratings (relevant: score >= 4; the ``n`` given titles are not candidates). Beside the
served lists (under the registered new-user policy, ``ranking.new_users``): the personal
list without and with the re-ranker, and the two cold-start lists (the most rated titles,
the best Bayesian averages). The lists and their scoring are ``03_modeling``'s
(``new_users.new_user_curve``), on users held out of *all* the data rather than of the
training window. ``model - pop`` is the paired
difference with its standard error. Not strictly time-aware: the other users' ratings
after a held-out user's first ones are in the training data. Asserts nothing.

    .venv/bin/python benchmarks/cold_start_curve.py    # ~30 s on the default data

Measured 2026-12-07, before the new-user policy existed (seed 0; NDCG@10 on the next 20
ratings; "served" was then the re-ranked list from one rating on):

| data | n given | users | served | without re-ranker | cold-start list | popularity | served - pop (s.e.) |
|---|---|---|---|---|---|---|---|
| MovieLens | 0 | 133 | 0.102 | 0.102 | 0.102 | 0.134 | -0.031 (0.015) |
| | 1 | 133 | 0.088 | 0.105 | 0.102 | 0.130 | -0.042 (0.013) |
| | 2 | 133 | 0.113 | 0.119 | 0.097 | 0.125 | -0.012 (0.016) |
| | 5 | 133 | 0.144 | 0.138 | 0.099 | 0.118 | +0.026 (0.017) |
| | 10 | 132 | 0.151 | 0.144 | 0.096 | 0.119 | +0.032 (0.018) |
| | 20 | 116 | 0.208 | 0.193 | 0.073 | 0.095 | +0.113 (0.019) |
| linked catalogs | 0 | 123 | 0.182 | 0.182 | 0.182 | 0.232 | -0.050 (0.012) |
| | 1 | 122 | 0.125 | 0.173 | 0.180 | 0.220 | -0.095 (0.020) |
| | 2 | 117 | 0.130 | 0.181 | 0.175 | 0.210 | -0.080 (0.020) |
| | 5 | 101 | 0.206 | 0.235 | 0.175 | 0.207 | -0.001 (0.025) |
| | 10 | 80 | 0.234 | 0.245 | 0.162 | 0.177 | +0.057 (0.020) |
| | 20 | 55 | 0.188 | 0.192 | 0.125 | 0.130 | +0.058 (0.025) |

Read: for a user with no rating, popularity beats the cold-start list (the Bayesian
average) on both data sets; with one or two ratings, popularity beats the served lists, and
the re-ranker (fitted on users with at least 16 training ratings) makes them worse; from
about five ratings on, the served lists win, and more so the more the user has rated.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import load_tables
from ranking_variants import load_champion_or_none

from recsys_utils.ranking.evaluation import rating_params_for
from recsys_utils.ranking.new_users import GIVEN, LISTS, new_user_curve
from recsys_utils.ranking.recommender import Recommender
from recsys_utils.ranking.report import registered_configuration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="which users are held out")
    args = parser.parse_args()
    model_df, titles, source = load_tables()
    served, _, where = registered_configuration(load_champion_or_none(), model_df, titles)
    users = np.sort(model_df["user"].unique())
    held = set(np.random.default_rng(args.seed).choice(users, users.size // 5,
                                                       replace=False).tolist())
    rec = Recommender(rating_params_for("baseline"), served).fit(
        model_df[~model_df["user"].isin(held)], titles)
    policy = {key: served[key] for key in ("cold_start_list", "personalise_from",
                                           "rerank_from")}
    print(f"data: {source}; ranking: {where}; re-ranker: "
          f"{'registered' if served['rerank'] else 'none'}; new-user policy: {policy}; "
          f"{len(held)} new users")
    curve = new_user_curve(rec, model_df[model_df["user"].isin(held)], given=(*GIVEN, 20),
                           served=True)
    names = ["served", *LISTS]
    table = curve.groupby("n_given").agg(users=("user", "size"),
                                         **{name: (name, "mean") for name in names})
    diff = (curve["served"] - curve["popularity"]).groupby(curve["n_given"])
    table["served - pop"] = diff.mean()
    table["s.e."] = diff.std() / np.sqrt(table["users"])
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
