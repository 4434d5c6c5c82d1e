"""What the learned re-ranker costs as the data grows: fit, batch top-N, one request, memory.

For each size (``--sizes 0.1M,1M``) it generates a SYNTHETIC rating set fitted to the real
data at hand (``recsys_utils.data.synthetic.generate``, the streaming raw layout), cleans it
into a scratch project, and measures in a fresh process per step, on the same data:

    ranker       the Recommender without a re-ranker (rating model: the baseline component)
    context      the re-ranker's context on top of it (``rerank.fit_context``: the
                 sequential model, the users' inputs, the titles' monthly counts)
    weights      features and labels of every user's candidates (the latest 20% of each
                 user's ratings as labels) and the logistic fit
    topn_plain   ``recommend_all(10)`` for every user, without the re-ranker
    topn_rerank  the same with it
    request      one user's ``top_items(10)`` (median over 200 users), without / with it

Each row prints wall seconds and the process's peak RSS, and the ratios the re-ranker adds
against the ranker's own figures measured in the same run. Nothing is asserted.

    .venv/bin/python benchmarks/bench_rerank.py --sizes 0.1M,1M
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = ("ranker", "context", "weights", "topn_plain", "topn_rerank", "request")


def run_step(step: str, root: Path, seed: int) -> dict:
    """One step on the scratch project ``root`` (fits what it needs first, untimed)."""
    import numpy as np

    from recsys_utils.data.cleaning import load_processed
    from recsys_utils.paths import project_paths
    from recsys_utils.ranking import rerank
    from recsys_utils.ranking.evaluation import last_n_split, relevant_items
    from recsys_utils.ranking.recommender import Recommender
    from recsys_utils.rating.predictors import make_component

    data = load_processed(project_paths(root))
    model, titles = data.model, data.titles

    def ranker(train):  # noqa: ANN001, ANN202
        return Recommender(seed=seed, rating_model=make_component("baseline", seed=seed)).fit(
            train, titles)

    started = time.perf_counter()
    if step == "ranker":
        rec = ranker(model)
        info = {"users": len(rec.user_ids), "ranked_titles": int(rec._ease_cols.size)}
    elif step == "weights":
        split = last_n_split(model, fraction=0.2)
        rec = ranker(split.train).fit_rerank_context(split.train)
        started = time.perf_counter()
        x, y = rerank.labelled_candidates(rec, relevant_items(split.test))
        rerank.fit_weights(x, y, rerank.DEFAULT_STRUCTURE)
        info = {"candidate_rows": int(y.size)}
    else:
        rec = ranker(model)
        started = time.perf_counter()
        rec.fit_rerank_context(model)
        info = {"months": int(rec._rerank.monthly.shape[1])}
        if step != "context":
            weights = {**rerank.DEFAULT_STRUCTURE, "features": list(rerank.FEATURES),
                       "mean": [0.0] * len(rerank.FEATURES),
                       "scale": [1.0] * len(rerank.FEATURES),
                       "weights": [1.0] + [0.1] * (len(rerank.FEATURES) - 1), "bias": 0.0}
            served = rec.with_reranker(weights)
            started = time.perf_counter()
            if step == "topn_plain":
                rec.recommend_all(10)
            elif step == "topn_rerank":
                served.recommend_all(10)
            else:
                users = rec.user_ids[:: max(1, len(rec.user_ids) // 200)][:200]
                for label, which in (("plain_ms", rec), ("rerank_ms", served)):
                    times = []
                    for u in users.tolist():
                        t = time.perf_counter()
                        which.top_items(int(u), 10)
                        times.append(time.perf_counter() - t)
                    info[label] = round(float(np.median(times)) * 1e3, 3)
    info["seconds"] = round(time.perf_counter() - started, 3)
    info["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1M,1M", help="ratings per run (e.g. 0.1M,1M)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:  # a child: one step, its figures as JSON on stdout
        print(json.dumps(run_step(args.step, Path(args.root), args.seed)))
        return 0

    from recsys_utils.data import synthetic
    from recsys_utils.data.cleaning import build_processed
    from recsys_utils.paths import project_paths

    print("SYNTHETIC data fitted to the real data at hand (recsys_utils.data.synthetic)")
    for size in args.sizes.split(","):
        n = synthetic.parse_count(size)
        work = Path(tempfile.mkdtemp(prefix="bench-rerank-"))
        try:  # a scratch project per size, removed whatever happens
            synthetic.generate(work / "raw", n, seed=args.seed)
            build_processed(raw_dir=work / "raw", source="streaming",
                            paths=project_paths(work), verbose=False)
            rows = {}
            for step in STEPS:
                done = subprocess.run([sys.executable, __file__, "--step", step, "--root",
                                       str(work), "--seed", str(args.seed)],
                                      capture_output=True, text=True, check=False)
                if done.returncode:
                    print(f"{size} {step}: failed\n{done.stderr[-2000:]}")
                    return 1
                rows[step] = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            shutil.rmtree(work, ignore_errors=True)
        ranker = rows["ranker"]
        print(f"\n{n:,} ratings, {ranker['users']:,} users, {ranker['ranked_titles']:,} "
              f"titles in the ranker")
        for step, got in rows.items():
            extra = {k: v for k, v in got.items() if k not in ("seconds", "peak_mb")}
            print(f"  {step:12s} {got['seconds']:8.2f} s  peak {got['peak_mb']:8.0f} MB  {extra}")
        print(f"  context fit / ranker fit: {rows['context']['seconds'] / ranker['seconds']:.2f}x;"
              f" peak memory of the fit with it / without {rows['context']['peak_mb'] / ranker['peak_mb']:.2f}x")
        print(f"  top-N for every user, with / without: "
              f"{rows['topn_rerank']['seconds'] / rows['topn_plain']['seconds']:.2f}x; one "
              f"request {rows['request']['rerank_ms'] / rows['request']['plain_ms']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
