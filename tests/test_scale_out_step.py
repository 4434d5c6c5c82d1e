"""The scale-out step end to end on the fixture project: what it registers is servable.

``run_scale_out`` starts and stops its own Spark session, so it runs in a module of its
own (the session of ``test_scale_out``'s module fixture would be stopped under it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from serving_fixture import serving_project
from spark_fixtures import LOCAL, require_spark

from recsys_utils.lifecycle import registry
from recsys_utils.paths import project_paths


@pytest.mark.spark
def test_the_registered_batch_lists_hold_no_title_the_user_rated(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The lists are evaluated on a holdout, but the registered ones come from the same
    configuration refitted on every rating: a served list never holds a held-out title."""
    require_spark()
    from recsys_utils.scale_out.step import run_scale_out

    shutil.copytree(serving_project(tmp_path_factory).root, tmp_path / "project")
    paths = project_paths(tmp_path / "project")
    result = run_scale_out(LOCAL, k=10, ranks=(4,), regs=(0.1,), alphas=(2.0,), max_iter=5,
                           paths=paths, verbose=False)
    assert result.ran and result.version is not None
    batch, manifest = registry.load_version(result.version, paths)
    assert manifest["kind"] == "batch_top_n"
    assert registry.champion_version(paths) != result.version  # registered, not promoted

    model = pd.read_parquet(paths.processed / "model.parquet")
    rated = model.assign(item=model["item"].astype(str)).groupby("user")["item"].agg(set)
    lists = batch.top_n.groupby("user")["item"].agg(set)
    assert set(lists.index) == set(rated.index)  # every rating user has a list
    overlap = {int(u): lists[u] & rated[u] for u in lists.index if lists[u] & rated[u]}
    assert overlap == {}, f"{len(overlap)} users' lists hold titles they rated"
    assert batch.top_n.groupby(["user", "platform"]).size().max() == 10
