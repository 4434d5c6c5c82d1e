"""Neighbour similarity (``predictors.pearson_baseline_sparse``): time and peak memory.

Default: user-user, exact against bounded (``max_neighbours``) as users grow. Generates
one SYNTHETIC rating set (``recsys_utils.data.synthetic``, fitted to the real data at
hand; ``--ratings-per-user`` ratings per user on average) for the largest user count,
then for each count takes that many users and computes both similarity matrices, each in
its own process (peak RSS = that process's ``VmHWM``). This is the evidence for
``blend.USER_NEIGHBOURS_MAX_USERS`` and the large preset's ``max_neighbours``.

``--item-based``: the exact item-item matrix of the real data at hand (the processed
tables, else the embedded MovieLens; what ``knn_item`` computes at every fit), in blocks
of rows (the default) against all rows at once (the baseline: one block), each
``--repeats`` times in a fresh process; wall, user and system CPU, peak RSS, and the
ratio of the medians.

It prints what it measured and asserts nothing.

    .venv/bin/python benchmarks/bench_neighbours.py --users 1000,2500,5000
    .venv/bin/python benchmarks/bench_neighbours.py --item-based --repeats 5
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

import numpy as np
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
    from recsys_utils.rating.predictors import pearson_baseline_sparse

    model = pd.read_parquet(model_file)
    if n_users:
        model = model[model["user"] <= n_users]
    trainset = trainset_from_frame(model)
    base = BaselineOnly(verbose=False).fit(trainset)
    index = TrainIndex.from_trainset(trainset)
    user_based = not kind.startswith("item")
    n = trainset.n_users if user_based else trainset.n_items
    options = {"bounded": {"max_neighbours": max_neighbours},
               "item_at_once": {"block_entries": n * n}}.get(kind, {})
    before, cpu = _peak_mb(), os.times()
    started = time.perf_counter()
    sim = pearson_baseline_sparse(index, user_based, base.bu, base.bi, 1, 100, **options)
    seconds = time.perf_counter() - started
    cpu_after = os.times()
    return {"users": trainset.n_users, "titles": trainset.n_items, "ratings": len(model),
            "kind": kind, "seconds": round(seconds, 2),
            "user_s": round(cpu_after.user - cpu.user, 2),
            "system_s": round(cpu_after.system - cpu.system, 2),
            "peak_rss_mb": round(_peak_mb(), 1),
            "rss_before_mb": round(before, 1), "nnz": int(sim.nnz),
            "matrix_mb": round((sim.data.nbytes + sim.indices.nbytes + sim.indptr.nbytes)
                               / 2**20, 1)}


def _run_child(model_file: Path, n: int, kind: str, max_neighbours: int) -> dict | None:
    out = subprocess.run([sys.executable, __file__, "--child", str(model_file), str(n), kind,
                          str(max_neighbours)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"{kind} failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _item_based(repeats: int) -> list[dict]:
    from _common import load_tables

    model, _, source = load_tables()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-neighbours-") as tmp:
        model_file = Path(tmp) / "model.parquet"
        model.to_parquet(model_file)
        print(f"real data ({source}): {len(model):,} ratings; load avg "
              f"{os.getloadavg()[0]:.1f}")
        print(f"{'kind':>13} {'titles':>7} {'seconds':>8} {'user s':>7} {'system s':>8} "
              f"{'peak MB':>8} {'entries':>11}")
        for _ in range(repeats):
            for kind in ("item_blocks", "item_at_once"):  # alternated: same machine state
                r = _run_child(model_file, 0, kind, 0)
                if r is None:
                    continue
                rows.append(r)
                print(f"{kind:>13} {r['titles']:>7,} {r['seconds']:>8} {r['user_s']:>7} "
                      f"{r['system_s']:>8} {r['peak_rss_mb']:>8} {r['nnz']:>11,}", flush=True)
    med = {k: float(np.median([r["seconds"] for r in rows if r["kind"] == k]))
           for k in ("item_blocks", "item_at_once") if any(r["kind"] == k for r in rows)}
    if len(med) == 2:
        print(f"median seconds: blocks {med['item_blocks']:.2f}, at once "
              f"{med['item_at_once']:.2f} (x{med['item_at_once'] / med['item_blocks']:.2f})")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="1000,2500,5000")
    parser.add_argument("--ratings-per-user", type=int, default=100)
    parser.add_argument("--max-neighbours", type=int, default=200)
    parser.add_argument("--kinds", default="exact,bounded")
    parser.add_argument("--source", choices=["processed", "embedded"], default="processed")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    parser.add_argument("--item-based", action="store_true",
                        help="item-item on the real data at hand: blocks against all at once")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (--item-based)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        model_file, n, kind, m = args.child
        print(json.dumps(_child(model_file, int(n), kind, int(m))))
        return 0
    if args.item_based:
        rows = _item_based(args.repeats)
        if args.out:
            Path(args.out).write_text(json.dumps({"synthetic": False, "rows": rows}, indent=2)
                                      + "\n", encoding="utf-8")
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
                r = _run_child(model_file, n, kind, args.max_neighbours)
                if r is None:
                    continue
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
