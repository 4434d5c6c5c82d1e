"""Spark path cost against data size: cleaning + ALS fit + top-10 for every user.

For each size, generates the synthetic raw streaming folder (``recsys-generate``, the
scale benchmark's generator), then in one Spark session (``--master``, default
``local[2]``) measures the Spark cleaning, an implicit ALS fit (rank 10, 10 iterations)
and the top-10 lists of every user written as partitioned parquet; prints wall times,
the peak memory of the driver's JVM (resident set, sampled) and of this Python process,
and the cost exponent ``b`` of ``time ~ ratings^b`` between consecutive sizes.

    python benchmarks/bench_spark.py --sizes 100k,1M          # minutes
    python benchmarks/bench_spark.py --sizes 1M,10M --master local[2]   # hours on 2 cores

Prints measured figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from recsys_utils.ranking.catalog import Catalog
from recsys_utils.scale_out import als
from recsys_utils.scale_out.cleaning import clean_on_spark, load_spark_processed
from recsys_utils.scale_out.session import SparkSettings, spark_session, spark_unavailable


def _count(text: str) -> int:
    units = {"k": 1_000, "m": 1_000_000}
    text = text.strip().lower()
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


class _PeakRss:
    """Samples the resident set of the driver's JVM (a child of this process)."""

    def __init__(self) -> None:
        import psutil

        self.peak = 0
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            rss = sum(c.memory_info().rss for c in self._proc.children(recursive=True)
                      if "java" in c.name())
            self.peak = max(self.peak, rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run(size: str, master: str, work: Path) -> dict[str, float]:
    raw = work / f"raw_{size}"
    subprocess.run([sys.executable, "-m", "recsys_utils.data.synthetic", "--ratings", size,
                    "--out", str(raw), "--source", "embedded"], check=True,
                   stdout=subprocess.DEVNULL)
    out = {"ratings": _count(size)}
    with spark_session(SparkSettings(master=master)) as spark:
        jvm = _PeakRss()
        t0 = time.perf_counter()
        cleaned = clean_on_spark(spark, raw, source="streaming", output_dir=work / f"spark_{size}",
                                 paths=None)
        out["clean_s"] = time.perf_counter() - t0
        titles = load_spark_processed(cleaned.output_dir).titles
        catalog = Catalog(titles)
        frame = als.index_frame(spark, catalog).cache()
        model = spark.read.parquet(str(cleaned.written["model"])).cache()
        out["kept_ratings"] = model.count()
        t0 = time.perf_counter()
        fitted = als.fit_als(model, frame, als.AlsParams(rank=10, reg=0.1, alpha=5.0), True)
        out["fit_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        als.write_top_n(fitted, model, catalog, frame, work / f"top_{size}.parquet", 10)
        out["top10_s"] = time.perf_counter() - t0
        out["driver_jvm_peak_mb"] = jvm.stop() / 2**20
    out["python_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["total_s"] = out["clean_s"] + out["fit_s"] + out["top10_s"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k", help="comma-separated sizes (100k,1M,10M)")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    problem = spark_unavailable()
    if problem:
        print(f"Spark benchmark not run: {problem}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        for size in args.sizes.split(","):
            row = run(size.strip(), args.master, Path(tmp))
            rows.append(row)
            print(f"{size:>6} ratings on {args.master}: clean {row['clean_s']:.1f} s, "
                  f"ALS fit {row['fit_s']:.1f} s, top-10 all users {row['top10_s']:.1f} s, "
                  f"total {row['total_s']:.1f} s; driver JVM peak {row['driver_jvm_peak_mb']:.0f} MB, "
                  f"Python peak {row['python_peak_mb']:.0f} MB", flush=True)
    for a, b in zip(rows, rows[1:], strict=False):
        exponent = math.log(b["total_s"] / a["total_s"]) / math.log(b["ratings"] / a["ratings"])
        print(f"cost exponent {a['ratings']:,} -> {b['ratings']:,} ratings: b = {exponent:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
