"""The scale-out step of ``06_scale_out``: the whole pipeline once more, on Spark.

:func:`run_scale_out` cleans the raw data on Spark (the source ``01_cleaning`` used,
read from ``accounting.json``) and checks the tables equal ``data/processed``; splits
the Spark tables per user by time (the ``04_evaluation`` holdout); tunes and fits
explicit and implicit ALS; scores them with the project's metrics on the cluster,
cross-checked against the single-machine ``ranking.metrics`` on the same lists; fits
the single-machine recommender on the same split for comparison; refits the evaluated
implicit-ALS configuration on every rating and writes its top-N lists (partitioned by
platform), similar titles and factors; and registers them as a (not promoted) registry
version.

Without Java >= 17 or pyspark it prints one line saying why and returns a result
with ``ran=False``: the rest of the pipeline does not depend on this step.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_utils import DEFAULT_SEED
from recsys_utils.data.cleaning import load_processed
from recsys_utils.paths import ProjectPaths, project_paths, relative_posix
from recsys_utils.ranking import metrics
from recsys_utils.ranking.catalog import Catalog
from recsys_utils.ranking.evaluation import (
    RELEVANCE_THRESHOLD,
    evaluate_ranking,
    evaluate_rating,
    last_n_split,
    rating_params_for,
    relevant_items,
)
from recsys_utils.ranking.recommender import Recommender
from recsys_utils.scale_out import als as sals
from recsys_utils.scale_out import evaluation as sev
from recsys_utils.scale_out.batch import champion_cold_start_list, register_batch, save_batch
from recsys_utils.scale_out.cleaning import (
    SparkCleaningResult,
    clean_on_spark,
    load_spark_processed,
    load_spark_rejects,
    same_processed,
)
from recsys_utils.scale_out.session import SparkSettings, spark_session, spark_unavailable

__all__ = ["ScaleOutResult", "run_scale_out"]


@dataclass
class ScaleOutResult:
    """What ``06_scale_out`` shows. ``ran=False`` (with ``reason``) when Spark could not run."""

    ran: bool
    reason: str = ""
    master: str = ""
    cleaning: SparkCleaningResult | None = None
    #: table name -> the Spark table equals the pandas one (plus ``accounting``, ``rejected``)
    identical: dict[str, bool] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    tuning: dict[str, pd.DataFrame] = field(default_factory=dict)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: largest difference between the cluster's metrics and ranking.metrics on the same lists
    metrics_max_diff: float = float("nan")
    similar: pd.DataFrame = field(default_factory=pd.DataFrame)
    version: str | None = None
    written: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def key_numbers(self) -> dict[str, Any]:
        """Headline numbers (glued as ``scale_*``), rounded: the same on every run.

        The same names whether or not Spark ran (``None`` for what was not measured), so
        the book builds either way and says which (``status``).
        """
        out: dict[str, Any] = {
            "status": (f"ran on {self.master}" if self.ran
                       else f"did not run: {self.reason}"),
            "cleaning_identical": all(self.identical.values()) if self.ran else None}
        rows = self.comparison.set_index("model") if self.ran else None
        for label, key in _MODELS.items():
            for metric in ("rmse", "ndcg", "coverage"):
                value = None if rows is None else rows.loc[key, metric]
                out[f"{label}_{metric}"] = None if pd.isna(value) else round(float(value), 3)
        out["metrics_match"] = bool(self.metrics_max_diff < 1e-9) if self.ran else None
        out["test_users"] = int(self.split["test_users"]) if self.ran else None
        return out

    @property
    def checks(self) -> pd.DataFrame:
        """Spark cleaning vs pandas cleaning, one row per compared table."""
        return pd.DataFrame({"table": list(self.identical),
                             "identical": list(self.identical.values())})


#: Rows of the comparison table and their key-number prefixes.
_MODELS = {"single_machine": "single machine (EASE blend)", "als_explicit": "Spark ALS explicit",
           "als_implicit": "Spark ALS implicit"}


def _processed_source(paths: ProjectPaths) -> tuple[str, Path | None]:
    """The source and raw folder ``01_cleaning`` used (from its ``accounting.json``)."""
    meta = json.loads((paths.processed / "accounting.json").read_text(encoding="utf-8"))
    raw = meta.get("raw_dir")
    return str(meta["source"]), Path(raw) if raw else None


def _round(report: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
            for k, v in report.items()}


def run_scale_out(settings: SparkSettings | None = None, *, k: int = 10,
                  holdout_fraction: float = 0.2, threshold: float = RELEVANCE_THRESHOLD,
                  ranks: Sequence[int] = (10,), regs: Sequence[float] = (0.1, 0.2),
                  alphas: Sequence[float] = (2.0, 5.0), max_iter: int = 10,
                  blocks: int | None = None, rating_model: str = "fast", register: bool = True,
                  seed: int = DEFAULT_SEED,
                  paths: ProjectPaths | None = None, verbose: bool = True) -> ScaleOutResult:
    """Run the scale-out step (see the module docstring); never raises for a missing Java.

    ``rating_model``: the single-machine row's rating model (``evaluation.rating_params_for``;
    only its RMSE depends on it, not its top-N metrics). ``blocks``: ALS's blocks (None:
    ``als.als_blocks`` of the number of ratings)."""
    rating_params = rating_params_for(rating_model)  # an unknown choice fails before Spark starts
    settings = settings or SparkSettings()
    problem = spark_unavailable()
    if problem:
        print(f"Spark step not run: {problem}")
        return ScaleOutResult(ran=False, reason=problem, master=settings.master)
    paths = paths or project_paths()
    t0 = time.perf_counter()
    processed = load_processed(paths)
    source, raw_dir = _processed_source(paths)
    blocks = sals.als_blocks(len(processed.model)) if blocks is None else int(blocks)
    out_dir = paths.outputs / "scale_out"
    log = out_dir / "spark.log"
    if verbose:
        print("Spark's own messages (the JVM's notices and logs) go to "
              f"{relative_posix(log, paths.root)}")
    with spark_session(settings, log) as spark:
        # 1. cleaning: the same rules on the cluster, the same tables
        # the store replayed data/history over the raw folder: so does the comparison
        cleaning = clean_on_spark(spark, raw_dir, source=source, output_dir=out_dir, paths=paths,
                                  history=True)
        identical = same_processed(processed, load_spark_processed(out_dir))
        ref = json.loads((paths.processed / "accounting.json").read_text(encoding="utf-8"))
        identical["accounting"] = ref["sources"] == json.loads(
            cleaning.accounting.to_json())["sources"]
        rejects = load_spark_rejects(out_dir)
        identical["rejected"] = all(
            len(rejects[kind]) == sum(a["rejected"] + a["duplicates"] for a in ref["sources"]
                                      if a["kind"] == kind) for kind in rejects)
        if verbose:
            print(f"Spark cleaning ({settings.master}): {cleaning.seconds:.1f} s; "
                  f"identical to data/processed: {all(identical.values())}")

        # 2. the per-user time-aware split, on the cluster (the model table Spark wrote)
        model = spark.read.parquet(str(cleaning.written["model"]))
        train, test = (d.cache() for d in sev.last_n_split(model, fraction=holdout_fraction))
        catalog = Catalog(processed.titles)
        catalog_frame = sals.index_frame(spark, catalog).cache()
        split = {"train_ratings": train.count(), "test_ratings": test.count(),
                 "test_users": test.select("user").distinct().count(),
                 "holdout": f"last {holdout_fraction:.0%} of each user's ratings by time"}

        # 3. ALS: choose on a validation split of train, fit on train, score on test
        grid = {"ranks": ranks, "regs": regs, "max_iter": max_iter, "blocks": blocks, "k": k,
                "seed": seed, "threshold": threshold}
        explicit = sals.tune_als(train, catalog, catalog_frame, implicit=False, **grid)
        implicit = sals.tune_als(train, catalog, catalog_frame, implicit=True, alphas=alphas,
                                 **grid)
        popularity = sev.item_popularity(train)
        rows, lists = [], None
        for label, choice in (("Spark ALS explicit", explicit), ("Spark ALS implicit", implicit)):
            t1 = time.perf_counter()
            fitted = sals.fit_als(train, catalog_frame, choice.best, choice.implicit, seed)
            fit_seconds = time.perf_counter() - t1
            top = sals.top_n(fitted, train, catalog, catalog_frame, k).cache()
            report = sev.ranking_report(top, test, k, popularity, len(catalog), threshold)
            rmse = (sals.als_rmse(fitted, train, test, catalog_frame)["rmse"]
                    if not choice.implicit else float("nan"))
            rows.append({"model": label, "engine": "spark", "rmse": rmse, **_pick(report),
                         "fit_seconds": fit_seconds, "params": str(sals.params_dict(choice.best))})
            if choice.implicit:
                lists, final_report = top, report
        assert lists is not None
        # 4. cross-check: the same lists scored by ranking.metrics on this machine
        local = metrics.ranking_report(sev.lists_to_dict(lists), relevant_items(
            test.toPandas(), threshold), k, popularity, len(catalog))
        max_diff = max(abs(local[m] - final_report[m]) for m in
                       ("precision", "recall", "ndcg", "map", "coverage", "novelty"))

        # 5. the single-machine recommender on the same split
        split_pd = last_n_split(processed.model, fraction=holdout_fraction)
        t1 = time.perf_counter()
        rec = Recommender(rating_params, seed=seed).fit(split_pd.train, processed.titles)
        fit_seconds = time.perf_counter() - t1
        ranking = evaluate_ranking(rec, split_pd.train, split_pd.test, k, threshold=threshold,
                                   seed=seed, strategies=("model",), by_platform=False)
        single = ranking.metrics["model"]
        rows.insert(0, {"model": _MODELS["single_machine"], "engine": "numpy/scipy",
                        "rmse": evaluate_rating(rec, split_pd.test)["rmse"], **_pick(single),
                        "fit_seconds": fit_seconds,
                        "params": f"default ranking, {rating_model} rating model"})

        # 6. the batch outputs: the evaluated configuration refitted on every rating (as
        # 03 registers its champion), so a served list never holds a title the user rated
        # in the held-out part; lists per platform, similar titles, factors; the registry
        served = sals.fit_als(model, catalog_frame, implicit.best, True, seed)
        written = {"top_n": sals.write_top_n(served, model, catalog, catalog_frame,
                                             out_dir / "als" / "top_n.parquet", k)}
        similar = sals.similar_titles(served, catalog, k).toPandas()
        batch = save_batch(served, catalog, written["top_n"], similar, out_dir / "als")
        written.update(batch.files)
        version = None
        if register:
            version = register_batch(batch, processed.model, params={
                "engine": "spark", "implicit_als": sals.params_dict(implicit.best),
                "explicit_als": sals.params_dict(explicit.best), "k": k, "seed": seed,
                "holdout_fraction": holdout_fraction, **champion_cold_start_list(paths)},
                metrics={"holdout": split, **_round(final_report)}, paths=paths)
        train.unpersist()
        test.unpersist()
    comparison = pd.DataFrame(rows)
    top_item = processed.model["item"].value_counts().index[0]
    result = ScaleOutResult(
        ran=True, master=settings.master, cleaning=cleaning, identical=identical, split=split,
        tuning={"explicit": explicit.table, "implicit": implicit.table},
        comparison=comparison, metrics_max_diff=float(max_diff),
        similar=similar[similar["item"] == top_item].reset_index(drop=True),
        version=version, written=written, seconds=time.perf_counter() - t0)
    if verbose:
        print(f"scale-out step: {result.seconds:.0f} s on {settings.master}")
    return result


def _pick(report: dict[str, Any]) -> dict[str, Any]:
    return {m: report[m] for m in ("ndcg", "precision", "recall", "coverage", "n_users")}
