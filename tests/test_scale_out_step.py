"""The scale-out notebook end to end on the fixture project: what it registers is servable.

``make test`` executes 01-05 on the embedded data and re-checks them under nbval; the
``06_scale_out`` notebook itself is executed here, by the pipeline runner (papermill), on
the small fixture project with a one-point ALS grid (most of its cost is Spark's start-up,
whatever the data), and the numbers it glues for the book are checked.

``run_scale_out`` starts and stops its own Spark session, so it runs in a module of its
own (the session of ``test_scale_out``'s module fixture would be stopped under it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from serving_fixture import serving_project
from spark_fixtures import require_spark

from recsys_utils.lifecycle import registry
from recsys_utils.paths import PROJECT_ROOT, project_paths
from recsys_utils.run.book import notebook_glue
from recsys_utils.run.pipeline import run_pipeline

SMALL_GRID = ["spark_master=local[2]", "shuffle_partitions=2", "als_ranks=[4]",
              "als_regs=[0.1]", "als_alphas=[2.0]", "als_max_iter=5"]


@pytest.mark.spark
def test_the_notebook_registers_batch_lists_holding_no_title_the_user_rated(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The lists are evaluated on a holdout, but the registered ones come from the same
    configuration refitted on every rating: a served list never holds a held-out title."""
    require_spark()
    root = tmp_path / "project"
    shutil.copytree(serving_project(tmp_path_factory).root, root)
    shutil.copytree(PROJECT_ROOT / "notebooks", root / "notebooks")
    monkeypatch.setenv("RECSYS_ROOT", str(root))  # the notebook's kernel works here
    paths = project_paths(root)
    champion = registry.champion_version(paths)

    results = run_pipeline(paths=paths, params_file=PROJECT_ROOT / "notebooks" / "params.yaml",
                           overrides=SMALL_GRID, only=["06"])
    assert [r.status for r in results] == ["ran"], results
    glued = notebook_glue(paths.executed_notebooks / "06_scale_out.ipynb")  # what the book shows
    assert glued["scale_status"] == "'ran on local[2]'", glued
    assert glued["scale_cleaning_identical"] == "True"  # Spark's tables == data/processed
    assert glued["scale_metrics_match"] == "True"  # Spark's metrics == ranking.metrics
    # the JVM's own output (log4j, start-up notices) is in its log, not on the book's page
    executed = nbformat.read(paths.executed_notebooks / "06_scale_out.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                      for o in c.outputs if o.output_type == "stream")
    assert "log4j" not in printed and "WARN" not in printed, printed
    assert "log4j" in (paths.outputs / "scale_out" / "spark.log").read_text(encoding="utf-8")

    batches = [v for v in registry.list_versions(paths)
               if registry.is_batch_manifest(registry.read_manifest(v, paths))]
    assert len(batches) == 1
    batch, manifest = registry.load_version(batches[0], paths)
    assert manifest["kind"] == "batch_top_n"
    assert registry.champion_version(paths) == champion  # registered, not promoted

    model = pd.read_parquet(paths.processed / "model.parquet")
    rated = model.assign(item=model["item"].astype(str)).groupby("user")["item"].agg(set)
    lists = batch.top_n.groupby("user")["item"].agg(set)
    assert set(lists.index) == set(rated.index)  # every rating user has a list
    overlap = {int(u): lists[u] & rated[u] for u in lists.index if lists[u] & rated[u]}
    assert overlap == {}, f"{len(overlap)} users' lists hold titles they rated"
    assert batch.top_n.groupby(["user", "platform"]).size().max() == 10


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
