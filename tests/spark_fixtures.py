"""Spark for the tests: a small local session, and a real standalone cluster on loopback.

The cluster is a master and two workers, each a separate process started with the
``spark-class`` script shipped by the pyspark package, on free ports of 127.0.0.1,
with their logs kept in the test's tmp folder and stopped by PID at the end.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recsys_utils.scale_out.session import SparkSettings, spark_unavailable

#: Small and quick: two local cores, few shuffle partitions, no UI.
LOCAL = SparkSettings(master="local[2]", shuffle_partitions=2)


def require_spark() -> None:
    """Skip (with the reason shown by ``-ra``) when Spark cannot run on this machine."""
    problem = spark_unavailable()
    if problem:
        pytest.skip(f"Spark tests need pyspark and Java >= 17: {problem}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check, what: str, logs: list[Path], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2000:]}" for p in logs
                      if p.exists())
    raise RuntimeError(f"timed out waiting for {what}\n{tails}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _master_url(log: Path) -> str | None:
    """``spark://host:port`` from a standalone master's log, once it has started."""
    found = re.search(r"Starting Spark master at (spark://\S+)",
                      log.read_text(errors="replace") if log.exists() else "")
    return found.group(1) if found else None


@dataclass
class StandaloneCluster:
    url: str
    pids: list[int]
    logs: list[Path]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A standalone master and two one-core workers on 127.0.0.1 (free ports)."""
    require_spark()
    tmp = tmp_path_factory.mktemp("spark-cluster")
    env = {**os.environ, "SPARK_HOME": str(spark_home()), "PYSPARK_PYTHON": sys.executable,
           "SPARK_LOG_DIR": str(tmp), "SPARK_WORKER_DIR": str(tmp / "work")}
    procs: list[subprocess.Popen] = []
    logs = [tmp / "master.log", tmp / "worker1.log", tmp / "worker2.log"]
    try:
        procs.append(_start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                             "--port", str(free_port()), "--webui-port", str(free_port())],
                            logs[0], env))
        # The URL from the master's own log: if another process took the port after
        # free_port() found it, Spark binds the next one and says so there.
        _wait_for(lambda: _master_url(logs[0]) is not None, "the master to start", logs)
        url = str(_master_url(logs[0]))
        _wait_for(lambda: _port_open(int(url.rsplit(":", 1)[1])), "the master's port", logs)
        for i in (1, 2):
            procs.append(_start(["org.apache.spark.deploy.worker.Worker", url,
                                 "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                                 "--webui-port", str(free_port()),
                                 "--work-dir", str(tmp / f"work{i}")], logs[i], env))
        _wait_for(lambda: logs[0].read_text(errors="replace").count("Registering worker") >= 2,
                  "two workers to register", logs)
        yield StandaloneCluster(url, [p.pid for p in procs], logs)
    finally:
        for proc in reversed(procs):  # by PID: only what this fixture started
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
