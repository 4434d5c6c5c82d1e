"""Building a SparkSession from a master URL and executor settings, and finding Java.

Spark needs a Java runtime (17 or newer for Spark 4) and the ``pyspark`` package
(the ``spark`` extra). :func:`spark_unavailable` says in one line why the Spark step
cannot run on this machine (``None`` when it can), so the notebook reports it instead
of crashing the pipeline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MIN_JAVA", "JavaInfo", "SparkSettings", "find_java", "quiet_pyspark_warnings",
           "spark_session", "spark_unavailable", "start_spark"]

#: Spark 4 runs on Java 17 or newer.
MIN_JAVA = 17


@dataclass(frozen=True)
class JavaInfo:
    """The ``java`` found (``path``), its major version, or why none fits (``problem``)."""

    path: str | None
    major: int | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _java_major(text: str) -> int | None:
    """Major version from ``java -version`` output (``"17.0.15"`` → 17, ``"1.8.0"`` → 8)."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def find_java(min_major: int = MIN_JAVA) -> JavaInfo:
    """The Java runtime Spark would use: ``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        return JavaInfo(None, None, f"no Java runtime found (Spark needs Java >= {min_major}; "
                                    "install e.g. openjdk-17-jre-headless or set JAVA_HOME)")
    try:
        done = subprocess.run([candidate, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return JavaInfo(candidate, None, f"{candidate} -version failed: {exc}")
    major = _java_major(done.stderr + done.stdout)
    if major is None:
        return JavaInfo(candidate, None, f"cannot read the version of {candidate}")
    if major < min_major:
        return JavaInfo(candidate, major, f"Java {major} at {candidate} is too old "
                                          f"(Spark needs Java >= {min_major})")
    return JavaInfo(candidate, major)


def spark_unavailable() -> str | None:
    """Why the Spark step cannot run here (one line), or ``None`` when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -e '.[spark]')"
    java = find_java()
    return java.problem


def quiet_pyspark_warnings() -> None:
    """Silence pyspark's notices about pandas 3 (they do not affect what we use:
    Arrow conversion of numbers, strings and timestamps, checked by the tests)."""
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                            category=FutureWarning)
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated",
                            module="pyspark.*")


# pyspark's notice about pandas 3, repeated by every Python worker (see quiet_pyspark_warnings)
_WORKER_WARNINGS = "ignore:PySpark does not yet fully support pandas:FutureWarning"


@dataclass(frozen=True)
class SparkSettings:
    """Where and how to run: a master URL and the executor settings.

    ``master``: ``local[*]``, ``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://…``.
    ``shuffle_partitions``: ``spark.sql.shuffle.partitions`` (default: 2 per core of a
    local master, Spark's default of 200 elsewhere). ``conf``: any other Spark setting.
    """

    master: str = "local[*]"
    app_name: str = "recsys-scale-out"
    executor_memory: str | None = None
    executor_cores: int | None = None
    driver_memory: str | None = None
    shuffle_partitions: int | None = None
    conf: Mapping[str, Any] = field(default_factory=dict)

    def spark_conf(self) -> dict[str, str]:
        """The settings as Spark configuration keys."""
        out = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
               "spark.sql.session.timeZone": "UTC",
               "spark.executorEnv.PYTHONWARNINGS": _WORKER_WARNINGS,
               "spark.sql.execution.arrow.pyspark.enabled": "true",
               # executors run this interpreter (the project's venv), not the system python
               "spark.pyspark.python": sys.executable,
               "spark.pyspark.driver.python": sys.executable}
        if self.executor_memory:
            out["spark.executor.memory"] = str(self.executor_memory)
        if self.executor_cores:
            out["spark.executor.cores"] = str(int(self.executor_cores))
        if self.driver_memory:
            out["spark.driver.memory"] = str(self.driver_memory)
        partitions = self.shuffle_partitions
        if partitions is None and self.master.startswith("local"):
            partitions = 2 * _local_cores(self.master)
        if partitions is not None:
            out["spark.sql.shuffle.partitions"] = str(int(partitions))
        out.update({str(k): str(v) for k, v in self.conf.items()})
        return out


def _local_cores(master: str) -> int:
    found = re.match(r"local\[(\d+)", master)
    return int(found.group(1)) if found else max(os.cpu_count() or 1, 1)


@contextmanager
def _stderr_into(log: Path | None) -> Iterator[None]:
    """Standard error (file descriptor 2) goes to ``log`` meanwhile: a process started
    here (the JVM) keeps writing there for its whole life. Without ``log``: unchanged."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "wb") as f:
            os.dup2(f.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def start_spark(settings: SparkSettings | None = None, log: Path | None = None) -> Any:
    """A SparkSession for ``settings`` (an existing one is stopped first, so the
    settings are the ones asked for). Raises ``RuntimeError`` naming the problem
    when Java or pyspark is missing.

    ``log``: the file the JVM's own output goes to (its start-up notices, log4j, native
    library probes), instead of the caller's standard error, which in a notebook is the
    notebook's output and so the book's page. A JVM that fails to start is reported with
    the end of this file."""
    problem = spark_unavailable()
    if problem:
        raise RuntimeError(f"Spark cannot run here: {problem}")
    settings = settings or SparkSettings()
    quiet_pyspark_warnings()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
    for key, value in settings.spark_conf().items():
        builder = builder.config(key, value)
    try:
        with _stderr_into(log):
            spark = builder.getOrCreate()
    except Exception as exc:
        if log is None:
            raise
        raise RuntimeError(f"Spark did not start ({exc}); the end of its log {log}:\n"
                           f"{_tail(log)}") from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def spark_session(settings: SparkSettings | None = None, log: Path | None = None
                  ) -> Iterator[Any]:
    """``with spark_session(settings) as spark:`` — stopped on exit (``log``: see
    ``start_spark``)."""
    spark = start_spark(settings, log)
    try:
        yield spark
    finally:
        spark.stop()
