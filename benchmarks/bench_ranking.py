"""Ranking benchmark: top-N quality vs popularity, and recommendation latency vs the first version.

Measured in one run, on the processed default data (``make pipeline`` first; without it
the embedded MovieLens is read directly):

1. **The choice** of the ranking as ``03_modeling`` makes it (``evaluation.tune_ranking``
   over the default grid, on the per-user validation split of the training window): the
   rival rankers' validation table. With ``--registered`` (and a champion in
   ``outputs/models/``) it checks that every served ranking parameter is the one its
   manifest's validation record chose.
2. **Quality** of that configuration on the headline split, per user and time-aware
   (each user's latest 20% held out, every user; relevant = score >= 4, candidates = all
   unrated titles): NDCG@10 with its standard error, the paired gain over popularity,
   catalog coverage, against popularity and random in the same run; the targets are
   NDCG >= 2.5x and coverage >= 5x popularity's. The global time split is printed after
   it with its user count. ``--rating-ranking`` adds the first version's ranking (slow).
3. **Latency of one user's top-10** vs the first version's approach -- a surprise SVD (default
   parameters) whose ``predict`` is called for every unrated title, then sorted -- as
   medians over several users: ``Recommender.top_items`` (the ranking alone) and
   ``Recommender.recommend`` (plus the rating model's predicted ratings of the 10 titles
   and the DataFrame; with the served blend its KNN terms dominate this figure).
4. **All users**: ``Recommender.recommend_all(10)`` for every known user (median of runs).

Prints the figures and writes ``outputs/reports/bench_ranking.json``. It asserts
nothing about time (shared machines vary); the targets are in the printout.

    .venv/bin/python benchmarks/bench_ranking.py                  # served blend, ~4 min
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
    last_n_split,
    rating_params_for,
    time_split,
    tune_ranking,
)
from recsys_utils.ranking.recommender import train_recommender


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
    parser.add_argument("--holdout", type=float, default=0.2,
                        help="per-user split: each user's latest share of ratings held out")
    parser.add_argument("--registered", action="store_true",
                        help="check the registered champion's ranking against its manifest")
    parser.add_argument("--users", type=int, default=20, help="users timed for one-user latency")
    parser.add_argument("--seed-users", type=int, default=5,
                        help="users timed for the first version's predict loop (slow)")
    parser.add_argument("--rating-ranking", action="store_true",
                        help="also rank by predicted rating alone (one predict per user: slow)")
    args = parser.parse_args(argv)
    model_df, titles, source = load_tables()
    params = rating_params_for(args.rating)
    # 1. the choice, as 03_modeling makes it ----------------------------------------
    t0 = time.perf_counter()
    choice = tune_ranking(model_df, titles, holdout_fraction=args.holdout, k=args.k,
                          seed=args.seed)
    ranking_params = choice.best_params
    report: dict[str, Any] = {
        "data": source, "n_ratings": len(model_df), "n_titles": int(titles["item_id"].nunique()),
        "rating_model": args.rating, "ranking_params": ranking_params,
        "choice": {**choice.record(), "seconds": time.perf_counter() - t0},
        "seed": args.seed, "k": args.k,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0]},
    }
    print(f"data: {source}; validation: {choice.split}")
    print(f"rival rankers on validation ({len(choice.table)} configurations, "
          f"{report['choice']['seconds']:.0f} s):")
    print(choice.rivals.round(4).to_string(index=False))
    print(f"chosen: {choice.record()['rule']}: {ranking_params['ranker']} "
          f"({ranking_params['weighting']}), l2 {ranking_params['l2']}, "
          f"pop_weight {ranking_params['pop_weight']}, recency {ranking_params['recency']}")
    if args.registered:
        report["traceability"] = _check_registered()

    # 2. quality of that configuration: per-user split (headline), time split ----------
    report["quality"] = {}
    strategies = ["model", "popularity", "random"] + (["rating"] if args.rating_ranking else [])
    for name, split in (("per_user", last_n_split(model_df, fraction=args.holdout)),
                        ("time", time_split(model_df, args.quantile))):
        t0 = time.perf_counter()
        rec = train_recommender(split.train, titles, params, ranking_params, args.seed)
        fit_seconds = time.perf_counter() - t0
        res = evaluate_ranking(rec, split.train, split.test, args.k, seed=args.seed,
                               strategies=strategies, by_platform=False)
        m, pop = res.metrics["model"], res.metrics["popularity"]
        gain = res.paired["popularity"]
        q = report["quality"][name] = {
            "split": split.summary(), "fit_seconds": fit_seconds,
            "metrics": {st: {key: res.metrics[st][key] for key in
                             ("ndcg", "ndcg_se", "precision", "recall", "map", "coverage",
                              "novelty", "n_users")} for st in strategies},
            "paired_ndcg_gain_vs_popularity": gain,
            "ndcg_ratio_vs_popularity": m["ndcg"] / pop["ndcg"],
            "coverage_ratio_vs_popularity": m["coverage"] / pop["coverage"],
        }
        title = ("HEADLINE per-user split (each user's latest "
                 f"{args.holdout:.0%} held out)" if name == "per_user"
                 else f"secondary: global time split at the {args.quantile:.0%} quantile")
        print(f"\n{title}: {m['n_users']} test users with a relevant title")
        print(f"{'strategy':<12}{'NDCG@' + str(args.k):>10}{'(se)':>8}{'coverage':>10}"
              f"{'novelty':>9}")
        for st in strategies:
            r = res.metrics[st]
            print(f"{st:<12}{r['ndcg']:>10.4f}{r['ndcg_se']:>8.4f}{r['coverage']:>10.4f}"
                  f"{r['novelty']:>9.2f}")
        print(f"paired NDCG gain vs popularity {gain['gain']:+.4f} (s.e. {gain['gain_se']:.4f}); "
              f"model better for {gain['share_better']:.0%} of users, worse for "
              f"{gain['share_worse']:.0%}")
        targets = " (target >= 2.5)" if name == "per_user" else ""
        print(f"NDCG ratio vs popularity {q['ndcg_ratio_vs_popularity']:.2f}{targets}; "
              f"coverage ratio {q['coverage_ratio_vs_popularity']:.2f}"
              f"{' (target >= 5)' if name == 'per_user' else ''}")
    head = report["quality"]["per_user"]
    report["targets"] = {"ndcg_ratio_ge_2_5": head["ndcg_ratio_vs_popularity"] >= 2.5,
                         "coverage_ratio_ge_5": head["coverage_ratio_vs_popularity"] >= 5}
    print(f"targets met: {report['targets']}")

    # 3. latency of one user's top-10 on the model trained on everything ----------------
    t0 = time.perf_counter()
    served = train_recommender(model_df, titles, params, ranking_params, args.seed)
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
    print(f"top_items (the ranking: {ranking_params['ranker']} scores + top-{args.k}): {rank_med * 1e3:.2f} ms -> "
          f"{seed_med / rank_med:.0f}x faster (target >= 100x)")
    print(f"recommend (+ {args.rating} rating model's predicted ratings + DataFrame): "
          f"{full_med * 1e3:.2f} ms -> {seed_med / full_med:.0f}x faster")

    # 4. every user at once ---------------------------------------------------------
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


def _check_registered() -> dict[str, Any]:
    """Every ranking parameter the champion serves against its manifest's validation record
    (a Spark batch champion: the recommender 04 evaluates instead)."""
    from recsys_utils.lifecycle.registry import load_evaluated

    found = load_evaluated()
    if found is None:
        print("traceability: no recommender registered (run `make pipeline`)")
        return {"champion": None}
    model, manifest = found
    record = manifest["params"].get("tuning", {}).get("ranking", {})
    served = dict(model.ranking_params)
    chosen = record.get("chosen", {})
    untraced = sorted(k for k, v in served.items() if chosen.get(k) != v)
    ok = bool(record.get("validation")) and not untraced
    print(f"traceability: champion {manifest['version']} serves {len(served)} ranking "
          f"parameters; {'all' if ok else 'NOT all'} chosen by its validation record "
          f"(validation NDCG {record.get('validation', {}).get('ndcg', float('nan')):.4f}; "
          f"untraced: {untraced or 'none'})")
    return {"champion": manifest["version"], "all_traced": ok, "untraced": untraced,
            "validation": record.get("validation")}


if __name__ == "__main__":
    raise SystemExit(main())
