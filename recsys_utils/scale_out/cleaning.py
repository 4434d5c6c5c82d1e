"""The cleaning step on Spark: the same rules as ``data.cleaning``, run per partition.

One rule set, two engines. The executors run the very pandas functions of the
single-machine step — ``data.catalogs.read_catalog`` (the catalog rules) and
``data.ratings.read_ratings_file`` / ``data.movielens.movielens_ratings`` (which call
``data.ratings.validate_ratings``) — inside ``mapInPandas``; Spark only distributes the
files and partitions and does what needs all of them at once:

* **Files.** The raw files are read through Spark (``binaryFile``: any file system
  Spark reads, local, HDFS or S3); each file is cleaned whole by one task, so every
  rejected row keeps its file and physical line. A file is a unit of parallelism: a
  raw directory of many files spreads over the executors.
* **Duplicates across files** (a repeated title id, an exact repeat of a rating) are
  found with a window over the whole table, first occurrence kept in (file, line)
  order: the same rows the pandas step drops.
* **The MovieLens ratings** (``movielens`` and ``linked`` sources) are split into
  partitions by user; exact duplicates share their user, so dropping them within a
  partition is dropping them globally.
* **The ratings history** (``data/history``, what retrains accepted and held back) is
  replayed by ``data.store.replay_history``, the single-machine loop, on a Spark engine
  (``_SparkRatings``): a history file is one batch, read on the driver and joined against
  the ratings on the rating key.
* **Accounting.** Each task returns its files' ``read = kept + rejected + duplicates``;
  they are summed over partitions and checked with ``Accounting.check``.

The tables are written in the processed layout (``processed/{titles,ratings,analytics,
model}.parquet``, ``interim/rejected_{titles,ratings}.parquet``, ``processed/
accounting.json``) under ``output_dir``, each ``.parquet`` a Spark folder of part files
(pandas and pyarrow read a folder like a file). Rows are sorted within each part file, not
globally (a global sort is one more pass over the data for nothing the readers need).
``load_spark_processed`` reads them back.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from recsys_utils.atomic import atomic_write_text
from recsys_utils.data.accounting import REJECT_COLUMNS, Accounting, SourceAccount
from recsys_utils.data.catalogs import discover_catalogs, platform_prefixes, read_catalog
from recsys_utils.data.cleaning import TABLES, ProcessedData, resolve_source
from recsys_utils.data.linking import link_movielens, rating_ids, same_work_item_ids
from recsys_utils.data.movielens import (
    enrich_titles,
    load_ggplot2movies,
    load_movielens,
    movielens_movies,
    movielens_ratings,
    movielens_titles,
)
from recsys_utils.data.ratings import discover_ratings, read_ratings_file
from recsys_utils.data.store import RATING_KEY, history_events, rating_keys, replay_history
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.schema import (
    RATINGS_COLUMNS,
    TITLES_COLUMNS,
    cast_analytics,
    cast_model,
    cast_ratings,
    cast_titles,
)

__all__ = ["SparkCleaningResult", "clean_on_spark", "load_spark_processed", "load_spark_rejects",
           "same_processed", "write_parquet_dir"]

_TITLE_TYPES = {"date_added": "timestamp_ntz", "release_year": "smallint",
                "duration_int": "int"}
_TITLES_SCHEMA = ", ".join(f"`{c}` {_TITLE_TYPES.get(c, 'string')}" for c in TITLES_COLUMNS)
_RATING_SCHEMA = ("user_id int, item_id string, score float, timestamp timestamp_ntz, "
                  "source_file string, line int")
_ACCOUNT_SCHEMA = "read long, kept long, rejected long, duplicates long, note string"
# One row type per task output: a kept row, a rejected row or a file's account.
_CATALOG_OUT = (f"kind string, file_idx int, source_file string, line int, {_TITLES_SCHEMA}, "
                f"reason string, raw string, {_ACCOUNT_SCHEMA}")
_RATINGS_OUT = (f"kind string, file_idx int, {_RATING_SCHEMA}, reason string, raw string, "
                f"{_ACCOUNT_SCHEMA}")


@dataclass
class SparkCleaningResult:
    """What a Spark cleaning run produced: the accounting, rejected counts, written paths."""

    source: str
    output_dir: Path
    accounting: Accounting
    n_titles: int
    n_ratings: int
    n_model: int
    seconds: float
    written: dict[str, Path] = field(default_factory=dict)

    def key_numbers(self) -> dict[str, object]:
        totals = self.accounting.totals()
        return {"source": self.source, "n_titles": self.n_titles, "n_ratings": self.n_ratings,
                "n_model_rows": self.n_model, "n_read": totals.read,
                "n_rejected": totals.rejected, "n_duplicates": totals.duplicates}


# --------------------------------------------------------------------------- helpers


def _file_name(uri: str) -> str:
    return Path(unquote(urlparse(uri).path)).name


def _with_temp_copy(content: bytes, name: str, read: Any, *args: Any) -> Any:
    """Run ``read(path, *args)`` on a local copy of a file's bytes (the executor may not see the
    driver's file system; Spark shipped the bytes)."""
    with tempfile.TemporaryDirectory(prefix="recsys-spark-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        return read(path, *args)


def _frame(kind: str, file_idx: int, df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``df`` padded to the task's output columns (missing ones null)."""
    out = pd.DataFrame(index=range(len(df)))
    for col in columns:
        if col not in df.columns:
            out[col] = None
            continue
        values = df[col].reset_index(drop=True)
        if isinstance(values.dtype, pd.StringDtype):  # Arrow-backed text: plain objects
            values = values.astype(object).where(values.notna(), None)
        out[col] = values
    # plain objects: pandas 3's default text dtype reaches Arrow as a chunked array
    out["kind"] = pd.Series([kind] * len(out), dtype=object)
    out["file_idx"] = file_idx
    return out


def _account_frame(account: SourceAccount, file_idx: int, columns: list[str]) -> pd.DataFrame:
    row = pd.DataFrame([{"read": account.read, "kept": account.kept,
                         "rejected": account.rejected, "duplicates": account.duplicates,
                         "note": account.note, "source_file": account.source_file}])
    return _frame("account", file_idx, row, columns)


def _columns(schema: str) -> list[str]:
    return [part.strip().split(" ")[0].strip("`") for part in schema.split(", ")]


def _first_occurrence(df: Any, key: list[str], order: list[str]) -> Any:
    """``df`` with a boolean ``_dup``: an earlier row (in ``order``) has the same ``key``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy(*key).orderBy(*order)
    return df.withColumn("_dup", F.row_number().over(window) > 1)


def _accounts(rows: list[Any], extra_dups: dict[str, int], kind: str) -> list[SourceAccount]:
    """Per-file accounts from the task rows, less the duplicates found across files."""
    out = []
    for r in sorted(rows, key=lambda r: r["file_idx"]):
        n = extra_dups.get(r["source_file"], 0)
        out.append(SourceAccount(r["source_file"], kind, read=int(r["read"]),
                                 kept=int(r["kept"]) - n, rejected=int(r["rejected"]),
                                 duplicates=int(r["duplicates"]) + n, note=r["note"] or ""))
    return out


def _sum_accounts(rows: list[Any], source_file: str, kind: str) -> SourceAccount:
    """One source split over partitions: its account is the sum of theirs."""
    account = SourceAccount(source_file, kind)
    for r in rows:
        account.read += int(r["read"])
        account.kept += int(r["kept"])
        account.rejected += int(r["rejected"])
        account.duplicates += int(r["duplicates"])
    return account


# --------------------------------------------------------------------------- catalogs


def _catalogs_on_spark(spark: Any, raw_dir: Path) -> tuple[Any, Any, list[SourceAccount]]:
    """Titles, rejected titles (Spark frames) and one account per catalog file."""
    from pyspark.sql import functions as F

    files = discover_catalogs(raw_dir)
    prefixes = platform_prefixes(files)
    meta = {path.name: (i, platform, prefixes[platform])
            for i, (platform, path) in enumerate(files.items())}
    columns = _columns(_CATALOG_OUT)

    def clean_files(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for uri, content in zip(batch["path"], batch["content"], strict=True):
                name = _file_name(uri)
                idx, platform, prefix = meta[name]
                got = _with_temp_copy(content, name, read_catalog, platform, prefix, name)
                yield _frame("title", idx, got.titles, columns)
                yield _frame("reject", idx, got.rejected, columns)
                yield _account_frame(got.account, idx, columns)

    raw = spark.read.format("binaryFile").load([str(p) for p in files.values()])
    rows = raw.repartition(max(len(files), 1)).mapInPandas(clean_files, _CATALOG_OUT).cache()
    titles = _first_occurrence(rows.filter(F.col("kind") == "title"), ["id"],
                               ["file_idx", "line"]).cache()
    dups = titles.filter("_dup")
    per_file = {r["file_idx"]: r["n"] for r in dups.groupBy("file_idx")
                .agg(F.count("*").alias("n")).collect()}
    account_rows = rows.filter(F.col("kind") == "account").collect()
    names = {r["file_idx"]: r["source_file"] for r in account_rows}
    accounts = _accounts(account_rows, {names[i]: n for i, n in per_file.items()}, "titles")
    # titles carry no source_file column: name the file of each duplicate id here
    file_names = spark.createDataFrame(list(names.items()), "file_idx int, _file string")
    dup_rejects = (dups.join(file_names, "file_idx")
                   .select(F.col("_file").alias("source_file"), "line",
                           F.lit("duplicate id").alias("reason"), "raw"))
    rejected = rows.filter(F.col("kind") == "reject").select(*REJECT_COLUMNS) \
        .unionByName(dup_rejects)
    # (file, line) kept: the titles' order matters to title matching (linked source)
    kept = titles.filter(~F.col("_dup")).select(*TITLES_COLUMNS, "file_idx", "line")
    return kept, rejected, accounts


# --------------------------------------------------------------------------- ratings


def _rating_files_on_spark(spark: Any, raw_dir: Path, known_items: dict[str, str]
                           ) -> tuple[Any, Any, list[SourceAccount]]:
    """Ratings (with ``_order``), rejected ratings and one account per ratings file;
    ``known_items`` maps each valid ``movieId`` to its ``item_id``."""
    from pyspark.sql import functions as F

    files = discover_ratings(raw_dir)
    meta = {p.name: (i, p.relative_to(raw_dir).as_posix()) for i, p in enumerate(files)}
    columns = _columns(_RATINGS_OUT)
    known = dict(known_items)

    def clean_files(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for uri, content in zip(batch["path"], batch["content"], strict=True):
                idx, source_file = meta[_file_name(uri)]
                got = _with_temp_copy(content, _file_name(uri), read_ratings_file, known,
                                      source_file)
                kept = got.ratings.assign(raw=pd.Series(
                    [got.raw[(source_file, int(ln))] for ln in got.ratings["line"]],
                    dtype=object, index=got.ratings.index))
                yield _frame("kept", idx, kept, columns)
                yield _frame("reject", idx, got.rejected, columns)
                yield _account_frame(got.accounts[0], idx, columns)

    raw = spark.read.format("binaryFile").load([str(p) for p in files])
    rows = raw.repartition(max(len(files), 1)).mapInPandas(clean_files, _RATINGS_OUT).cache()
    # an exact repeat of an earlier file's row is a duplicate of the later file
    kept = _first_occurrence(rows.filter(F.col("kind") == "kept"),
                             ["user_id", "item_id", "score", "timestamp"],
                             ["file_idx", "line"]).cache()
    dups = kept.filter("_dup")
    extra = {r["source_file"]: r["n"] for r in dups.groupBy("source_file")
             .agg(F.count("*").alias("n")).collect()}
    accounts = _accounts(rows.filter(F.col("kind") == "account").collect(), extra, "ratings")
    rejected = rows.filter(F.col("kind") == "reject").select(*REJECT_COLUMNS).unionByName(
        dups.select("source_file", "line", F.lit("exact duplicate").alias("reason"), "raw"))
    ratings = kept.filter(~F.col("_dup")).select(
        *RATINGS_COLUMNS, F.struct("file_idx", "line").alias("_order"))
    return ratings, rejected, accounts


def _movielens_on_spark(spark: Any, ml: pd.DataFrame, item_map: dict[int, str] | None,
                        known_items: set[str] | None) -> tuple[Any, Any, SourceAccount]:
    """The MovieLens ratings validated per partition (partitions by user)."""
    from pyspark.sql import functions as F

    from recsys_utils.data.movielens import SOURCE_FILE

    columns = _columns(_RATINGS_OUT)
    source = ml[["userId", "movieId", "rating", "timestamp", "rownames"]]

    def clean_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        part = pd.concat(list(batches), ignore_index=True)
        if part.empty:
            return
        part = part.sort_values("rownames", kind="stable")
        kept, rejected, account = movielens_ratings(part, item_map=item_map,
                                                    known_items=known_items)
        yield _frame("kept", 0, kept, columns)
        yield _frame("reject", 0, rejected, columns)
        yield _account_frame(account, 0, columns)

    # exact duplicates share their user: dropping them per partition drops them globally
    frame = spark.createDataFrame(source).repartition("userId")
    rows = frame.mapInPandas(clean_partition, _RATINGS_OUT).cache()
    account = _sum_accounts(rows.filter(F.col("kind") == "account").collect(), SOURCE_FILE,
                            "ratings")
    rejected = rows.filter(F.col("kind") == "reject").select(*REJECT_COLUMNS)
    ratings = rows.filter(F.col("kind") == "kept").select(
        *RATINGS_COLUMNS, F.struct(F.lit(0).alias("file_idx"), "line").alias("_order"))
    return ratings, rejected, account


# --------------------------------------------------------------------------- history

#: ``_order`` file index of the first history file: after every raw file, so a rating the
#: history brings is the later row, as in the single-machine table.
_HISTORY_FILE_IDX = 1_000_000


class _SparkRatings:
    """The ratings a history replay works on, as a Spark frame (the engine
    ``data.store.replay_history`` drives; ``data.store.FrameRatings`` is the pandas one).

    A history file is one retrain's batch, small next to the raw folder: its rows come in
    as pandas, and the cluster only finds the ratings they match (a join on the rating key).
    """

    def __init__(self, spark: Any, ratings: Any) -> None:
        self.spark, self.frame, self.files = spark, ratings, 0

    def _keys(self, rows: pd.DataFrame) -> Any:
        keys = _frame("key", 0, rows, _columns(_RATING_SCHEMA))[list(RATING_KEY)]
        return self.spark.createDataFrame(keys, "user_id int, item_id string, "
                                          "timestamp timestamp_ntz, score float").distinct()

    def present(self, rows: pd.DataFrame) -> np.ndarray:
        if rows.empty:
            return np.zeros(0, dtype=bool)
        found = self.frame.join(self._keys(rows), list(RATING_KEY), "left_semi")
        return np.asarray(rating_keys(rows).isin(rating_keys(
            found.select(*RATING_KEY).toPandas())))

    def append(self, rows: pd.DataFrame) -> None:
        from pyspark.sql import functions as F

        idx = _HISTORY_FILE_IDX + self.files
        self.files += 1
        if rows.empty:
            return
        new = self.spark.createDataFrame(_frame("kept", idx, rows, _columns(_RATING_SCHEMA)),
                                         _RATING_SCHEMA)
        self.frame = self.frame.unionByName(new.select(
            *RATINGS_COLUMNS, F.struct(F.lit(idx).alias("file_idx"), "line").alias("_order")))

    def take_out(self, rows: pd.DataFrame) -> pd.DataFrame:
        if rows.empty:
            return cast_ratings(pd.DataFrame(columns=RATINGS_COLUMNS))
        keys = self._keys(rows)
        gone = self.frame.join(keys, list(RATING_KEY), "left_semi").select(*RATINGS_COLUMNS)
        gone_pd = cast_ratings(gone.toPandas())
        self.frame = self.frame.join(keys, list(RATING_KEY), "left_anti")
        return gone_pd


def _replay_history_on_spark(spark: Any, ratings: Any, rejected: Any,
                             accounts: list[SourceAccount], paths: ProjectPaths,
                             known_items: dict[str, str]) -> tuple[Any, Any, list[SourceAccount]]:
    """``data/history`` replayed over the cleaned raw ratings with the single-machine
    rules (``data.store.replay_history``), so the Spark tables equal ``data/processed``
    after a retrain; nothing to do without a history."""
    if not history_events(paths):
        return ratings, rejected, accounts
    current = _SparkRatings(spark, ratings)
    replay = replay_history(current, accounts, paths, known_items)
    if len(replay.rejected):
        rejected = rejected.unionByName(spark.createDataFrame(
            replay.rejected.astype(object).where(replay.rejected.notna(), None),
            "source_file string, line int, reason string, raw string"))
    return current.frame, rejected, replay.accounts


# --------------------------------------------------------------------------- derived tables


def _model_table(ratings: Any) -> Any:
    """``build_model_table`` on Spark: the latest rating per (user, item), ties: the later row."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    latest = Window.partitionBy("user_id", "item_id").orderBy(
        F.col("timestamp").desc(), F.col("_order").desc())
    return (ratings.withColumn("_rn", F.row_number().over(latest)).filter("_rn = 1")
            .sortWithinPartitions("_order")
            .select(F.col("user_id").alias("user"), F.col("item_id").alias("item"),
                    "score", "timestamp"))


def _analytics_table(titles: Any, model: Any) -> Any:
    """``build_analytics`` on Spark: titles with ``mean_score`` and ``n_ratings`` (from the
    model table: one rating per user and title)."""
    from pyspark.sql import functions as F

    stats = model.groupBy(F.col("item").alias("item_id")).agg(
        F.avg("score").cast("float").alias("mean_score"),
        F.count("*").cast("int").alias("n_ratings"))
    return (titles.withColumn("_pos", F.monotonically_increasing_id())
            .join(stats, "item_id", "left").fillna(0, subset=["n_ratings"])
            .sortWithinPartitions("_pos").select(*TITLES_COLUMNS, "mean_score", "n_ratings"))


def write_parquet_dir(df: Any, path: Path, partition_by: list[str] | None = None) -> Path:
    """Write a Spark frame as a parquet folder, swapped into place whole: readers see the
    old folder or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    writer = df.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.parquet(str(tmp))
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def _sorted_rejects(df: Any) -> Any:
    return df.sortWithinPartitions("source_file", "line")


# --------------------------------------------------------------------------- public


def clean_on_spark(spark: Any, raw_dir: str | Path | None = None, source: str = "auto",
                   output_dir: str | Path | None = None,
                   paths: ProjectPaths | None = None, history: bool = False
                   ) -> SparkCleaningResult:
    """Clean ``raw_dir`` (the ``source`` of ``data.cleaning.build_processed``) on Spark and
    write the processed layout under ``output_dir`` (default ``outputs/scale_out``:
    the single-machine tables in ``data/processed`` are left alone).

    ``history``: replay the project's ``data/history`` too, as the cleaning step does when
    it builds the store (``06_scale_out`` compares with the store); off by default, since
    the history belongs to the project's raw folder, not to any folder cleaned here.

    Raises ``DataError`` (like the pandas step) when the raw folder does not hold what
    ``source`` needs, and ``AccountingError`` if the accounting does not add up.
    """
    t0 = time.perf_counter()
    paths = paths or project_paths()
    raw = Path(raw_dir) if raw_dir is not None else paths.raw
    raw = raw if raw.is_absolute() else paths.root / raw
    out = Path(output_dir) if output_dir is not None else paths.outputs / "scale_out"
    out = out if out.is_absolute() else paths.root / out
    chosen = resolve_source(raw, source)
    if chosen == "movielens":
        ml = load_movielens()
        titles_pd, rejected_titles_pd, movies_account = movielens_titles(ml)
        titles_pd, _ = enrich_titles(titles_pd, load_ggplot2movies())
        titles = spark.createDataFrame(_spark_ready(titles_pd), _TITLES_SCHEMA)
        rejected_titles = spark.createDataFrame(rejected_titles_pd.astype(object),
                                                "source_file string, line int, reason string, "
                                                "raw string")
        ratings, rejected_ratings, account = _movielens_on_spark(
            spark, ml, None, set(titles_pd["item_id"]))
        accounts = [movies_account, account]
    else:
        titles, rejected_titles, title_accounts = _catalogs_on_spark(spark, raw)
        titles_pd = cast_titles(titles.toPandas().sort_values(["file_idx", "line"]))
        titles = titles.sortWithinPartitions("file_idx", "line").select(*TITLES_COLUMNS)
        if chosen == "streaming":  # copies of a work: catalog-sized, on the driver
            titles_pd = cast_titles(titles_pd.assign(
                item_id=same_work_item_ids(titles_pd).to_numpy()))
            titles = spark.createDataFrame(_spark_ready(titles_pd), _TITLES_SCHEMA)
            ratings, rejected_ratings, rating_accounts = _rating_files_on_spark(
                spark, raw, rating_ids(titles_pd))
        else:  # linked: catalog-sized title matching on the driver, ratings on the cluster
            ml = load_movielens()
            link = link_movielens(titles_pd, movielens_movies(ml))
            titles_pd = cast_titles(titles_pd.assign(item_id=link.item_ids.to_numpy()))
            titles = spark.createDataFrame(_spark_ready(titles_pd), _TITLES_SCHEMA)
            ratings, rejected_ratings, rating_account = _movielens_on_spark(
                spark, ml, link.movie_to_item, None)
            rating_accounts = [rating_account]
        accounts = title_accounts + rating_accounts

    if history:
        ratings, rejected_ratings, accounts = _replay_history_on_spark(
            spark, ratings, rejected_ratings, list(accounts), paths, rating_ids(titles_pd))
    ratings = ratings.cache()
    accounting = Accounting(list(accounts))
    accounting.check()
    model = _model_table(ratings)
    analytics = _analytics_table(titles, model)
    tables = {"titles": titles, "ratings": ratings.sortWithinPartitions("_order").drop("_order"),
              "analytics": analytics, "model": model}
    written = {name: write_parquet_dir(tables[name], out / "processed" / f"{name}.parquet")
               for name in TABLES}
    for kind, df in (("titles", rejected_titles), ("ratings", rejected_ratings)):
        written[f"rejected_{kind}"] = write_parquet_dir(
            _sorted_rejects(df), out / "interim" / f"rejected_{kind}.parquet")
    rejects = load_spark_rejects(out)
    accounting.check(rejects)  # every rejected row written, with its file, line and reason
    meta = {"source": chosen, "engine": "spark", "raw_dir": None if chosen == "movielens"
            else str(raw), **json.loads(accounting.to_json())}
    written["accounting"] = atomic_write_text(out / "processed" / "accounting.json",
                                              json.dumps(meta, indent=2) + "\n")
    counts = {name: pd.read_parquet(written[name], columns=[]).shape[0]
              for name in ("titles", "ratings", "model")}
    ratings.unpersist()
    return SparkCleaningResult(source=chosen, output_dir=out, accounting=accounting,
                               n_titles=counts["titles"], n_ratings=counts["ratings"],
                               n_model=counts["model"], seconds=time.perf_counter() - t0,
                               written=written)


def _spark_ready(titles: pd.DataFrame) -> pd.DataFrame:
    """A titles table Spark's ``createDataFrame`` accepts (nullable ints as objects)."""
    out = titles[TITLES_COLUMNS].astype(object)
    return out.where(titles[TITLES_COLUMNS].notna(), None)


def load_spark_processed(output_dir: str | Path) -> ProcessedData:
    """The four tables a Spark cleaning run wrote, with the documented dtypes."""
    folder = Path(output_dir) / "processed"
    frames = {name: pd.read_parquet(folder / f"{name}.parquet", engine="pyarrow")
              for name in TABLES}
    return ProcessedData(titles=cast_titles(frames["titles"]),
                         ratings=cast_ratings(frames["ratings"]),
                         analytics=cast_analytics(frames["analytics"]),
                         model=cast_model(frames["model"]))


def load_spark_rejects(output_dir: str | Path) -> dict[str, pd.DataFrame]:
    """``{"titles": ..., "ratings": ...}``: the rejected rows a Spark cleaning run wrote."""
    from recsys_utils.data.accounting import RejectLog

    out = {}
    for kind in ("titles", "ratings"):
        log = RejectLog()
        log.extend(pd.read_parquet(Path(output_dir) / "interim" / f"rejected_{kind}.parquet"))
        out[kind] = log.to_frame()
    return out


_SORT_KEYS = {"titles": ["id"], "ratings": ["source_file", "line"],
              "analytics": ["id"], "model": ["user", "item"]}


def same_processed(a: ProcessedData, b: ProcessedData) -> dict[str, bool]:
    """Whether each table holds the same rows (order aside: Spark writes part files)."""
    out = {}
    for name in TABLES:
        left, right = (getattr(x, name).sort_values(_SORT_KEYS[name], ignore_index=True)
                       for x in (a, b))
        try:
            pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-6)
            out[name] = True
        except AssertionError:
            out[name] = False
    return out
