"""Ranking benchmark: top-N quality vs popularity, and recommendation latency vs the seed.

Measured in one run, on the processed default data (``make pipeline`` first; without it
the embedded MovieLens is read directly):

1. **Quality** on the time-aware split (train before the 80% time quantile, test = later
   ratings of known users, relevant = score >= 4, candidates = all unrated titles):
   NDCG@10 and catalog coverage of the recommender, of popularity and of random.
   ``--rating-ranking`` adds the seed's ranking (by predicted rating alone; slow).
2. **Latency of one user's top-10** vs the seed's approach -- a surprise SVD (default
   parameters) whose ``predict`` is called for every unrated title, then sorted -- as
   medians over several users: ``Recommender.top_items`` (the ranking alone) and
   ``Recommender.recommend`` (plus the rating model's predicted ratings of the 10 titles
   and the DataFrame; with the served blend its KNN terms dominate this figure).
3. **All users**: ``Recommender.recommend_all(10)`` for every known user (median of runs).

Prints the figures and writes ``outputs/reports/bench_ranking.json``. It asserts
nothing about time (shared machines vary); the targets are in the printout.

    .venv/bin/python benchmarks/bench_ranking.py                  # served blend, ~2 min
    .venv/bin/python benchmarks/bench_ranking.py --rating fast    # baseline+SVD rating model
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from _common import load_tables

from recsys_utils.paths import project_paths
from recsys_utils.ranking.evaluation import (
    RATING_MODEL_CHOICES,
    evaluate_ranking,
    jsonable,
    rating_params_for,
    time_split,
)
from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS, train_recommender


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def seed_top10(algo: Any, user: int, candidates: Sequence[str], n: int = 10) -> list[str]:
    """The seed's recommendation: ``predict`` every candidate title one by one, then sort."""
    preds = [(algo.predict(user, item).est, item) for item in candidates]
    preds.sort(key=lambda p: -p[0])
    return [item for _, item in preds[:n]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rating", choices=RATING_MODEL_CHOICES, default="default",
                        help="rating model behind the displayed scores (default: served blend)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--quantile", type=float, default=0.8)
    parser.add_argument("--users", type=int, default=20, help="users timed for one-user latency")
    parser.add_argument("--seed-users", type=int, default=5,
                        help="users timed for the seed's predict loop (slow)")
    parser.add_argument("--rating-ranking", action="store_true",
                        help="also rank by predicted rating alone (one predict per user: slow)")
    args = parser.parse_args(argv)
    model_df, titles, source = load_tables()
    params = rating_params_for(args.rating)
    report: dict[str, Any] = {
        "data": source, "n_ratings": len(model_df), "n_titles": int(titles["item_id"].nunique()),
        "rating_model": args.rating, "ranking_params": DEFAULT_RANKING_PARAMS,
        "seed": args.seed, "k": args.k,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0]},
    }

    # 1. quality on the time-aware split --------------------------------------------
    split = time_split(model_df, args.quantile)
    t0 = time.perf_counter()
    rec = train_recommender(split.train, titles, params, None, args.seed)
    fit_split = time.perf_counter() - t0
    strategies = ["model", "popularity", "random"] + (["rating"] if args.rating_ranking else [])
    res = evaluate_ranking(rec, split.train, split.test, args.k, seed=args.seed,
                           strategies=strategies, by_platform=False)
    m, pop = res.metrics["model"], res.metrics["popularity"]
    report["quality"] = {
        "split": split.summary(), "fit_seconds": fit_split,
        "metrics": {s: {key: res.metrics[s][key] for key in
                        ("ndcg", "ndcg_se", "precision", "recall", "map", "coverage",
                         "novelty", "n_users")} for s in strategies},
        "paired_ndcg_gain_vs_popularity": res.paired["popularity"],
        "ndcg_ratio_vs_popularity": m["ndcg"] / pop["ndcg"],
        "coverage_ratio_vs_popularity": m["coverage"] / pop["coverage"],
    }
    print(f"data: {source}; time split: {split.summary()}")
    print(f"{'strategy':<12}{'NDCG@' + str(args.k):>10}{'(se)':>8}{'coverage':>10}"
          f"{'novelty':>9}")
    for s in strategies:
        r = res.metrics[s]
        print(f"{s:<12}{r['ndcg']:>10.4f}{r['ndcg_se']:>8.4f}{r['coverage']:>10.4f}"
              f"{r['novelty']:>9.2f}")
    gain = res.paired["popularity"]
    print(f"paired NDCG gain vs popularity {gain['gain']:+.4f} (s.e. {gain['gain_se']:.4f}); "
          f"model better for {gain['share_better']:.0%} of users, worse for "
          f"{gain['share_worse']:.0%}")
    print(f"NDCG ratio vs popularity {report['quality']['ndcg_ratio_vs_popularity']:.2f} "
          f"(target >= 1.5); coverage ratio "
          f"{report['quality']['coverage_ratio_vs_popularity']:.2f} (target >= 5)")

    # 2. latency of one user's top-10 on the model trained on everything ----------------
    t0 = time.perf_counter()
    served = train_recommender(model_df, titles, params, None, args.seed)
    fit_all = time.perf_counter() - t0
    from surprise import SVD, Dataset, Reader

    frame = pd.DataFrame({"user": model_df["user"].astype("int64").tolist(),
                          "item": model_df["item"].astype(str).tolist(),
                          "score": model_df["score"].astype("float64")})
    data = Dataset.load_from_df(frame, Reader(rating_scale=(0.5, 5.0)))
    algo = SVD(random_state=args.seed).fit(data.build_full_trainset())
    rng = np.random.default_rng(args.seed)
    users = rng.choice(served.user_ids, size=min(args.users, len(served.user_ids)),
                       replace=False).tolist()
    ranking = [median_seconds(lambda u=u: served.top_items(int(u), args.k), 5) for u in users]
    full = [median_seconds(lambda u=u: served.recommend(int(u), args.k), 5) for u in users]
    rated = model_df.groupby("user")["item"].agg(set)
    catalog = served.item_ids.tolist()
    seed_times = []
    for u in users[: args.seed_users]:
        cands = [i for i in catalog if i not in rated[u]]
        seed_times.append(median_seconds(lambda u=u, c=cands: seed_top10(algo, int(u), c), 1))
    rank_med, full_med = statistics.median(ranking), statistics.median(full)
    seed_med = statistics.median(seed_times)
    report["latency"] = {
        "users_timed": len(users), "seed_users_timed": len(seed_times),
        "top_items_median_s": rank_med, "recommend_median_s": full_med,
        "seed_predict_loop_median_s": seed_med,
        "speedup_ranking": seed_med / rank_med, "speedup_recommend": seed_med / full_med,
        "fit_all_seconds": fit_all, "model_pickle_mb": len(pickle.dumps(served)) / 1e6,
    }
    print(f"seed's top-{args.k} (surprise SVD predict loop over unrated titles): "
          f"{seed_med * 1e3:.1f} ms per user (median of {len(seed_times)})")
    print(f"top_items (the ranking: EASE scores + top-{args.k}): {rank_med * 1e3:.2f} ms -> "
          f"{seed_med / rank_med:.0f}x faster (target >= 100x)")
    print(f"recommend (+ {args.rating} rating model's predicted ratings + DataFrame): "
          f"{full_med * 1e3:.2f} ms -> {seed_med / full_med:.0f}x faster")

    # 3. every user at once ---------------------------------------------------------
    all_users = median_seconds(lambda: served.recommend_all(args.k), 3)
    report["all_users"] = {"n_users": len(served.user_ids), "seconds": all_users}
    print(f"recommend_all({args.k}) for {len(served.user_ids)} users: {all_users:.3f} s "
          "(target < 1 s)")
    print(f"pickled recommender: {report['latency']['model_pickle_mb']:.1f} MB; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    paths = project_paths().ensure()
    out = paths.reports / "bench_ranking.json"
    out.write_text(json.dumps(jsonable(report), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
