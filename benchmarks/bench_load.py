"""Load benchmark of the recommendation endpoint, against the seed's way of serving.

Starts the real API (``recsys-serve``: uvicorn in a subprocess on a free loopback
port), sends ``--requests`` recommendation requests (default 2,000) with
``--concurrency`` in flight (default 16), and reports throughput, p50/p95/p99
latency, errors and 5xx. Then it does the same, with fewer requests, for the
seed's approach -- a small separate app (defined here, not in the product API)
whose handler re-reads the pickled model and the ratings table on every request
and loops surprise's ``predict`` over every title -- and reports the ratios,
measured in the same run. Figures go to ``outputs/reports/bench_load.json``.

Only 127.0.0.1 is ever contacted; request counts and total time are bounded.
It asserts nothing about time: it prints what it measured and the machine load.

    .venv/bin/python benchmarks/bench_load.py                 # defaults
    .venv/bin/python benchmarks/bench_load.py --requests 500 --seed-requests 48
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import platform
import random
import resource
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from recsys_utils.paths import ProjectPaths, project_paths

HOST = "127.0.0.1"  # loopback only, by design


# --------------------------------------------------------------------------- the seed's app


def train_seed_model(paths: ProjectPaths, out: Path, seed: int = 0) -> Path:
    """The seed's model: a surprise SVD (default parameters) pickled to ``out``."""
    from surprise import SVD, Dataset, Reader

    model = pd.read_parquet(paths.processed / "model.parquet", columns=["user", "item", "score"])
    frame = pd.DataFrame({"user": model["user"].astype("int64").tolist(),
                          "item": model["item"].astype(str).tolist(),
                          "score": model["score"].astype("float64")})
    data = Dataset.load_from_df(frame, Reader(rating_scale=(0.5, 5.0)))
    algo = SVD(random_state=seed).fit(data.build_full_trainset())
    with open(out, "wb") as fh:
        pickle.dump(algo, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return out


def seed_app(paths: ProjectPaths, model_file: Path) -> Any:
    """The seed's serving pattern, reproduced for comparison (NOT the product API).

    Per request: unpickle the surprise model, read the ratings and titles tables,
    call surprise ``predict`` once per title the user has not rated, sort.
    """
    from fastapi import FastAPI

    app = FastAPI(title="seed-style recommender (benchmark only)")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/users/{user_id}/recommendations")
    def recommend(user_id: int, n: int = 10, platforms: str | None = None,
                  type: str | None = None) -> dict[str, Any]:  # noqa: A002 - the seed's name
        with open(model_file, "rb") as fh:
            algo = pickle.load(fh)  # noqa: S301 - written by this benchmark
        ratings = pd.read_parquet(paths.processed / "ratings.parquet")
        titles = pd.read_parquet(paths.processed / "titles.parquet")
        if platforms:
            titles = titles[titles["platform"].isin(platforms.split(","))]
        if type:
            titles = titles[titles["type"] == type]
        seen = set(ratings.loc[ratings["user_id"] == user_id, "item_id"])
        scored = [(algo.predict(user_id, item).est, item)
                  for item in titles["item_id"].unique() if item not in seen]
        scored.sort(reverse=True)
        return {"user_id": user_id,
                "items": [{"item_id": i, "score": round(float(s), 3)} for s, i in scored[:n]]}

    return app


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(cmd: Sequence[str], port: int, env: dict[str, str], timeout_s: float = 120.0
                 ) -> subprocess.Popen[bytes]:
    """Start ``cmd`` and wait until ``/health`` answers 200 (bounded wait)."""
    proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"error: server exited with code {proc.returncode}:\n{err}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop_server(proc)
    raise SystemExit(f"error: server did not answer /health within {timeout_s:.0f} s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# --------------------------------------------------------------------------- load


class RawHTTPConnection:
    """A minimal keep-alive HTTP/1.1 GET client over one loopback connection.

    Why not only httpx: on a 2-core machine the load generator shares the CPUs
    with the server, and httpx's async client spends ~2.5 ms of CPU per request
    (measured), more than the server. This client spends a fraction of that, so
    the latency measured is the server's, not the client's. It reads
    ``Content-Length`` bodies only (what uvicorn sends for JSON responses).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, url: str, timeout: float = 60.0) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        request = f"GET {url} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n"
        self.writer.write(request.encode("ascii"))
        return await asyncio.wait_for(self._read_response(), timeout)

    async def _read_response(self) -> tuple[int, bytes]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip()
                   for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        if "content-length" not in headers:
            raise ConnectionError("response without Content-Length")
        body = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _load(base: str, urls: list[str], concurrency: int, max_seconds: float,
                client_kind: str = "raw") -> dict[str, Any]:
    """Send every URL with ``concurrency`` requests in flight; stop early at ``max_seconds``."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)
    deadline = time.perf_counter() + max_seconds
    host, port = base.removeprefix("http://").rsplit(":", 1)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0) as client:

        async def send_httpx(url: str, _conn: RawHTTPConnection) -> int:
            return (await client.get(url)).status_code

        async def send_raw(url: str, conn: RawHTTPConnection) -> int:
            return (await conn.get(url))[0]

        send = send_raw if client_kind == "raw" else send_httpx

        async def worker() -> None:
            conn = RawHTTPConnection(host, int(port))
            try:
                while time.perf_counter() < deadline:
                    try:
                        url = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    started = time.perf_counter()
                    try:
                        status = await send(url, conn)
                        statuses[status] += 1
                        if status != 200:
                            errors[f"HTTP {status}"] += 1
                    except (httpx.HTTPError, OSError, ConnectionError, ValueError,
                            asyncio.IncompleteReadError, TimeoutError) as exc:
                        errors[type(exc).__name__] += 1
                        await conn.close()
                    latencies.append(time.perf_counter() - started)
            finally:
                await conn.close()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    lat_ms = np.array(latencies) * 1000.0
    done = len(latencies)
    return {
        "requests_planned": len(urls),
        "requests_done": done,
        "stopped_early": done < len(urls),
        "concurrency": concurrency,
        "client": client_kind,
        "seconds": round(elapsed, 3),
        "throughput_rps": round(done / elapsed, 1) if elapsed > 0 else None,
        "latency_ms": {
            "p50": round(float(np.percentile(lat_ms, 50)), 2) if done else None,
            "p95": round(float(np.percentile(lat_ms, 95)), 2) if done else None,
            "p99": round(float(np.percentile(lat_ms, 99)), 2) if done else None,
            "max": round(float(lat_ms.max()), 2) if done else None,
            "mean": round(float(lat_ms.mean()), 2) if done else None,
        },
        "errors": int(sum(errors.values())),
        "errors_by_kind": dict(errors),
        "status_5xx": int(sum(v for k, v in statuses.items() if k >= 500)),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
    }


def request_urls(paths: ProjectPaths, count: int, seed: int, cold_share: float = 0.1,
                 filter_share: float = 0.2) -> list[str]:
    """Recommendation URLs: mostly known users, some unknown (cold start), some filtered."""
    ratings = pd.read_parquet(paths.processed / "ratings.parquet", columns=["user_id"])
    titles = pd.read_parquet(paths.processed / "titles.parquet", columns=["platform"])
    users = np.sort(ratings["user_id"].unique())
    platforms = sorted(titles["platform"].unique())
    rng = random.Random(seed)
    unknown = int(users.max()) + 1
    urls = []
    for _ in range(count):
        if rng.random() < cold_share:
            user = unknown + rng.randrange(1000)
        else:
            user = int(users[rng.randrange(len(users))])
        url = f"/users/{user}/recommendations?n=10"
        if rng.random() < filter_share:
            url += f"&platforms={rng.choice(platforms)}&type=Movie"
        urls.append(url)
    return urls


def _cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of ``pid`` and its children
    (uvicorn's worker processes) read from /proc."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for one in [pid, *map(int, children)]:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")
    return total


def _load_conditions() -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    return {"loadavg_1_5_15": [round(load1, 2), round(load5, 2), round(load15, 2)],
            "cpus": os.cpu_count()}


def run_one(name: str, cmd: list[str], env: dict[str, str], urls: list[str], concurrency: int,
            max_seconds: float, warmup_urls: list[str], client: str = "raw") -> dict[str, Any]:
    """Start one server, warm it up, measure the load phase, stop it."""
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in cmd]
    proc = start_server(cmd, port, env)
    try:
        base = f"http://{HOST}:{port}"
        asyncio.run(_load(base, warmup_urls, min(concurrency, 4), max_seconds, client))
        before = _load_conditions()
        server_cpu, client_cpu = _cpu_seconds(proc.pid), _cpu_seconds()
        result = asyncio.run(_load(base, urls, concurrency, max_seconds, client))
        # CPU per request does not depend on what else runs on the machine,
        # unlike latency: it tells a slow server from a busy machine.
        done = max(result["requests_done"], 1)
        result["server_cpu_ms_per_request"] = round(
            (_cpu_seconds(proc.pid) - server_cpu) / done * 1000, 3)
        result["client_cpu_ms_per_request"] = round((_cpu_seconds() - client_cpu) / done * 1000, 3)
        result["load_before"] = before
        result["load_after"] = _load_conditions()
        health = httpx.get(f"{base}/health", timeout=10).json()
        if "recommendation_cache" in health:  # per worker: the one that answered
            result["recommendation_cache"] = health["recommendation_cache"]
    finally:
        stop_server(proc)
    result["server"] = name
    return result


def _row(name: str, r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    return (f"{name:<26} {r['requests_done']:>6} {r['throughput_rps']:>9} "
            f"{lat['p50']:>8} {lat['p95']:>8} {lat['p99']:>8} {lat['max']:>8} "
            f"{r['errors']:>6} {r['status_5xx']:>4} {r['server_cpu_ms_per_request']:>10}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="project root (default: the repository)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed-requests", type=int, default=160,
                        help="requests for the seed-style server (it is ~100x slower)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="stop a load phase after this long (bounded run)")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="load generator: a minimal keep-alive HTTP/1.1 client (default, "
                             "light on CPU) or httpx's async client")
    parser.add_argument("--workers", type=int, default=1,
                        help="API worker processes (recsys-serve --workers)")
    parser.add_argument("--cache-size", type=int, default=None,
                        help="API recommendation cache (recsys-serve --cache-size; 0 = off)")
    parser.add_argument("--warm-seconds", type=float, default=None,
                        help="API cache warm-up budget (recsys-serve --warm-seconds; 0 = off)")
    parser.add_argument("--skip-seed", action="store_true", help="only the product API")
    parser.add_argument("--uncached-requests", type=int, default=500,
                        help="requests for the API run with its cache off")
    parser.add_argument("--skip-uncached", action="store_true",
                        help="skip the API run with its cache off (--cache-size 0), which "
                             "shows what computing every list costs")
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="JSON report (default outputs/reports/bench_load.json)")
    parser.add_argument("--serve-seed", type=int, default=None, metavar="PORT",
                        help=argparse.SUPPRESS)  # internal: run the seed-style app
    args = parser.parse_args(argv)
    paths = project_paths(args.root)

    if args.serve_seed is not None:
        import tempfile

        import uvicorn

        with tempfile.TemporaryDirectory(prefix="bench-seed-") as tmp:
            model_file = train_seed_model(paths, Path(tmp) / "svd.pkl", args.random_seed)
            uvicorn.run(seed_app(paths, model_file), host=HOST, port=args.serve_seed,
                        log_level="warning", access_log=False)
        return 0

    for needed in (paths.processed / "ratings.parquet", paths.models / "champion.json"):
        if not needed.exists():
            print(f"error: {needed} is missing; run `make pipeline` first", file=sys.stderr)
            return 2
    env = {**os.environ, "RECSYS_ROOT": str(paths.root), "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    urls = request_urls(paths, args.requests, args.random_seed)
    api_cmd = [python, "-m", "recsys_utils.serving.app", "--host", HOST, "--port", "{port}",
               "--log-level", "warning", "--no-access-log", "--workers", str(args.workers)]
    if args.cache_size is not None:
        api_cmd += ["--cache-size", str(args.cache_size)]
    if args.warm_seconds is not None:
        api_cmd += ["--warm-seconds", str(args.warm_seconds)]
    api = run_one(
        "api (state loaded once)", api_cmd,
        env, urls, args.concurrency, args.max_seconds,
        # warm-up (first-request imports, BLAS threads) on a different random draw
        request_urls(paths, min(100, args.requests), args.random_seed + 1000),
        client=args.client)
    results = {"api": api}
    if not args.skip_uncached:
        results["api_uncached"] = run_one(
            "api, cache off", [*api_cmd, "--cache-size", "0"], env,
            urls[: args.uncached_requests], args.concurrency,
            args.max_seconds, request_urls(paths, min(100, args.requests),
                                           args.random_seed + 1000), client=args.client)
    if not args.skip_seed:
        seed_urls = request_urls(paths, args.seed_requests, args.random_seed + 1)
        results["seed"] = run_one(
            "seed (reload per request)",
            [python, str(Path(__file__).resolve()), "--root", str(paths.root),
             "--serve-seed", "{port}"],
            env, seed_urls, args.concurrency, args.max_seconds,
            request_urls(paths, min(4, args.seed_requests), args.random_seed + 1001),
            client=args.client)

    report: dict[str, Any] = {
        "what": "GET /users/{id}/recommendations?n=10 over loopback; users drawn uniformly "
                "(10% unknown: cold start), 20% of requests filtered by platform and type",
        "api_options": {"workers": args.workers, "cache_size": args.cache_size,
                        "warm_seconds": args.warm_seconds, "client": args.client},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "results": results,
        "target_p99_ms": 20.0,
    }
    if "seed" in results:
        s, a = results["seed"], results["api"]
        report["ratios"] = {
            "throughput_api_over_seed": round(a["throughput_rps"] / s["throughput_rps"], 1),
            "p50_seed_over_api": round(s["latency_ms"]["p50"] / a["latency_ms"]["p50"], 1),
            "p99_seed_over_api": round(s["latency_ms"]["p99"] / a["latency_ms"]["p99"], 1),
        }
    out = Path(args.out) if args.out else paths.reports / "bench_load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"concurrency {args.concurrency}, loopback; load avg before/after API run: "
          f"{api['load_before']['loadavg_1_5_15']} / {api['load_after']['loadavg_1_5_15']} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'server':<26} {'reqs':>6} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8} {'errors':>6} {'5xx':>4} {'cpu ms/req':>10}")
    for key, label in (("api", "api (state loaded once)"), ("api_uncached", "api, cache off"),
                       ("seed", "seed (reload per request)")):
        if key in results:
            print(_row(label, results[key]))
    if "ratios" in report:
        r = report["ratios"]
        print(f"api vs seed: {r['throughput_api_over_seed']}x throughput, "
              f"{r['p50_seed_over_api']}x lower p50, {r['p99_seed_over_api']}x lower p99")
    if "recommendation_cache" in api:
        c = api["recommendation_cache"]
        print(f"api cache (one worker): {c['hits']} hits, {c['misses']} misses "
              f"(warm-up included), max size {c['max_size']}")
    print(f"p99 target {report['target_p99_ms']} ms: "
          f"{'met' if api['latency_ms']['p99'] <= 20.0 else 'NOT met'} in this run")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
