"""Spark's start-up, in a process of its own: a JVM that does not start is reported.

The 06 notebook itself is executed, and what it registers and glues checked, by
``test_pipeline_integration``'s small-export run (with the project's default parameters).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from spark_fixtures import require_spark


@pytest.mark.spark
def test_a_jvm_that_does_not_start_is_reported_with_the_end_of_its_log(tmp_path: Path) -> None:
    """The JVM's output goes to a log file (not the notebook); so when it dies at start-up,
    its reason must come back with the error instead of staying in the file. In a process
    of its own: a test worker that already ran Spark keeps its JVM, and getOrCreate would
    reuse it instead of starting one with the bad setting."""
    require_spark()
    log = tmp_path / "spark.log"
    code = ("from pathlib import Path\n"
            "from recsys_utils.scale_out.session import SparkSettings, start_spark\n"
            "try:\n"
            f"    start_spark(SparkSettings(master='local[1]', driver_memory='lots'), Path({str(log)!r}))\n"
            "except RuntimeError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert re.search(r"(?s)Spark did not start.*Invalid maximum heap size", out), out
    assert "Could not create the Java Virtual Machine" in log.read_text(encoding="utf-8")
