"""Matrix factorization on Spark: ``pyspark.ml`` ALS, top-N for every user, similar titles.

* **Two ALS models.** Explicit ALS fits the scores (its RMSE is comparable with the
  rating models of ``03_modeling``); implicit ALS (Hu, Koren & Volinsky 2008) treats a
  rating as an interaction with confidence ``1 + alpha * score`` and ranks better.
  Rank, regularisation and alpha are chosen on a validation split carved from the
  training part (``evaluation.last_n_split`` again: the test never informs the choice):
  RMSE for the explicit model, NDCG@k for the implicit one.
* **Blocks** (ALS's ``numUserBlocks`` / ``numItemBlocks``) come from the data's size, not
  the machine's (:func:`als_blocks`): they set the factors' initialisation, so the same
  data gives the same model in local mode and on any cluster.
* **Items** get integer ids in sorted ``item_id`` order (ALS needs integers); a tie in
  scores is then broken by the item id, the rule of ``ranking.metrics.top_k``.
* **Top-N for every user** on the executors: user factors stay partitioned, the item
  factors (catalog-sized) travel with the task; each user's rated titles and the
  titles outside the platform/type filter are excluded before ranking. Cost: linear
  in users, times the catalog.
* **Similar titles**: cosine similarity of item factors, the same way on item partitions.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils import DEFAULT_SEED
from recsys_utils.ranking.catalog import Catalog, top_positions
from recsys_utils.scale_out import evaluation as sev
from recsys_utils.scale_out.cleaning import write_parquet_dir

__all__ = ["AlsChoice", "AlsParams", "als_blocks", "als_rmse", "fit_als", "index_frame",
           "similar_titles", "top_n", "tune_als", "write_top_n"]

#: Scores held at once by a worker scoring users (or titles) against every title: blocks
#: of this many cells (32 MB of float64), whatever the Arrow batch size.
_BLOCK_CELLS = 4_000_000

#: Ratings per ALS block. Spark's fixed default, 10 blocks, suits about 10 M ratings; on
#: 100 k its tasks are so small that scheduling them is most of a fit (measured on 2 cores,
#: a 2,400-rating fit: 2.9-4.2 s with 10 blocks, 1.2-2.2 s with 2).
RATINGS_PER_BLOCK = 1_000_000


def als_blocks(n_ratings: int) -> int:
    """ALS's user and item blocks for ``n_ratings``: one per million ratings, at least 2
    (so two cores share a fit); Spark's own 10 at 10 M ratings."""
    return max(2, math.ceil(n_ratings / RATINGS_PER_BLOCK))


@dataclass(frozen=True)
class AlsParams:
    """One ALS setting (``alpha`` is used by the implicit model only; ``blocks``: None
    derives them from the training ratings, :func:`als_blocks`)."""

    rank: int = 10
    reg: float = 0.1
    alpha: float = 1.0
    max_iter: int = 10
    blocks: int | None = None


def index_frame(spark: Any, catalog: Catalog) -> Any:
    """``(item, idx)``: each title's integer index for ALS, its position in the catalog
    (``ranking.catalog.Catalog``, the order every served array follows)."""
    return spark.createDataFrame(
        pd.DataFrame({"item": catalog.item_ids.astype(str), "idx": np.arange(len(catalog))}),
        "item string, idx int")


def _indexed(model: Any, catalog_frame: Any) -> Any:
    """The model table with the integer item index ALS needs."""
    return model.join(catalog_frame, "item").select("user", "item", "idx", "score", "timestamp")


def fit_als(train: Any, catalog_frame: Any, params: AlsParams, implicit: bool,
            seed: int = DEFAULT_SEED) -> Any:
    """A fitted ``pyspark.ml`` ALSModel (users: ``user``; items: ``idx``)."""
    from pyspark.ml.recommendation import ALS

    blocks = params.blocks if params.blocks is not None else als_blocks(train.count())
    als = ALS(rank=params.rank, regParam=params.reg, alpha=params.alpha,
              maxIter=params.max_iter, implicitPrefs=implicit, seed=seed,
              userCol="user", itemCol="idx", ratingCol="score", coldStartStrategy="nan",
              nonnegative=implicit, numUserBlocks=blocks, numItemBlocks=blocks)
    return als.fit(_indexed(train, catalog_frame))


def als_rmse(fitted: Any, train: Any, test: Any, catalog_frame: Any) -> dict[str, float]:
    """RMSE/MAE of explicit ALS on ``test``; users or titles it never saw get the
    training mean (as the rating models fall back to a baseline), estimates clipped to
    the 0.5-5 scale."""
    from pyspark.sql import functions as F

    mean = train.agg(F.avg("score")).collect()[0][0]
    pred = fitted.transform(_indexed(test, catalog_frame).select("user", "idx", "score"))
    est = F.least(F.lit(5.0), F.greatest(F.lit(0.5), F.coalesce(
        F.when(F.isnan("prediction"), None).otherwise(F.col("prediction")), F.lit(mean))))
    return sev.rating_errors(pred.withColumn("prediction", est))


def top_n(fitted: Any, train: Any, catalog: Catalog, catalog_frame: Any, n: int = 10,
          platforms: Sequence[str] | None = None, kind: str | None = None) -> Any:
    """Top-``n`` unrated titles within the filters for every training user, as a Spark
    frame ``(user, rank, item, score)`` (rank 1 = best; ties: smaller item id first)."""
    from pyspark.sql import functions as F

    valid = catalog.mask(platforms, kind)
    factors = fitted.itemFactors.toPandas()
    n_items, rank = len(catalog), fitted.rank
    item_factors = np.zeros((n_items, rank), dtype=np.float64)
    known = np.zeros(n_items, dtype=bool)
    if len(factors):
        ids = factors["id"].to_numpy()
        item_factors[ids] = np.vstack(factors["features"].to_numpy())
        known[ids] = True
    valid = valid & known  # a title nobody rated in train has no factors: not ranked
    item_ids = catalog.item_ids
    rated = _indexed(train, catalog_frame).groupBy("user").agg(F.collect_list("idx").alias("rated"))
    users = fitted.userFactors.withColumnRenamed("id", "user").join(rated, "user")

    # Users per block: an Arrow batch holds up to 10,000 users, and a dense block of all
    # of them (10,000 x 25,000 titles at 10 M ratings) took 2 GB per array per worker.
    block = max(1, _BLOCK_CELLS // max(n_items, 1))

    def rank_users(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for start in range(0, len(batch), block):
                part = batch.iloc[start:start + block]
                scores = np.vstack(part["features"].to_numpy()).astype(np.float64) @ item_factors.T
                scores[:, ~valid] = -np.inf
                for row, seen in enumerate(part["rated"]):
                    scores[row, np.asarray(seen, dtype=np.int64)] = -np.inf
                # best first; ties go to the smaller item id (catalog order)
                order, top = top_positions(scores, min(n, int(valid.sum())))
                rows, cols = np.nonzero(np.isfinite(top))
                yield pd.DataFrame({"user": part["user"].to_numpy()[rows].astype(np.int64),
                                    "rank": (cols + 1).astype(np.int32),
                                    "item": item_ids[order[rows, cols]].astype(str),
                                    "score": top[rows, cols]})

    return users.mapInPandas(rank_users, "user long, rank int, item string, score double")


def write_top_n(fitted: Any, train: Any, catalog: Catalog, catalog_frame: Any, out: Path,
                n: int = 10) -> Path:
    """Every user's top-``n`` overall and per platform, as parquet partitioned by
    ``platform`` (``platform=all`` is the unfiltered list): what a server looks up."""
    from pyspark.sql import functions as F

    parts = [top_n(fitted, train, catalog, catalog_frame, n).withColumn("platform", F.lit("all"))]
    if len(catalog.platforms) > 1:
        parts += [top_n(fitted, train, catalog, catalog_frame, n, platforms=[p])
                  .withColumn("platform", F.lit(p)) for p in catalog.platforms]
    frame = parts[0]
    for part in parts[1:]:
        frame = frame.unionByName(part)
    return write_parquet_dir(frame, out, partition_by=["platform"])


def similar_titles(fitted: Any, catalog: Catalog, n: int = 10) -> Any:
    """For every title with factors, the ``n`` closest titles by cosine similarity of
    item factors: a Spark frame ``(item, rank, similar, similarity)``."""
    factors = fitted.itemFactors.toPandas()
    ids = factors["id"].to_numpy()
    mat = np.vstack(factors["features"].to_numpy()).astype(np.float64) if len(factors) \
        else np.zeros((0, fitted.rank))
    norms = np.linalg.norm(mat, axis=1)
    unit = mat / np.where(norms > 0, norms, 1.0)[:, None]
    order_ids = np.argsort(ids, kind="stable")  # rows in item-id order: ties to smaller ids
    unit, ids = unit[order_ids], ids[order_ids]
    item_ids = catalog.item_ids

    block = max(1, _BLOCK_CELLS // max(len(ids), 1))  # titles per block (as top_n's users)

    def neighbours(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for start in range(0, len(batch), block):
                part = batch.iloc[start:start + block]
                q = np.vstack(part["features"].to_numpy()).astype(np.float64)
                norm = np.linalg.norm(q, axis=1)
                sims = (q / np.where(norm > 0, norm, 1.0)[:, None]) @ unit.T
                own = np.searchsorted(ids, part["id"].to_numpy())
                sims[np.arange(len(part)), own] = -np.inf
                m = min(n, max(len(ids) - 1, 0))
                order, best = top_positions(sims, m)  # ties: the smaller item id
                rows = np.repeat(np.arange(len(part)), order.shape[1])
                yield pd.DataFrame({"item": item_ids[part["id"].to_numpy()[rows]].astype(str),
                                    "rank": np.tile(np.arange(1, order.shape[1] + 1),
                                                    len(part)).astype(np.int32),
                                    "similar": item_ids[ids[order.ravel()]].astype(str),
                                    "similarity": best.ravel()})

    return fitted.itemFactors.mapInPandas(
        neighbours, "item string, rank int, similar string, similarity double")


# --------------------------------------------------------------------------- tuning


@dataclass
class AlsChoice:
    """The validation table of one ALS variant and the setting chosen from it."""

    implicit: bool
    table: pd.DataFrame
    best: AlsParams
    criterion: str
    seconds: float = 0.0
    split: dict[str, Any] = field(default_factory=dict)


def tune_als(train: Any, catalog: Catalog, catalog_frame: Any, *, implicit: bool,
             ranks: Sequence[int], regs: Sequence[float], alphas: Sequence[float] = (1.0,),
             max_iter: int = 10, blocks: int | None = None, k: int = 10,
             fraction: float = 0.2, threshold: float = 4.0,
             seed: int = DEFAULT_SEED) -> AlsChoice:
    """Choose rank / regularisation (/ alpha) on ``evaluation.last_n_split(train)``:
    lowest RMSE (explicit) or highest NDCG@k (implicit); ties: the first in grid order.
    ``blocks``: as ``AlsParams.blocks``, the same for every fit and the choice (None: derived
    once, from ``train``, as the final fit on ``train`` would)."""
    t0 = time.perf_counter()
    blocks = als_blocks(train.count()) if blocks is None else int(blocks)
    fit_part, valid_part = sev.last_n_split(train, fraction=fraction)
    fit_part, valid_part = fit_part.cache(), valid_part.cache()
    popularity = sev.item_popularity(fit_part) if implicit else {}
    rows = []
    for rank_, reg, alpha in itertools.product(ranks, regs, alphas if implicit else [1.0]):
        params = AlsParams(int(rank_), float(reg), float(alpha), int(max_iter), blocks)
        fitted = fit_als(fit_part, catalog_frame, params, implicit, seed)
        row = {"rank": params.rank, "reg": params.reg}
        if implicit:
            lists = top_n(fitted, fit_part, catalog, catalog_frame, k)
            rep = sev.ranking_report(lists, valid_part, k, popularity, len(catalog),
                                     threshold)
            row.update(alpha=params.alpha, ndcg=rep["ndcg"], coverage=rep["coverage"])
        else:
            row["rmse"] = als_rmse(fitted, fit_part, valid_part, catalog_frame)["rmse"]
        rows.append(row)
    table = pd.DataFrame(rows)
    criterion = "ndcg" if implicit else "rmse"
    pos = int(table[criterion].idxmax() if implicit else table[criterion].idxmin())
    best = table.loc[pos]
    chosen = AlsParams(int(best["rank"]), float(best["reg"]),
                       float(best["alpha"]) if implicit else 1.0, int(max_iter), blocks)
    fit_part.unpersist()
    valid_part.unpersist()
    return AlsChoice(implicit, table, chosen, criterion, time.perf_counter() - t0,
                     {"validation": f"last {fraction:.0%} of each user's training ratings"})


def params_dict(params: AlsParams) -> Mapping[str, Any]:
    return {"rank": params.rank, "reg": params.reg, "alpha": params.alpha,
            "max_iter": params.max_iter, "blocks": params.blocks}
