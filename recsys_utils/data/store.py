"""The ratings store: crash-safe writes and idempotent appends.

The store is the pair of processed tables that hold ratings
(``data/processed/ratings.parquet`` and ``data/processed/model.parquet``, see
``book/data_dictionary.md``) plus ``analytics.parquet``, whose ``mean_score`` and
``n_ratings`` columns are derived from the ratings and are recomputed on every
append so the three tables never disagree.

Why atomic writes: a retrain can be interrupted (CI runner cancelled, disk
full, Ctrl-C). Every file is written to a temporary file in the *same*
directory, flushed and fsync-ed, then moved over the old one with
``os.replace`` (an atomic rename on POSIX and Windows). A reader therefore
sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils.errors import DataError
from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.schema import (
    RATINGS_COLUMNS,
    TITLES_COLUMNS,
    cast_ratings,
    cast_titles,
)

__all__ = [
    "RATING_KEY",
    "AppendResult",
    "append_ratings",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "derive_analytics",
    "derive_model",
    "fsync_dir",
    "load_store",
    "rating_keys",
    "remove_ratings",
    "store_lock",
    "write_store",
]


def fsync_dir(folder: Path) -> None:
    """Flush a directory entry so a rename survives a power loss (no-op where unsupported)."""
    with contextlib.suppress(OSError):  # Windows cannot open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temp file, which then replaces ``path``.

    The temporary file lives next to ``path`` (same filesystem, so the rename is
    atomic) and is removed if anything fails; ``path`` is then untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:  # the writer may have closed its handle without fsync
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------- the ratings store

#: Columns that identify one rating: the same user giving the same score to the same
#: title at the same second is the same event, whichever file it came from.
RATING_KEY = ("user_id", "item_id", "timestamp", "score")

RATINGS_FILE = "ratings.parquet"
MODEL_FILE = "model.parquet"
ANALYTICS_FILE = "analytics.parquet"
TITLES_FILE = "titles.parquet"
_LOCK_FILE = ".store.lock"
_PIPELINE_HINT = "run `make pipeline` (01_cleaning builds the processed tables) first"


@dataclass(frozen=True)
class AppendResult:
    """What :func:`append_ratings` did.

    ``received = duplicates_in_batch + already_present + added``; ``added_rows`` are the
    rows actually appended (ratings schema). ``repaired`` is true when the derived tables
    (model, analytics) disagreed with the ratings table and were rewritten although no
    rating was added (recovery from a crash between two file replacements).
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


@contextlib.contextmanager
def store_lock(paths: ProjectPaths | None = None) -> Iterator[None]:
    """Serialise writers of the store across processes (advisory ``flock``).

    Re-entrant within a process (a retrain holds it while it trains, then appends):
    ``flock`` on a second file descriptor of the same file would deadlock. A no-op where
    ``fcntl`` is unavailable (Windows).
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
    with open(lock_path, "w") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        _HELD[lock_path] = 1
        try:
            yield
        finally:
            _HELD.pop(lock_path, None)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"the ratings store is incomplete: {path} does not exist; {_PIPELINE_HINT}")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path} is not a readable parquet file ({exc}); {_PIPELINE_HINT}") from exc


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


def derive_analytics(titles: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
    """Titles plus ``mean_score`` and ``n_ratings`` of their ``item_id`` (cleaning's rule)."""
    from recsys_utils.data.cleaning import build_analytics

    return build_analytics(cast_titles(titles), cast_ratings(ratings))


def _titles_of(paths: ProjectPaths) -> pd.DataFrame:
    titles_path = paths.processed / TITLES_FILE
    if titles_path.is_file():
        return _read_table(titles_path)
    return _read_table(paths.processed / ANALYTICS_FILE)[TITLES_COLUMNS]


def _write_parquet(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_store(ratings: pd.DataFrame, paths: ProjectPaths | None = None,
                titles: pd.DataFrame | None = None) -> tuple[str, ...]:
    """Replace the ratings, model and analytics tables, each atomically, ratings first.

    Why ratings first: it is the source of truth; model and analytics are derived from it.
    If the process dies between two replacements, every file is still a complete, readable
    table, and the next :func:`append_ratings` notices the derived tables are stale and
    rewrites them (``repaired``).
    """
    paths = paths or project_paths()
    titles = titles if titles is not None else _titles_of(paths)
    ratings = cast_ratings(ratings)
    tables = [
        (RATINGS_FILE, ratings),
        (MODEL_FILE, derive_model(ratings)),
        (ANALYTICS_FILE, derive_analytics(titles, ratings)),
    ]
    for name, table in tables:
        _write_parquet(paths.processed / name, table)
    return tuple(name for name, _ in tables)


def _derived_stale(paths: ProjectPaths, ratings: pd.DataFrame) -> bool:
    """Whether model.parquet no longer equals the model table derived from the ratings."""
    model_path = paths.processed / MODEL_FILE
    if not model_path.is_file():
        return True
    on_disk = pd.read_parquet(model_path)
    derived = derive_model(ratings)
    if len(on_disk) != len(derived):
        return True
    return data_fingerprint(on_disk) != data_fingerprint(derived)


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
    (unless the derived tables are stale, see :class:`AppendResult`).

    Raises:
        DataError: the store (``data/processed``) does not exist, or a column is missing.
    """
    paths = paths or project_paths()
    missing = set(RATINGS_COLUMNS) - set(new_kept.columns)
    if missing:
        raise DataError(f"new ratings lack the columns {sorted(missing)} of ratings.parquet")
    with store_lock(paths):
        current = _read_table(paths.processed / RATINGS_FILE)
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
        }
        if added.empty:
            if _derived_stale(paths, current):
                written = write_store(current, paths)
                return AppendResult(total_after=len(current), written=written, repaired=True,
                                    **result_kwargs)
            return AppendResult(total_after=len(current), **result_kwargs)
        merged = pd.concat([cast_ratings(current), added], ignore_index=True)
        written = write_store(merged, paths)
        return AppendResult(total_after=len(merged), written=written, **result_kwargs)


def remove_ratings(keys: pd.DataFrame, paths: ProjectPaths | None = None) -> int:
    """Remove the ratings whose :data:`RATING_KEY` appears in ``keys``; returns how many.

    Used to hold data back (e.g. the most recent quarter) so it can be replayed as
    "new ratings"; same atomic rewrite as :func:`append_ratings`.
    """
    paths = paths or project_paths()
    with store_lock(paths):
        current = _read_table(paths.processed / RATINGS_FILE)
        drop = rating_keys(current).isin(rating_keys(keys))
        if drop.any():
            write_store(current[~drop], paths)
        return int(drop.sum())


def load_store(paths: ProjectPaths | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ratings and model tables as stored (``DataError`` naming a missing file)."""
    paths = paths or project_paths()
    return (_read_table(paths.processed / RATINGS_FILE),
            _read_table(paths.processed / MODEL_FILE))
