"""The project's split and metrics computed on the cluster, with the same definitions.

* :func:`last_n_split` is ``ranking.evaluation.last_n_split`` as window functions: each
  user's ratings ordered by time, then item id; the last ``n`` (or ``ceil(fraction *
  count)``) held out unless fewer than ``min_train`` would remain.
* :func:`ranking_report` groups each user's list and held-out relevant titles on the
  cluster and calls the functions of ``ranking.metrics`` on each user there (one
  definition of precision, recall, NDCG, AP and novelty for both engines); only the
  means over users and the distinct-title count of the coverage are Spark aggregates.
  The keys are those of ``ranking.metrics.ranking_report``.
* :func:`rating_errors`: RMSE and MAE as ``rating.adapter.rmse_mae``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils.ranking import metrics
from recsys_utils.ranking.evaluation import RELEVANCE_THRESHOLD

__all__ = ["item_popularity", "last_n_split", "lists_to_dict", "ranking_report",
           "rating_errors"]


def last_n_split(model: Any, n: int | None = None, fraction: float | None = 0.2,
                 min_train: int = 1) -> tuple[Any, Any]:
    """``(train, test)`` Spark frames: the per-user time-aware holdout of ``04_evaluation``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if (n is None) == (fraction is None):
        raise ValueError("give exactly one of n and fraction")
    by_user = Window.partitionBy("user")
    from_end = Window.partitionBy("user").orderBy(F.col("timestamp").desc(), F.col("item").desc())
    hold = F.lit(int(n)) if n is not None else F.ceil(F.col("_count") * F.lit(float(fraction)))
    df = (model.withColumn("_count", F.count("*").over(by_user))
          .withColumn("_from_end", F.row_number().over(from_end) - 1)
          .withColumn("_hold", F.when(F.col("_count") - hold >= min_train, hold).otherwise(0)))
    is_test = F.col("_from_end") < F.col("_hold")
    cols = [c for c in model.columns]
    return df.filter(~is_test).select(*cols), df.filter(is_test).select(*cols)


def item_popularity(train: Any) -> dict[str, float]:
    """Share of training users who rated each title (``ranking.evaluation.item_popularity``)."""

    n_users = max(train.select("user").distinct().count(), 1)
    counts = train.select("user", "item").distinct().groupBy("item").count().collect()
    return {str(r["item"]): r["count"] / n_users for r in counts}


def rating_errors(predictions: Any, label: str = "score", estimate: str = "prediction"
                  ) -> dict[str, float]:
    """RMSE and MAE of ``estimate`` against ``label`` (``rating.adapter.rmse_mae``)."""
    from pyspark.sql import functions as F

    err = F.col(estimate).cast("double") - F.col(label).cast("double")
    row = predictions.agg(F.sqrt(F.avg(err * err)).alias("rmse"), F.avg(F.abs(err)).alias("mae"),
                          F.count("*").alias("n")).collect()[0]
    return {"rmse": float(row["rmse"]), "mae": float(row["mae"]), "n": int(row["n"])}


def _per_user(k: int, popularity: Mapping[str, float]) -> Any:
    """The per-user step run on the executors: ``ranking.metrics`` on one user at a time."""
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            rows = []
            for user, recs, rel in zip(batch["user"], batch["recs"], batch["relevant"],
                                       strict=True):
                items = [] if recs is None else [str(x) for x in recs]
                relevant = None if rel is None else {str(x) for x in rel}
                row = {"user": int(user), "has_list": recs is not None,
                       "evaluated": bool(relevant), "no_relevant": relevant == set(),
                       "precision": np.nan, "recall": np.nan, "ndcg": np.nan, "map": np.nan,
                       "novelty": np.nan}
                if relevant:
                    row.update(precision=metrics.precision_at_k(items, relevant, k),
                               recall=metrics.recall_at_k(items, relevant, k),
                               ndcg=metrics.ndcg_at_k(items, relevant, k),
                               map=metrics.average_precision_at_k(items, relevant, k))
                if items:
                    row["novelty"] = metrics.novelty({user: items}, k, popularity)
                rows.append(row)
            yield pd.DataFrame(rows, columns=["user", "has_list", "evaluated", "no_relevant",
                                              "precision", "recall", "ndcg", "map", "novelty"])
    return score


def ranking_report(lists: Any, test: Any, k: int, popularity: Mapping[str, float],
                   n_catalog: int, threshold: float = RELEVANCE_THRESHOLD) -> dict[str, Any]:
    """``ranking.metrics.ranking_report`` of the lists ``(user, rank, item)`` against the
    held-out ratings ``test`` (relevant: score >= ``threshold``), computed on the cluster."""
    from pyspark.sql import functions as F

    metrics._check_k(k)
    recs = (lists.groupBy("user")
            .agg(F.sort_array(F.collect_list(F.struct("rank", "item"))).alias("_r"))
            .select("user", F.col("_r.item").alias("recs")))
    relevant = test.groupBy("user").agg(F.collect_list(
        F.when(F.col("score") >= threshold, F.col("item"))).alias("relevant"))
    joined = recs.join(relevant, "user", "full_outer")
    schema = ("user long, has_list boolean, evaluated boolean, no_relevant boolean, "
              "precision double, recall double, ndcg double, map double, novelty double")
    per_user = joined.mapInPandas(_per_user(k, dict(popularity)), schema).cache()
    evaluated = per_user.filter("evaluated")
    aggs = []
    for name in ("precision", "recall", "ndcg", "map"):
        aggs += [F.avg(name).alias(name),
                 (F.stddev_samp(name) / F.sqrt(F.count(name))).alias(f"{name}_se")]
    row = evaluated.agg(*aggs, F.count("*").alias("n_users")).collect()[0]
    counts = per_user.agg(F.sum(F.col("no_relevant").cast("int")).alias("no_rel"),
                          F.sum(F.col("has_list").cast("int")).alias("lists"),
                          F.avg("novelty").alias("novelty")).collect()[0]
    shown = lists.filter(F.col("rank") <= k).select("item").distinct().count()
    per_user.unpersist()
    out: dict[str, Any] = {"k": int(k)}
    n_users = int(row["n_users"])
    for name in ("precision", "recall", "ndcg", "map"):
        out[name] = float(row[name]) if n_users else float("nan")
        se = row[f"{name}_se"]
        out[f"{name}_se"] = float(se) if n_users > 1 and se is not None else float("nan")
    if n_catalog < 1:
        raise ValueError(f"n_catalog must be positive, got {n_catalog}")
    out["coverage"] = shown / n_catalog
    out["novelty"] = float(counts["novelty"]) if counts["novelty"] is not None else float("nan")
    out["n_users"] = n_users
    out["n_users_no_relevant"] = int(counts["no_rel"] or 0)
    out["n_lists"] = int(counts["lists"] or 0)
    return out


def lists_to_dict(lists: Any) -> dict[int, list[str]]:
    """Spark lists ``(user, rank, item)`` as ``{user: [items best first]}`` (driver memory:
    for cross-checks on small data)."""
    frame = lists.select("user", "rank", "item").toPandas().sort_values(["user", "rank"])
    return {int(u): g["item"].astype(str).tolist() for u, g in frame.groupby("user")}
