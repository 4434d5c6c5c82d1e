"""The Spark path on a real standalone cluster (a master and two workers on loopback)
gives the same results as local mode: cleaning, ALS top-N lists, metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import write_tiny_raw
from ranking_fixtures import synthetic_ratings, synthetic_titles
from spark_fixtures import LOCAL, StandaloneCluster, standalone_cluster  # noqa: F401

from recsys_utils.paths import project_paths
from recsys_utils.ranking.catalog import Catalog
from recsys_utils.ranking.evaluation import last_n_split
from recsys_utils.scale_out.session import SparkSettings, spark_session

pytestmark = pytest.mark.spark


def _run_spark_path(settings: SparkSettings, raw: Path, out: Path) -> dict[str, Any]:
    """Cleaning, ALS, top-N and metrics on ``settings.master``; plain results back."""
    from recsys_utils.scale_out import als
    from recsys_utils.scale_out import evaluation as sev
    from recsys_utils.scale_out.cleaning import clean_on_spark, load_spark_processed

    with spark_session(settings) as spark:
        cleaned = clean_on_spark(spark, raw, source="streaming", output_dir=out,
                                 paths=project_paths(out.parent / "project"))
        split = last_n_split(synthetic_ratings(seed=2), fraction=0.2)
        catalog = Catalog(synthetic_titles())
        frame = als.index_frame(spark, catalog)
        train = spark.createDataFrame(split.train)
        model = als.fit_als(train, frame, als.AlsParams(rank=4, reg=0.1, alpha=5.0, max_iter=5),
                            implicit=True, seed=0)
        lists = als.top_n(model, train, catalog, frame, 5)
        report = sev.ranking_report(lists, spark.createDataFrame(split.test), 5,
                                    sev.item_popularity(train), len(catalog))
        # block managers after the work: the driver's plus one per executor that ran tasks
        executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()
        return {"master": spark.sparkContext.master, "executors": executors,
                "accounting": cleaned.accounting.to_frame(),
                "tables": load_spark_processed(out), "lists": sev.lists_to_dict(lists),
                "report": report}


def test_standalone_cluster_gives_the_results_of_local_mode(
        standalone_cluster: StandaloneCluster, tmp_path: Path) -> None:  # noqa: F811
    raw = write_tiny_raw(tmp_path / "raw")
    on_cluster = _run_spark_path(SparkSettings(master=standalone_cluster.url,
                                               executor_memory="512m", shuffle_partitions=2),
                                 raw, tmp_path / "cluster" / "out")
    # the job ran on the cluster: the master URL, the driver plus an executor per worker
    assert on_cluster["master"] == standalone_cluster.url
    assert on_cluster["executors"] == 3
    assert "Registering worker" in standalone_cluster.logs[0].read_text(errors="replace")
    local = _run_spark_path(LOCAL, raw, tmp_path / "local" / "out")
    pd.testing.assert_frame_equal(on_cluster["accounting"], local["accounting"])
    for name in ("titles", "ratings", "analytics", "model"):
        pd.testing.assert_frame_equal(getattr(on_cluster["tables"], name),
                                      getattr(local["tables"], name))
    assert on_cluster["lists"] == local["lists"] and len(local["lists"]) > 0
    for key, value in local["report"].items():
        assert on_cluster["report"][key] == pytest.approx(value, abs=1e-9, nan_ok=True), key
