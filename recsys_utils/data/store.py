"""The ratings store: idempotent appends, and the recovery that keeps it consistent.

The store is the ratings table (``data/processed/ratings.parquet``, the source of
truth) plus the two tables derived from it, ``model.parquet`` (one row per user and
title, the latest rating) and ``analytics.parquet`` (titles with ``mean_score`` and
``n_ratings``); see ``book/data_dictionary.md``.

The invariant: the store is *consistent* when ``model`` and ``analytics`` were built
from exactly the ratings in ``ratings.parquet``: each of the three tables carries the
ratings fingerprint in its parquet metadata (``recsys_utils.data.tables``) and the three
agree. Every table is replaced atomically (``recsys_utils.atomic``), ratings first; a
crash between two replacements leaves complete, readable files whose stamps disagree,
and :func:`recover_store` — run first by every command that changes the store — rebuilds
the derived tables from the ratings. Writers serialise on :func:`store_lock`.

The history (``data/history/``, :func:`merge_history`): the store is not the only copy
of an accepted rating. Every batch ``recsys-retrain`` accepts is first written as an
append-only file ``<stamp>_accepted.csv`` (raw layout, in the order it is appended),
and every hold-back as ``<stamp>_held_back.csv`` (the ratings it takes out until they
are accepted again). The cleaning step replays these files, in stamp order, over the
raw ratings, so rebuilding the store from ``data/raw`` gives back exactly the store that
the appends and hold-backs made: no command drops an accepted rating.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_utils.atomic import atomic_write, remove_temp_files
from recsys_utils.data.accounting import REJECT_COLUMNS, SourceAccount, empty_rejects
from recsys_utils.data.tables import (
    ANALYTICS_FILE,
    MODEL_FILE,
    RATINGS_FILE,
    TITLES_FILE,
    ratings_fingerprint,
    read_stamp,
    read_table,
    write_table,
)
from recsys_utils.errors import DataError
from recsys_utils.paths import ProjectPaths, project_paths, relative_posix
from recsys_utils.schema import RATINGS_COLUMNS, TITLES_COLUMNS, cast_ratings, cast_titles

if TYPE_CHECKING:
    from recsys_utils.data.ratings import KnownItems

__all__ = [
    "ACCEPTED",
    "HELD_BACK",
    "HELD_BACK_REASON",
    "RATING_KEY",
    "AppendResult",
    "FrameRatings",
    "HistoryMerge",
    "HistoryReplay",
    "append_ratings",
    "as_history_rows",
    "history_events",
    "history_file",
    "merge_history",
    "replay_history",
    "write_history",
    "derive_analytics",
    "derive_model",
    "load_store",
    "rating_keys",
    "recover_store",
    "remove_ratings",
    "store_is_consistent",
    "store_lock",
    "write_store",
]


# --------------------------------------------------------------------------- the ratings store

#: Columns that identify one rating: the same user giving the same score to the same
#: title at the same second is the same event, whichever file it came from.
RATING_KEY = ("user_id", "item_id", "timestamp", "score")

_LOCK_FILE = ".store.lock"


@dataclass(frozen=True)
class AppendResult:
    """What :func:`append_ratings` did.

    ``received = duplicates_in_batch + already_present + added``; ``added_rows`` are the
    rows actually appended (ratings schema). ``repaired`` is true when the derived tables
    (model, analytics) disagreed with the ratings table and were rebuilt first
    (:func:`recover_store`: recovery from a crash between two file replacements).
    """

    received: int
    duplicates_in_batch: int
    already_present: int
    added: int
    total_before: int
    total_after: int
    added_rows: pd.DataFrame = field(repr=False)
    written: tuple[str, ...] = ()
    repaired: bool = False

    def summary(self) -> dict[str, Any]:
        """The counts as a JSON-ready dict (no DataFrame)."""
        return {
            "received": self.received,
            "duplicates_in_batch": self.duplicates_in_batch,
            "already_present": self.already_present,
            "added": self.added,
            "total_before": self.total_before,
            "total_after": self.total_after,
            "written": list(self.written),
            "repaired": self.repaired,
        }


_HELD: dict[Path, int] = {}


def _holder() -> str:
    return (f"pid {os.getpid()}: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])[:120]} "
            f"(since {time.strftime('%H:%M:%S')})")


@contextlib.contextmanager
def store_lock(paths: ProjectPaths | None = None) -> Iterator[None]:
    """Serialise the commands that change the store or the champion pointer (``flock``).

    A command that has to wait prints what it waits for (the holder writes its pid and
    command line into the lock file). Re-entrant within a process (a retrain holds it
    while it trains, then appends): ``flock`` on a second file descriptor of the same
    file would deadlock. A no-op where ``fcntl`` is unavailable (Windows).
    """
    folder = (paths or project_paths()).processed
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = (folder / _LOCK_FILE).resolve()
    if _HELD.get(lock_path):
        _HELD[lock_path] += 1
        try:
            yield
        finally:
            _HELD[lock_path] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip() or "another command"
            print(f"waiting for the store lock ({lock_path.name} in {folder}), held by {holder} ...",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder().encode(), 0)
        _HELD[lock_path] = 1
        try:
            yield
        finally:
            _HELD.pop(lock_path, None)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _key_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The rating key in a canonical form (ints and strings), so dtypes cannot hide a match."""
    return pd.DataFrame({
        "user_id": df["user_id"].astype("int64").to_numpy(),
        "item_id": df["item_id"].astype(str).to_numpy(),
        "timestamp": pd.to_datetime(df["timestamp"]).astype("datetime64[s]")
        .astype("int64").to_numpy(),
        # Scores are half stars: compare them as integers of half stars.
        "score": np.rint(df["score"].astype("float64").to_numpy() * 2).astype("int64"),
    })


def rating_keys(df: pd.DataFrame) -> pd.MultiIndex:
    """The :data:`RATING_KEY` of every row of a ratings-schema frame, as a MultiIndex."""
    return pd.MultiIndex.from_frame(_key_frame(df))


def derive_model(ratings: pd.DataFrame) -> pd.DataFrame:
    """The model table from the ratings table: the cleaning step's own rule.

    One row per (user, item), the latest rating (``recsys_utils.data.cleaning.build_model_table``),
    so a store grown by appends equals a store rebuilt from all the ratings at once.
    """
    from recsys_utils.data.cleaning import build_model_table  # cleaning imports the catalog readers

    return build_model_table(cast_ratings(ratings))


def derive_analytics(titles: pd.DataFrame, model: pd.DataFrame) -> pd.DataFrame:
    """Titles plus ``mean_score`` and ``n_ratings`` of their ``item_id``, from the model
    table (cleaning's rule)."""
    from recsys_utils.data.cleaning import build_analytics

    return build_analytics(cast_titles(titles), model)


def _titles_of(paths: ProjectPaths) -> pd.DataFrame:
    if (paths.processed / TITLES_FILE).is_file():
        return read_table("titles", paths)
    return read_table("analytics", paths)[TITLES_COLUMNS]


def _write_derived(ratings: pd.DataFrame, fp: str, paths: ProjectPaths,
                   titles: pd.DataFrame | None = None) -> tuple[str, ...]:
    titles = titles if titles is not None else _titles_of(paths)
    model = derive_model(ratings)
    write_table(paths.processed / MODEL_FILE, model, fp)
    write_table(paths.processed / ANALYTICS_FILE, derive_analytics(titles, model), fp)
    return (MODEL_FILE, ANALYTICS_FILE)


def write_store(ratings: pd.DataFrame, paths: ProjectPaths | None = None,
                titles: pd.DataFrame | None = None) -> tuple[str, ...]:
    """Replace the ratings, model and analytics tables, each atomically, ratings first.

    Why ratings first: it is the source of truth; model and analytics are derived from it.
    If the process dies between two replacements, every file is still a complete, readable
    table, its stamp tells which ratings it was built from, and :func:`recover_store`
    rebuilds the stale ones.
    """
    paths = paths or project_paths()
    titles = titles if titles is not None else _titles_of(paths)
    ratings = cast_ratings(ratings)
    fp = ratings_fingerprint(ratings)
    write_table(paths.processed / RATINGS_FILE, ratings, fp)
    return (RATINGS_FILE, *_write_derived(ratings, fp, paths, titles))


def _stamps(paths: ProjectPaths) -> tuple[str | None, str | None, str | None]:
    folder = paths.processed
    return tuple(read_stamp(folder / name) for name in (RATINGS_FILE, MODEL_FILE, ANALYTICS_FILE))


def store_is_consistent(paths: ProjectPaths | None = None) -> bool:
    """Whether ratings, model and analytics carry the same ratings fingerprint (the invariant)."""
    stamps = _stamps(paths or project_paths())
    return stamps[0] is not None and len(set(stamps)) == 1


def recover_store(paths: ProjectPaths | None = None) -> tuple[str, ...]:
    """Bring the store back to its invariant after a crash; returns the tables rewritten.

    Removes temporary files left by interrupted writes, then, when the stamps of
    ``model`` / ``analytics`` differ from that of ``ratings`` (a crash between two
    replacements, or tables written before stamps existed), rebuilds them from the
    ratings. Nothing to do (and nothing read but the parquet footers) when consistent.
    """
    paths = paths or project_paths()
    if not (paths.processed / RATINGS_FILE).is_file():
        return ()  # no store yet: the command itself will say to run the pipeline
    with store_lock(paths):
        remove_temp_files(paths.processed)
        fp, model_fp, analytics_fp = _stamps(paths)
        if fp is not None and fp == model_fp == analytics_fp:
            return ()
        ratings = read_table("ratings", paths)
        fp = fp or ratings_fingerprint(ratings)  # unstamped ratings: written by older code
        if fp == model_fp == analytics_fp:
            return ()
        return _write_derived(ratings, fp, paths)


def append_ratings(new_kept: pd.DataFrame, paths: ProjectPaths | None = None) -> AppendResult:
    """Append validated ratings to the store, idempotently and atomically.

    Args:
        new_kept: rows in the ratings schema (``recsys_utils.data.ratings.validate_ratings``'s
            ``kept``): user_id, item_id, score, timestamp, source_file, line.
        paths: project paths (default ``project_paths()``).

    A row whose :data:`RATING_KEY` is already in the store, or repeated within
    ``new_kept``, is counted and skipped, so appending the same file twice adds nothing
    the second time. The ratings, model and analytics tables are rewritten atomically
    (temp file in the same folder, fsync, ``os.replace``); if anything fails before a
    replacement, that file is untouched. Nothing is written when nothing is added
    (unless the store had to be recovered first, see :class:`AppendResult`).

    Raises:
        DataError: the store (``data/processed``) does not exist or is unreadable, or a
            column is missing.
    """
    paths = paths or project_paths()
    missing = set(RATINGS_COLUMNS) - set(new_kept.columns)
    if missing:
        raise DataError(f"new ratings lack the columns {sorted(missing)} of ratings.parquet")
    with store_lock(paths):
        repaired = recover_store(paths)
        current = read_table("ratings", paths)
        batch = cast_ratings(new_kept)
        batch_keys = rating_keys(batch)
        in_batch_dup = batch_keys.duplicated(keep="first")
        present = batch_keys.isin(rating_keys(current))
        take = ~in_batch_dup & ~present
        added = batch[take].reset_index(drop=True)
        result_kwargs = {
            "received": len(batch),
            "duplicates_in_batch": int(in_batch_dup.sum()),
            "already_present": int((present & ~in_batch_dup).sum()),
            "added": len(added),
            "total_before": len(current),
            "added_rows": added,
            "repaired": bool(repaired),
        }
        if added.empty:
            return AppendResult(total_after=len(current), written=repaired, **result_kwargs)
        merged = pd.concat([current, added], ignore_index=True)
        written = write_store(merged, paths)
        return AppendResult(total_after=len(merged), written=written, **result_kwargs)


def remove_ratings(keys: pd.DataFrame, paths: ProjectPaths | None = None) -> int:
    """Remove the ratings whose :data:`RATING_KEY` appears in ``keys``; returns how many.

    Used to hold data back (e.g. the most recent quarter) so it can be replayed as
    "new ratings"; same atomic rewrite as :func:`append_ratings`.
    """
    paths = paths or project_paths()
    with store_lock(paths):
        recover_store(paths)
        current = read_table("ratings", paths)
        drop = rating_keys(current).isin(rating_keys(keys))
        if drop.any():
            write_store(current[~drop], paths)
        return int(drop.sum())


def load_store(paths: ProjectPaths | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ratings and model tables as stored (``DataError`` naming a missing or bad file)."""
    paths = paths or project_paths()
    return read_table("ratings", paths), read_table("model", paths)


# --------------------------------------------------------------------------- the history

#: Kinds of history file: a batch accepted by a retrain, ratings taken out by a hold-back.
ACCEPTED, HELD_BACK = "accepted", "held_back"
#: The reason a rebuilt store leaves out a rating a hold-back took out (accounting).
HELD_BACK_REASON = "held back (recsys-retrain --hold-back)"
_RAW_HEADER = ["userId", "rating", "timestamp", "movieId"]


def history_file(paths: ProjectPaths, stamp: str, kind: str) -> Path:
    """``data/history/<stamp>_<kind>.csv`` (stamps sort in time order, so the files do)."""
    if kind not in (ACCEPTED, HELD_BACK):
        raise ValueError(f"unknown history kind {kind!r}")
    return paths.history / f"{stamp}_{kind}.csv"


def history_events(paths: ProjectPaths) -> list[tuple[str, Path]]:
    """The history files in replay order: ``[(kind, path), ...]``."""
    if not paths.history.is_dir():
        return []
    return [(kind, p) for p in sorted(paths.history.glob("*.csv"))
            for kind in (ACCEPTED, HELD_BACK) if p.stem.endswith(f"_{kind}")]


def as_history_rows(ratings: pd.DataFrame, path: Path, paths: ProjectPaths) -> pd.DataFrame:
    """``ratings`` labelled as the rows of history file ``path``: ``source_file`` is the file
    (relative to the project), ``line`` its line (header = 1), so the store appended with
    them equals the store the cleaning step rebuilds from that file."""
    out = cast_ratings(ratings).reset_index(drop=True)
    out["source_file"] = relative_posix(path, paths.root)
    out["line"] = np.arange(2, len(out) + 2, dtype="int64")
    return cast_ratings(out)


def write_history(path: Path, ratings: pd.DataFrame) -> Path:
    """Write a history file atomically, in the raw layout ``userId,rating,timestamp,movieId``
    and in the order of ``ratings``; the cleaning step reads it with its own rules."""
    raw = pd.DataFrame({
        "userId": ratings["user_id"].astype("int64").to_numpy(),
        "rating": ratings["score"].astype("float64").map(lambda s: f"{s:g}").to_numpy(),
        "timestamp": pd.to_datetime(ratings["timestamp"]).astype("datetime64[s]")
        .astype("int64").to_numpy(),
        "movieId": ratings["item_id"].astype(str).to_numpy(),
    }, columns=_RAW_HEADER)
    return atomic_write(path, lambda tmp: raw.to_csv(tmp, index=False))


@dataclass
class HistoryReplay:
    """What a replay of ``data/history`` did (:func:`replay_history`); the ratings stay in
    the engine it ran on."""

    rejected: pd.DataFrame
    accounts: list[SourceAccount]
    accepted_files: int = 0
    held_back_files: int = 0
    withheld: int = 0


@dataclass
class HistoryMerge(HistoryReplay):
    """The raw ratings with the history replayed over them (:func:`merge_history`)."""

    ratings: pd.DataFrame = field(kw_only=True)  # after the replay's defaulted fields


class FrameRatings:
    """The ratings a history replay works on, as one pandas frame (the single-machine
    engine of :func:`replay_history`; ``scale_out.cleaning`` has the Spark one)."""

    def __init__(self, ratings: pd.DataFrame) -> None:
        self.frame = cast_ratings(ratings).reset_index(drop=True)

    def present(self, rows: pd.DataFrame) -> np.ndarray:
        """Which of ``rows`` have a rating with the same :data:`RATING_KEY`."""
        return np.asarray(rating_keys(rows).isin(rating_keys(self.frame)))

    def append(self, rows: pd.DataFrame) -> None:
        self.frame = pd.concat([self.frame, rows], ignore_index=True)

    def take_out(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Remove the ratings with the key of one of ``rows``; return them."""
        out = rating_keys(self.frame).isin(rating_keys(rows))
        gone = self.frame[out]
        self.frame = self.frame[~out].reset_index(drop=True)
        return gone


def replay_history(current: Any, accounts: list[SourceAccount], paths: ProjectPaths,
                   known_items: KnownItems) -> HistoryReplay:
    """Replay ``data/history`` over the cleaned raw ratings ``current`` (an engine with
    ``present``, ``append`` and ``take_out``, like :class:`FrameRatings`), in stamp order.

    * an ``accepted`` file is read with the cleaning step's reader and rules
      (``read_ratings_file``: its own accounting line); a rating already kept (from the
      raw files or an earlier history file) is an ``exact duplicate`` of this file, not a
      second copy;
    * a ``held_back`` file takes its ratings out until an accepted file brings them back:
      each is counted as rejected (:data:`HELD_BACK_REASON`) in the account of the file it
      came from, whose note says how many.

    ``accounts`` (one per raw source) are updated in place and returned with the history
    files' accounts appended; ``read = kept + rejected + duplicates`` still holds for each.
    The ratings are ``current``'s to hand out (:func:`merge_history` for pandas).
    """
    from recsys_utils.data.ratings import read_ratings_file

    by_file = {a.source_file: a for a in accounts if a.kind == "ratings"}
    rejected: list[pd.DataFrame] = []
    merged = HistoryReplay(empty_rejects(), list(accounts))
    for kind, path in history_events(paths):
        name = relative_posix(path, paths.root)
        if kind == ACCEPTED:
            got = read_ratings_file(path, known_items, source_file=name)
            account = got.accounts[0]
            present = current.present(got.ratings)
            if present.any():
                dups = got.ratings[present]
                raw_text = [got.raw.get((name, int(n)), "") for n in dups["line"]]
                rejected.append(pd.DataFrame({"source_file": name, "line": dups["line"].to_numpy(),
                                              "reason": "exact duplicate", "raw": raw_text},
                                             columns=REJECT_COLUMNS))
                account.kept -= int(present.sum())
                account.duplicates += int(present.sum())
            rejected.append(got.rejected)
            current.append(got.ratings[~present])
            merged.accounts.append(account)
            by_file[name] = account
            merged.accepted_files += 1
        else:
            # read with the same ids as accepted files: a held-back rating of a copy is
            # stored under its work's item_id
            gone = current.take_out(read_ratings_file(path, known_items,
                                                      source_file=name).ratings)
            # a list, not string columns added up: a hold-back none of whose ratings are in
            # this run's data (made on other data) takes out nothing, and an empty score
            # column stays float
            seconds = pd.to_datetime(gone["timestamp"]).astype("datetime64[s]").astype("int64")
            rejected.append(pd.DataFrame({
                "source_file": gone["source_file"].to_numpy(), "line": gone["line"].to_numpy(),
                "reason": HELD_BACK_REASON,
                "raw": [f"{u},{s:g},{t},{i}" for u, s, t, i in zip(
                    gone["user_id"], gone["score"], seconds, gone["item_id"], strict=True)]},
                columns=REJECT_COLUMNS))
            for source, n in gone["source_file"].value_counts().items():
                account = by_file.get(source)
                if account is None:  # not a source of this run: the accounting check says so
                    continue
                account.kept -= int(n)
                account.rejected += int(n)
                account.note = "; ".join(filter(None, [account.note,
                                                       f"{int(n):,} held back by {name}"]))
            merged.held_back_files += 1
            merged.withheld += len(gone)
    parts = [r for r in rejected if len(r)]
    merged.rejected = pd.concat(parts, ignore_index=True) if parts else empty_rejects()
    return merged


def merge_history(ratings: pd.DataFrame, accounts: list[SourceAccount], paths: ProjectPaths,
                  known_items: KnownItems) -> HistoryMerge:
    """:func:`replay_history` on a pandas ratings table (the cleaning step's engine)."""
    current = FrameRatings(ratings)
    replay = replay_history(current, accounts, paths, known_items)
    return HistoryMerge(**vars(replay), ratings=cast_ratings(current.frame))
