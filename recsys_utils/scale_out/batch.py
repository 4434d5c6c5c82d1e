"""The Spark model's batch output as a registry version: precomputed lists, no Spark to serve.

A Spark-trained model is served from what it computed in batch: every user's top-N
(overall and per platform), the similar titles and the factors. ``save_batch`` writes
the factors next to the lists and gathers them in a :class:`BatchRecommendations` (plain
pandas: loading it needs neither Spark nor the training data); ``register_batch``
stores it with the registry's public ``register_model`` — manifest, data fingerprint,
params, metrics, the sha256 of ``model.pkl`` and of every batch file — *without*
promoting it (the API serves the champion ``Recommender``; see the book's scale-out
chapter for what serving these lists needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle.registry import find_version, register_model, sha256_file
from recsys_utils.paths import ProjectPaths

__all__ = ["BatchOutput", "BatchRecommendations", "register_batch", "save_batch"]


@dataclass
class BatchRecommendations:
    """Precomputed lists: ``top_n`` (user, rank, item, score, platform; ``platform="all"``
    for the unfiltered list), ``similar`` (item, rank, similar, similarity) and factors."""

    top_n: pd.DataFrame
    similar: pd.DataFrame
    user_factors: pd.DataFrame
    item_factors: pd.DataFrame

    def recommend(self, user: int, n: int = 10, platform: str | None = None) -> list[str]:
        """The user's precomputed list (on ``platform`` when given); [] for an unknown user
        (the caller's cold-start path answers those)."""
        rows = self.top_n[(self.top_n["user"] == int(user))
                          & (self.top_n["platform"] == (platform or "all"))]
        return rows.sort_values("rank")["item"].head(n).tolist()


@dataclass
class BatchOutput:
    recommendations: BatchRecommendations
    files: dict[str, Path] = field(default_factory=dict)

    def checksums(self, root: Path) -> dict[str, str]:
        """sha256 of every data file of the batch output, by path relative to ``root``."""
        out = {}
        for path in self.files.values():
            parts = sorted(p for p in (path.rglob("*") if path.is_dir() else [path])
                           if p.is_file() and not p.name.startswith((".", "_")))
            out.update({p.relative_to(root).as_posix(): sha256_file(p) for p in parts})
        return out


def save_batch(fitted: Any, catalog: Any, top_n_dir: Path, similar: pd.DataFrame,
               out_dir: Path) -> BatchOutput:
    """Write the factors (and the similar titles) beside the lists; gather all of them."""
    from pyspark.sql import functions as F

    from recsys_utils.scale_out.cleaning import write_parquet_dir

    ids = catalog.index_frame(fitted.itemFactors.sparkSession)
    items = fitted.itemFactors.join(ids, F.col("id") == F.col("idx")).select("item", "features")
    users = fitted.userFactors.select(F.col("id").alias("user"), "features")
    files = {"top_n": top_n_dir,
             "item_factors": write_parquet_dir(items.orderBy("item"),
                                               out_dir / "item_factors.parquet"),
             "user_factors": write_parquet_dir(users.orderBy("user"),
                                               out_dir / "user_factors.parquet"),
             "similar": write_parquet_dir(
                 fitted.itemFactors.sparkSession.createDataFrame(similar),
                 out_dir / "similar.parquet")}
    read = {name: pd.read_parquet(path) for name, path in files.items()}
    top = read["top_n"].sort_values(["platform", "user", "rank"], ignore_index=True)
    top["platform"] = top["platform"].astype(str)
    recs = BatchRecommendations(top_n=top, similar=read["similar"],
                                user_factors=read["user_factors"],
                                item_factors=read["item_factors"])
    return BatchOutput(recs, files)


def register_batch(batch: BatchOutput, train_model: pd.DataFrame, *, params: dict,
                   metrics: dict, paths: ProjectPaths | None = None) -> str:
    """Register the batch output as a version (not promoted); an identical earlier run
    (same data, params, metrics, code) is reused instead. Returns the version name."""
    from recsys_utils.paths import project_paths

    paths = paths or project_paths()
    fingerprint = data_fingerprint(train_model)
    found = find_version(params=params, metrics=metrics, data_fingerprint=fingerprint,
                         paths=paths)
    if found is not None:
        return found
    return register_model(batch.recommendations, params=params, metrics=metrics,
                          data_fingerprint=fingerprint, paths=paths, promote=False,
                          notes="Spark ALS batch top-N lists (06_scale_out); not served",
                          extra={"engine": "spark", "kind": "batch_top_n",
                                 "batch_files": batch.checksums(paths.root)})
