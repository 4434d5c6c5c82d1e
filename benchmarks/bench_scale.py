"""Scaling benchmark: wall time and peak memory of every stage against the number of ratings.

For each size (``--sizes 0.1M,1M``; users = ratings / ``--ratings-per-user``, titles from
``recsys_utils.data.synthetic.default_titles``) it generates a SYNTHETIC rating set fitted
to the real data at hand (``recsys-generate``), then runs each stage in its own process
on a scratch project tree (never the project's ``data/`` or ``outputs/``):

    clean        build_processed on the generated raw files (01)
    model_table  build_model_table from the ratings table
    rating_fit   the served rating model (blend.build_rating_model(...).fit)
    served_fit   train_recommender (rating model + EASE ranking), registered as champion
    topn_all     Recommender.recommend_all(n=10) for every user
    precompute   ranking.precomputed lists (depth 100) for every user, then the in-process
                 cost of one request (500 distinct users): recommend vs the lists
    evaluation   evaluate_split on the time-aware split (04's rating model: the preset's, else fast)
    monitoring   replay_timeline (05's defaults: quarterly, numpy baseline)
    spark        scale_out on ``local[2]`` (driver memory ``SPARK_DRIVER_MEMORY``): Spark
                 cleaning of the raw folder, implicit ALS with fixed parameters
                 (``SPARK_ALS``), top-10 for every user written as partitioned parquet;
                 skipped (recorded with the reason) without Java >= 17 or pyspark

Wall time is measured inside the stage process (the work, not the interpreter start);
peak memory is the stage process's peak RSS (``VmHWM``) or its largest child's, whichever
is larger (``ru_maxrss`` of the process itself would include the forking parent's size).
Then the API: start-up time until ``/health`` answers, p50/p99 at ``--concurrency``
clients on loopback, each request for a *different* user (the per-user cache never
hits; start-up cache warming off), and the server's peak RSS. The exponent of cost
against ratings per stage is fitted in log-log. Output: ``outputs/reports/scale.json``,
``outputs/figures/scaling.png`` and the book fragment (``recsys_utils.run.scaling``).
No timing is asserted; the machine may be shared (the load average is recorded).

    .venv/bin/python benchmarks/bench_scale.py --sizes 0.1M,1M
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from recsys_utils import DEFAULT_SEED
from recsys_utils.paths import project_paths

STAGES = ("clean", "model_table", "rating_fit", "served_fit", "topn_all", "precompute",
          "evaluation", "monitoring", "spark")
SPARK_MASTER = "local[2]"
SPARK_DRIVER_MEMORY = "6g"  # enough for 3 M ratings; in local mode the driver is the executor
SPARK_ALS = {"rank": 10, "reg": 0.1, "alpha": 2.0, "max_iter": 10, "implicit": True}
HOST = "127.0.0.1"


# --------------------------------------------------------------------------- one stage


def _preset(preset: str | None) -> dict[str, Any]:
    """The params file's sections (``{}`` without a preset)."""
    if not preset:
        return {}
    import yaml

    return yaml.safe_load(Path(preset).read_text(encoding="utf-8")) or {}


def _params(preset: str | None) -> tuple[dict | None, dict | None, dict[str, Any]]:
    """``(rating_params, ranking_params, 05 options)`` from a params file (``--preset``, e.g.
    ``notebooks/params_large.yaml``): 03's blend and ranking settings, 05's replay; None:
    the defaults."""
    if not preset:
        return None, None, {}
    data = _preset(preset)
    m = data.get("03_modeling", {}) or {}
    rating = {k: v for k, v in (("components", m.get("blend_components")),
                                ("holdout", m.get("blend_holdout")),
                                ("alpha", m.get("blend_alpha")),
                                ("meta", m.get("blend_meta"))) if v is not None}
    return rating or None, m.get("ranking_params"), data.get("05_monitoring", {}) or {}


def run_stage(stage: str, root: Path, raw: Path, preset: str | None, seed: int) -> dict:
    """Run one stage on the scratch tree ``root``; return its figures (wall time inside)."""
    import pandas as pd

    from recsys_utils.data.cleaning import build_model_table, build_processed, load_processed

    paths = project_paths(root)
    rating_params, ranking_params, mon = _params(preset)
    info: dict[str, Any] = {}
    started = time.perf_counter()
    if stage == "spark":  # reads the raw folder itself, not the pandas tables
        info = _spark(root, raw, seed)
        started = time.perf_counter() - info["seconds"]
    elif stage == "clean":
        got = build_processed(raw_dir=raw, source="streaming", paths=paths, verbose=False)
        totals = got.accounting.totals()
        info = {"rows_read": totals.read, "rejected": totals.rejected}
    elif stage == "model_table":
        ratings = pd.read_parquet(paths.processed / "ratings.parquet")
        started = time.perf_counter()  # the build, not the read
        info = {"rows": len(build_model_table(ratings))}
    else:
        data = load_processed(paths)
        model, titles = data.model, data.titles
        started = time.perf_counter()
        if stage == "rating_fit":
            from recsys_utils.rating.blend import build_rating_model

            rating = build_rating_model(rating_params, seed=seed, titles=titles).fit(model)
            info = {"components": sorted(getattr(rating, "components", {}) or {})}
        elif stage == "topn_all":
            from recsys_utils.lifecycle.registry import load_champion

            rec, _ = load_champion(paths)
            started = time.perf_counter()
            lists = rec.recommend_all(n=10)
            info = {"users": len(lists)}
        elif stage == "precompute":
            info = _precompute(paths, seed)
            started = time.perf_counter() - info["seconds"]
        elif stage == "evaluation":
            from recsys_utils.ranking.evaluation import (
                evaluate_split,
                rating_params_for,
                time_split,
            )

            choice = (_preset(preset).get("04_evaluation") or {}).get("rating_model", "fast")
            got = evaluate_split(time_split(model, 0.8), titles,
                                 rating_params=rating_params_for(choice),
                                 ranking_params=ranking_params, seed=seed)
            info = {"rating_model": choice, "summary": _plain(got.to_dict().get("ranking", {}))}
        elif stage == "spark":
            info = _spark(root, raw, seed)
            started = time.perf_counter() - info["seconds"]
        elif stage == "monitoring":
            from recsys_utils.lifecycle.monitoring import replay_timeline

            replay = replay_timeline(model, period=mon.get("period", "Q"),
                                     start=mon.get("start_period", "2005Q1"),
                                     model=mon.get("replay_model", "baseline"), seed=seed)
            table = replay.table() if callable(replay.table) else replay.table
            info = {"periods": len(table)}
        else:
            raise SystemExit(f"error: unknown stage {stage!r}")
    info["seconds"] = round(time.perf_counter() - started, 3)
    return info


def _process_tree_rss(pid: int) -> dict[int, tuple[float | None, float | None]]:
    """(current RSS, peak RSS) in MB of ``pid`` and all its descendants still alive."""
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        now, hwm = _rss_mb(p)
        if hwm is not None:
            found[p] = (now, hwm)
        try:
            todo += [int(c) for t in Path(f"/proc/{p}/task").iterdir()
                     for c in (t / "children").read_text().split()]
        except OSError:
            pass
    return found


def _process_tree_hwm(pid: int) -> dict[int, float]:
    """Peak RSS (VmHWM, MB) of ``pid`` and all its descendants still alive."""
    return {p: hwm for p, (_, hwm) in _process_tree_rss(pid).items()}


def _cpu_s(pid: int) -> float:
    """CPU seconds of a live process and of the children it has waited for (/proc stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _spark(root: Path, raw: Path, seed: int) -> dict:
    """The Spark stage: cleaning, implicit ALS fit, top-10 for all users (seconds each) and
    the JVM's peak RSS, read before the session stops (the JVM is this process's child
    but is never waited for, so ``RUSAGE_CHILDREN`` would miss it)."""
    from recsys_utils.ranking.catalog import Catalog
    from recsys_utils.scale_out import als as sals
    from recsys_utils.scale_out.cleaning import clean_on_spark
    from recsys_utils.scale_out.session import SparkSettings, spark_session, spark_unavailable

    problem = spark_unavailable()
    if problem:
        return {"skipped": problem, "seconds": 0.0}
    import pandas as pd

    from recsys_utils.schema import cast_titles

    paths = project_paths(root)
    settings = SparkSettings(master=SPARK_MASTER, driver_memory=SPARK_DRIVER_MEMORY)
    params = sals.AlsParams(rank=SPARK_ALS["rank"], reg=SPARK_ALS["reg"],
                            alpha=SPARK_ALS["alpha"], max_iter=SPARK_ALS["max_iter"])
    t0 = time.perf_counter()
    with spark_session(settings) as spark:
        session_s = time.perf_counter() - t0
        t = time.perf_counter()
        out = root / "scale_out"
        cleaning = clean_on_spark(spark, raw, source="streaming", output_dir=out, paths=paths)
        clean_s = time.perf_counter() - t
        t = time.perf_counter()
        titles = cast_titles(pd.read_parquet(cleaning.written["titles"]))
        catalog = Catalog(titles)
        catalog_frame = sals.index_frame(spark, catalog).cache()
        model = spark.read.parquet(str(cleaning.written["model"])).cache()
        fitted = sals.fit_als(model, catalog_frame, params, implicit=True, seed=seed)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        written = sals.write_top_n(fitted, model, catalog, catalog_frame, out / "top_n", n=10)
        top_s = time.perf_counter() - t
        n_users = fitted.userFactors.count()
        tree = _process_tree_hwm(os.getpid())
        jvm = spark.sparkContext._gateway.proc.pid  # the local-mode driver (= executor) JVM
        jvm_hwm = tree.get(jvm)
        # the JVM and its Python workers are never waited for: wait4 misses their CPU
        untracked_cpu = sum(_cpu_s(p) for p in tree if p != os.getpid())
    total = time.perf_counter() - t0
    return {"seconds": round(total, 3), "master": SPARK_MASTER,
            "driver_memory": SPARK_DRIVER_MEMORY, "als": SPARK_ALS,
            "note": "local mode: the driver is the executor (one JVM, a child of the stage "
                    "process); Python workers are the JVM's children",
            "session_seconds": round(session_s, 3), "clean_seconds": round(clean_s, 3),
            "als_fit_seconds": round(fit_s, 3), "top_n_seconds": round(top_s, 3),
            "n_ratings_model": cleaning.n_model, "users_ranked": int(n_users),
            "top_n_mb": round(sum(f.stat().st_size for f in Path(written).rglob("*.parquet"))
                              / 2**20, 2),
            "jvm_peak_rss_mb": jvm_hwm, "untracked_cpu_s": round(untracked_cpu, 2),
            "python_workers_peak_rss_mb": max((v for p, v in tree.items()
                                               if p not in (jvm, os.getpid())), default=None),
            "tree_peak_rss_sum_mb": round(sum(tree.values()), 1),
            "children_peak_rss_mb": max((v for p, v in tree.items() if p != os.getpid()),
                                        default=0.0)}


def _precompute(paths: Any, seed: int, n_requests: int = 500) -> dict:
    """Lists for every user (timed), then per-request latency of both paths (one thread)."""
    from recsys_utils.lifecycle.registry import load_champion
    from recsys_utils.ranking.precomputed import precompute_lists, recommend_precomputed

    rec, _ = load_champion(paths)
    started = time.perf_counter()
    lists = precompute_lists(rec)
    seconds = time.perf_counter() - started
    users = np.random.default_rng(seed).permutation(rec.user_ids)[:n_requests].tolist()
    cost = {}
    for name, call in (("recommend", lambda u: rec.recommend(u, 10)),
                       ("precomputed", lambda u: recommend_precomputed(rec, lists, u, 10))):
        lat = []
        for u in users:
            t0 = time.perf_counter()
            call(int(u))
            lat.append((time.perf_counter() - t0) * 1000)
        cost[name] = {"p50_ms": round(float(np.percentile(lat, 50)), 3),
                      "p99_ms": round(float(np.percentile(lat, 99)), 3)}
    return {"seconds": round(seconds, 3), "lists_mb": round(lists.nbytes / 2**20, 1),
            "request_ms": cost, "requests": len(users)}


def _plain(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)[:200]


def _served_fit(root: Path, preset: str | None, seed: int, with_lists: bool = False) -> dict:
    from recsys_utils.data.cleaning import load_processed
    from recsys_utils.fingerprint import data_fingerprint
    from recsys_utils.lifecycle.registry import register_model
    from recsys_utils.ranking.recommender import train_recommender

    paths = project_paths(root)
    rating_params, ranking_params, _ = _params(preset)
    data = load_processed(paths)
    started = time.perf_counter()
    rec = train_recommender(data.model, data.titles, rating_params, ranking_params, seed=seed)
    fit_s = time.perf_counter() - started
    lists_s = None
    if with_lists:  # precomputed top-N lists, written with the model (ranking.precomputed)
        from recsys_utils.ranking.precomputed import attach_precomputed

        t0 = time.perf_counter()
        attach_precomputed(rec)
        lists_s = round(time.perf_counter() - t0, 3)
    t1 = time.perf_counter()
    # the blend's large-data rule: what it left out, recorded with the model
    excluded = dict(getattr(rec.rating_model, "excluded_components_", {}) or {})
    version = register_model(rec, params={"rating_params": rating_params,
                                          "ranking_params": ranking_params, "seed": seed,
                                          "preset": preset, "excluded_components": excluded},
                             metrics={}, data_fingerprint=data_fingerprint(data.model),
                             paths=paths, notes="bench_scale (synthetic data)")
    model_file = next((p for p in (paths.models / version).glob("*") if p.suffix in
                       (".pkl", ".joblib", ".pickle")), None)
    return {"seconds": round(fit_s, 3), "register_seconds": round(time.perf_counter() - t1, 3),
            "precompute_lists_seconds": lists_s,
            "model_mb": round(model_file.stat().st_size / 2**20, 1) if model_file else None,
            "ease_titles": int(len(getattr(rec, "_ease_cols", []))), "version": version,
            "excluded_components": excluded}


def _child_main(args: argparse.Namespace) -> int:
    """Internal: run ``--stage`` in this process and write its figures to ``--result``."""
    base_rss = _rss_mb(os.getpid())[0] or 0.0
    root, raw = Path(args.root), Path(args.raw)
    if args.stage == "served_fit":
        info = _served_fit(root, args.preset, args.seed, with_lists=args.lists)
    else:
        info = run_stage(args.stage, root, raw, args.preset, args.seed)
    info["rss_before_mb"] = round(base_rss, 1)
    # Peak RSS of this process (VmHWM: reset at exec, unlike ru_maxrss, which keeps the
    # forking parent's size) and of any child it waited for (n_jobs workers).
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    children = max(children, info.pop("children_peak_rss_mb", 0.0) or 0.0)  # e.g. Spark's JVM
    info["peak_rss_mb"] = max(_rss_mb(os.getpid())[1] or 0.0, round(children, 1))
    Path(args.result).write_text(json.dumps(info), encoding="utf-8")
    return 0


def measure_stage(stage: str, root: Path, raw: Path, preset: str | None, seed: int,
                  timeout_s: float, with_lists: bool = False) -> dict:
    """Run a stage in a child process; add its peak RSS (children included) and status."""
    result = root / f".stage-{stage}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--root", str(root),
           "--raw", str(raw), "--result", str(result), "--seed", str(seed)]
    if preset:
        cmd += ["--preset", preset]
    if with_lists:
        cmd += ["--lists"]
    env = {**os.environ, "RECSYS_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err_file = proc.stderr
    deadline = started + timeout_s
    status, usage = None, None
    while status is None:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status, usage = st, ru
        elif time.perf_counter() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
        else:
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out: dict[str, Any] = {"wall_with_startup_s": round(time.perf_counter() - started, 2),
                           "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}
    if proc.returncode == 0 and result.is_file():
        out.update(json.loads(result.read_text(encoding="utf-8")))
        # CPU of processes the stage started but never waited for (Spark's JVM)
        out["cpu_s"] = round(out["cpu_s"] + out.get("untracked_cpu_s", 0.0), 2)
        out["ok"] = True
    else:
        err = err_file.read().decode(errors="replace") if err_file else ""
        out["ok"] = False
        out["error"] = (f"exit {proc.returncode}" + (" (timeout)" if time.perf_counter() >
                                                     deadline else "")
                        + ": " + err.strip().splitlines()[-1][:300] if err.strip() else "")
    return out


# --------------------------------------------------------------------------- the API


def _rss_mb(pid: int) -> tuple[float | None, float | None]:
    """(current RSS, peak RSS) of a process in MB from /proc (None when unreadable)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None, None
    vals = {line.split(":")[0]: line.split()[1] for line in status.splitlines()
            if line.startswith(("VmRSS", "VmHWM"))}
    return (round(int(vals["VmRSS"]) / 1024, 1) if "VmRSS" in vals else None,
            round(int(vals["VmHWM"]) / 1024, 1) if "VmHWM" in vals else None)


def _tree_rss_mb(pid: int) -> float | None:
    """Current RSS (MB) of ``pid`` and its live descendants (a multi-worker server)."""
    tree = _process_tree_rss(pid)
    return round(sum(now or 0.0 for now, _ in tree.values()), 1) if tree else None


def measure_api(root: Path, requests: int, concurrency: int, seed: int,
                workers: int = 1) -> dict:
    """Start the API on ``root`` (``workers`` processes); time start-up; load it with
    distinct users; its RSS (with several workers: the sum over the process tree)."""
    import bench_load
    import httpx
    import pandas as pd

    users = pd.read_parquet(project_paths(root).processed / "model.parquet",
                            columns=["user"])["user"].unique()
    rng = np.random.default_rng(seed)
    users = rng.permutation(np.sort(users))
    n = min(requests, len(users))
    urls = [f"/users/{int(u)}/recommendations?n=10" for u in users[:n]]
    warm = [f"/users/{int(u)}/recommendations?n=10" for u in users[n:n + 20]] or urls[:4]
    serve = shutil.which("recsys-serve", path=str(Path(sys.executable).parent)) or "recsys-serve"
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    cmd = [serve, "--host", HOST, "--port", str(port), "--root", str(root), "--log-level",
           "warning", "--no-access-log", "--warm-seconds", "0", "--workers", str(workers)]
    env = {**os.environ, "RECSYS_ROOT": str(root)}
    started = time.perf_counter()
    proc = bench_load.start_server(cmd, port, env, timeout_s=600)
    startup = time.perf_counter() - started
    try:
        rss_start = _tree_rss_mb(proc.pid)
        base = f"http://{HOST}:{port}"
        asyncio.run(bench_load._load(base, warm, 4, 120))
        cpu0 = bench_load._cpu_seconds(proc.pid)
        got = asyncio.run(bench_load._load(base, urls, concurrency, 300))
        got["server_cpu_ms_per_request"] = round(
            (bench_load._cpu_seconds(proc.pid) - cpu0) / max(got["requests_done"], 1) * 1000, 3)
        rss_now = _tree_rss_mb(proc.pid)
        rss_peak = round(sum(_process_tree_hwm(proc.pid).values()), 1) or None
        health = httpx.get(f"{base}/health", timeout=10).json()
    finally:
        bench_load.stop_server(proc)
    got.update({"startup_seconds": round(startup, 2), "server_rss_start_mb": rss_start,
                "server_rss_mb": rss_now, "server_peak_rss_mb": rss_peak,
                "distinct_users": n, "cache": health.get("recommendation_cache"),
                "workers": workers})
    return got


# --------------------------------------------------------------------------- report


def figure(report: dict, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(report["runs"], key=lambda r: r["n_ratings"])
    if len(runs) < 1:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = [r["n_ratings"] for r in runs]
    for stage in report["stage_order"]:
        for ax, key in zip(axes, ("seconds", "peak_rss_mb"), strict=True):
            y = [r["stages"].get(stage, {}).get(key) if r["stages"].get(stage, {}).get("ok")
                 else None for r in runs]
            pts = [(a, b) for a, b in zip(x, y, strict=True) if b]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=stage)
    api = [(r["n_ratings"], r["api"]["latency_ms"]["p99"]) for r in runs
           if r.get("api") and r["api"].get("latency_ms", {}).get("p99")]
    if api:
        axes[0].plot(*zip(*[(a, b / 1000) for a, b in api], strict=True), marker="s",
                     linestyle="--", color="black", label="API p99 (s)")
    for ax, label in zip(axes, ("wall time (s)", "peak RSS (MB)"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("ratings (synthetic)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Cost per stage against data size, synthetic data, "
                 f"{report['machine']['name']}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _machine() -> dict:
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {"name": platform.node(), "cpus": os.cpu_count(), "memory_gb": mem,
            "platform": platform.platform(), "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.1M,1M", help="ratings per run, e.g. 0.1M,1M,3M")
    parser.add_argument("--ratings-per-user", type=float, default=100.0,
                        help="users = ratings / this (100: ~100 k users at 10 M)")
    parser.add_argument("--stages", default=",".join(STAGES), help="subset of " + ",".join(STAGES))
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--requests", type=int, default=1000, help="API requests (distinct users)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--api-workers", type=int, default=1,
                        help="API worker processes (each holds its own model copy)")
    parser.add_argument("--preset", default=None,
                        help="a params file with a bench_scale section (rating_params, "
                             "ranking_params), e.g. notebooks/params_large.yaml")
    parser.add_argument("--source", choices=["processed", "embedded"], default="processed",
                        help="real data the generator fits (default: the processed tables)")
    parser.add_argument("--lists", action="store_true",
                        help="register the served model with precomputed top-N lists "
                             "(ranking.precomputed; the API uses them when present)")
    parser.add_argument("--api-root", default=None,
                        help="only load-test the API on this scratch tree of an earlier run "
                             "(--work-dir ... r<ratings>) and print the figures as JSON")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--work-dir", default=None,
                        help="scratch folder (default: a temporary folder, removed after)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per stage, seconds")
    parser.add_argument("--out", default=None, help="default outputs/reports/scale.json")
    parser.add_argument("--note", default="", help="recorded in the report (e.g. contention)")
    # internal: one stage in a child process
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--raw", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        return _child_main(args)
    if args.api_root:
        got = measure_api(Path(args.api_root), args.requests, args.concurrency, args.seed,
                          args.api_workers)
        print(json.dumps({"root": args.api_root, "api": got, "load": os.getloadavg()}))
        return 0

    from recsys_utils.atomic import atomic_write_text
    from recsys_utils.data import synthetic
    from recsys_utils.run.scaling import (
        FIGURE_NAME,
        REPORT_NAME,
        extrapolate,
        fit_exponents,
        write_scaling_fragment,
    )

    paths = project_paths()
    sizes = [synthetic.parse_count(s) for s in args.sizes.split(",") if s.strip()]
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        print(f"error: unknown stages {unknown}; valid: {','.join(STAGES)}", file=sys.stderr)
        return 2
    preset = str(Path(args.preset).resolve()) if args.preset else None
    source = synthetic.load_source(args.source)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    runs = []
    try:
        for n in sizes:
            root = work / f"r{n}"
            shutil.rmtree(root, ignore_errors=True)
            project_paths(root).ensure()
            raw = root / "raw"
            users = max(1, round(n / args.ratings_per_user))
            print(f"== {n:,} ratings, {users:,} users: generating ...", flush=True)
            gen = synthetic.generate(raw, n, n_users=users, seed=args.seed, source=source)
            run: dict[str, Any] = {
                "n_ratings": gen.n_ratings, "n_users": gen.n_users, "n_titles": gen.n_titles,
                "generate_seconds": round(gen.seconds, 1), "fingerprint": gen.fingerprint,
                "raw_mb": round(sum(p.stat().st_size for p in raw.rglob("*.csv")) / 2**20, 1),
                "stages": {}, "load_before": os.getloadavg()}
            print(f"   generated in {gen.seconds:.1f} s ({gen.n_titles:,} titles, "
                  f"{run['raw_mb']} MB)", flush=True)
            for stage in stages:
                got = measure_stage(stage, root, raw, preset, args.seed, args.timeout,
                                    with_lists=args.lists)
                if got.get("skipped"):  # one clear line, recorded as skipped
                    got["ok"] = False
                    got["error"] = f"skipped: {got['skipped']}"
                run["stages"][stage] = got
                print(f"   {stage:<12} {got.get('seconds', '-'):>9} s  peak "
                      f"{got.get('peak_rss_mb', '-')!s:>8} MB  {'ok' if got['ok'] else got['error']}",
                      flush=True)
            if not args.skip_api and run["stages"].get("served_fit", {}).get("ok"):
                try:
                    run["api"] = measure_api(root, args.requests, args.concurrency, args.seed,
                                             args.api_workers)
                    a = run["api"]
                    print(f"   api: start {a['startup_seconds']} s, p50 "
                          f"{a['latency_ms']['p50']} ms, p99 {a['latency_ms']['p99']} ms, "
                          f"{a['throughput_rps']} req/s, RSS {a['server_rss_mb']} MB", flush=True)
                except (SystemExit, OSError) as exc:
                    run["api"] = {"error": str(exc)[:300]}
                    print(f"   api: failed: {exc}", flush=True)
            run["load_after"] = os.getloadavg()
            runs.append(run)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)

    exps = {m: fit_exponents(runs, m) for m in ("seconds", "cpu_s", "peak_rss_mb")}
    biggest = max(runs, key=lambda r: r["n_ratings"])
    targets = [t for t in (3_000_000, 10_000_000) if t > biggest["n_ratings"]]
    report = {
        "what": "wall time (inside the stage process) and peak RSS (stage process and its "
                "children) per stage; API with distinct users (cache defeated)",
        "synthetic": True,
        "source": source[2],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": _machine(),
        "contention_note": args.note,
        "preset": args.preset,
        "precomputed_lists": args.lists,
        "ratings_per_user": args.ratings_per_user,
        "stage_order": stages,
        "runs": runs,
        "exponents": exps,
    }
    if targets and len(runs) >= 2:
        report["extrapolation"] = {
            "note": f"cost at larger sizes = the {biggest['n_ratings']:,}-rating figure x "
                    "(size ratio)^(fitted exponent); not measured",
            "targets": targets,
            **{m: {s: [None if (v := extrapolate(biggest["stages"][s].get(m),
                                                 biggest["n_ratings"], t, exps[m].get(s)))
                        is None else round(v, 1) for t in targets]
                   for s in stages if biggest["stages"].get(s, {}).get("ok")}
               for m in exps},
        }
    out = Path(args.out) if args.out else paths.reports / REPORT_NAME
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    default_out = out.resolve() == (paths.reports / REPORT_NAME).resolve()
    # the book shows the default report; another --out gets its own figure, no fragment
    fig = figure(report, paths.figures / (FIGURE_NAME if default_out else f"{out.stem}.png"))
    if default_out:
        write_scaling_fragment(paths)
    print(f"exponents (wall time): {exps['seconds']}")
    print(f"exponents (CPU time): {exps['cpu_s']}")
    print(f"exponents (peak memory): {exps['peak_rss_mb']}")
    print(f"wrote {out}" + (f" and {fig}" if fig else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
