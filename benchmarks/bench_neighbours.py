"""User-user similarity: exact (``pearson_baseline_sparse``) against bounded
(``pearson_baseline_topk``), time and peak memory as users grow.

Generates one SYNTHETIC rating set (``recsys_utils.data.synthetic``, fitted to the real
data at hand; ``--ratings-per-user`` ratings per user on average) for the largest user
count, then for each count takes that many users and computes both similarity matrices,
each in its own process (peak RSS = that process's ``VmHWM``). This is the evidence for
``blend.USER_NEIGHBOURS_MAX_USERS`` and the large preset's ``max_neighbours``. It prints
what it measured and asserts nothing.

    .venv/bin/python benchmarks/bench_neighbours.py --users 1000,2500,5000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from recsys_utils import DEFAULT_SEED


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child(model_file: str, n_users: int, kind: str, max_neighbours: int) -> dict:
    from surprise import BaselineOnly

    from recsys_utils.rating.adapter import TrainIndex, trainset_from_frame
    from recsys_utils.rating.predictors import pearson_baseline_sparse, pearson_baseline_topk

    model = pd.read_parquet(model_file)
    model = model[model["user"] <= n_users]
    trainset = trainset_from_frame(model)
    base = BaselineOnly(verbose=False).fit(trainset)
    index = TrainIndex.from_trainset(trainset)
    before = _peak_mb()
    started = time.perf_counter()
    if kind == "exact":
        sim = pearson_baseline_sparse(index, True, base.bu, base.bi, 1, 100)
    else:
        sim = pearson_baseline_topk(index, True, base.bu, base.bi, 1, 100,
                                    max_neighbours=max_neighbours)
    seconds = time.perf_counter() - started
    return {"users": trainset.n_users, "ratings": len(model), "kind": kind,
            "seconds": round(seconds, 2), "peak_rss_mb": round(_peak_mb(), 1),
            "rss_before_mb": round(before, 1), "nnz": int(sim.nnz),
            "matrix_mb": round((sim.data.nbytes + sim.indices.nbytes + sim.indptr.nbytes)
                               / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="1000,2500,5000")
    parser.add_argument("--ratings-per-user", type=int, default=100)
    parser.add_argument("--max-neighbours", type=int, default=200)
    parser.add_argument("--kinds", default="exact,bounded")
    parser.add_argument("--source", choices=["processed", "embedded"], default="processed")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        model_file, n, kind, m = args.child
        print(json.dumps(_child(model_file, int(n), kind, int(m))))
        return 0

    from recsys_utils.data import synthetic
    from recsys_utils.data.cleaning import build_model_table
    from recsys_utils.data.ratings import read_ratings_files

    counts = sorted(int(synthetic.parse_count(u)) for u in args.users.split(","))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-neighbours-") as tmp:
        raw = Path(tmp) / "raw"
        gen = synthetic.generate(raw, counts[-1] * args.ratings_per_user, n_users=counts[-1],
                                 seed=args.seed, source=args.source)
        got = read_ratings_files(sorted((raw / "ratings").glob("*.csv")), None, root=raw)
        model_file = Path(tmp) / "model.parquet"
        build_model_table(got.ratings).to_parquet(model_file)
        print(f"SYNTHETIC data: {gen.n_ratings:,} ratings, {gen.n_users:,} users, "
              f"{gen.n_titles:,} titles; load avg {os.getloadavg()[0]:.1f}")
        print(f"{'users':>7} {'ratings':>9} {'kind':>8} {'seconds':>8} {'peak MB':>8} "
              f"{'matrix MB':>9} {'entries':>12}")
        for n in counts:
            for kind in args.kinds.split(","):
                out = subprocess.run([sys.executable, __file__, "--child", str(model_file),
                                      str(n), kind, str(args.max_neighbours)],
                                     capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    print(f"{n:>7} {kind:>8} failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(r)
                print(f"{r['users']:>7} {r['ratings']:>9,} {kind:>8} {r['seconds']:>8} "
                      f"{r['peak_rss_mb']:>8} {r['matrix_mb']:>9} {r['nnz']:>12,}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"synthetic": True, "rows": rows,
                                              "max_neighbours": args.max_neighbours},
                                             indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
