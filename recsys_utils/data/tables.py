"""The processed tables' contract: their file names, the one validating reader, their stamps.

``data/processed/`` holds ``titles``, ``ratings``, ``analytics`` and ``model``
(``<name>.parquet``, columns in ``book/data_dictionary.md``) and ``accounting.json``.
Every reader of a processed table or of a JSON manifest goes through
:func:`read_table` / :func:`read_json_object`, which turn every way a file can be
bad — missing, 0 bytes, truncated, random bytes, not parquet, wrong columns, a
column of the wrong type, JSON that is not an object — into one ``DataError``
naming the file and what to run, never a traceback.

Why stamps: ``model`` and ``analytics`` are derived from ``ratings``. Each of the
three carries, in its parquet metadata, the fingerprint of the ratings it was built
from (:data:`RATINGS_FINGERPRINT_KEY`). The store is *consistent* when the three
stamps agree, which is checked without reading the tables
(``recsys_utils.data.store.recover_store`` rebuilds the derived tables otherwise).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from recsys_utils.atomic import atomic_write
from recsys_utils.errors import DataError, environment_message, excerpt
from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.schema import (
    ANALYTICS_COLUMNS,
    MODEL_COLUMNS,
    RATINGS_COLUMNS,
    TITLES_COLUMNS,
    cast_analytics,
    cast_model,
    cast_ratings,
    cast_titles,
)

__all__ = [
    "ACCOUNTING_FILE",
    "ANALYTICS_FILE",
    "MODEL_FILE",
    "PIPELINE_HINT",
    "RATINGS_FILE",
    "RATINGS_FINGERPRINT_KEY",
    "TABLES",
    "TITLES_FILE",
    "check_columns",
    "check_model_table",
    "check_table",
    "ratings_fingerprint",
    "json_object_or_problem",
    "read_json_object",
    "read_stamp",
    "read_table",
    "read_user_ids",
    "table_path",
    "write_table",
]

TITLES_FILE = "titles.parquet"
RATINGS_FILE = "ratings.parquet"
ANALYTICS_FILE = "analytics.parquet"
MODEL_FILE = "model.parquet"
ACCOUNTING_FILE = "accounting.json"
#: The processed tables, in ``data/processed/<name>.parquet``.
TABLES = ("titles", "ratings", "analytics", "model")
PIPELINE_HINT = "run `make pipeline` (01_cleaning rebuilds the processed tables)"
#: Parquet metadata key: the fingerprint of the ratings a table was built from.
RATINGS_FINGERPRINT_KEY = b"recsys.ratings_fingerprint"

#: Columns that must hold numbers (a text column there is named in the error).
_NUMERIC = {
    "titles": ["release_year", "duration_int"],
    "ratings": ["user_id", "score", "line"],
    "analytics": ["release_year", "duration_int", "mean_score", "n_ratings"],
    "model": ["user", "score"],
}
_CONTRACT: dict[str, tuple[list[str], Callable[[pd.DataFrame], pd.DataFrame]]] = {
    "titles": (TITLES_COLUMNS, cast_titles),
    "ratings": (RATINGS_COLUMNS, cast_ratings),
    "analytics": (ANALYTICS_COLUMNS, cast_analytics),
    "model": (MODEL_COLUMNS, cast_model),
}


def table_path(name: str, paths: ProjectPaths | None = None, folder: Path | None = None) -> Path:
    """``<folder>/<name>.parquet`` (default folder: ``data/processed``)."""
    return (folder or (paths or project_paths()).processed) / f"{name}.parquet"


def check_columns(df: pd.DataFrame, columns: Sequence[str], source: str | Path,
                  hint: str = PIPELINE_HINT) -> None:
    """``DataError`` naming ``source`` when ``df`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{source} lacks the columns {missing} "
                        f"(it has {excerpt(', '.join(map(str, df.columns)), 80)}); {hint}")


def check_model_table(df: pd.DataFrame,
                      source: str | Path = "the model table (data/processed/model.parquet)",
                      ) -> None:
    """The one check that a frame is a model table: columns ``user, item, score, timestamp``."""
    check_columns(df, MODEL_COLUMNS, source)


def _damaged(path: Path, exc: Exception, hint: str) -> DataError:
    if isinstance(exc, PermissionError):  # a sound file we may not read: not "rebuild it"
        # pyarrow's error names no file: give it this one, worded as every command words it
        return DataError(environment_message(PermissionError(errno.EACCES, "Permission denied",
                                                              str(path))))
    why = str(exc).rsplit(": ", 1)[-1]  # pyarrow's reason, without its copy of the path
    return DataError(f"{path} is not a readable parquet file, truncated or damaged "
                     f"({excerpt(why, 80)}); {hint}")


def _check_file(path: Path, hint: str) -> None:
    if not path.is_file():
        raise DataError(f"{path} not found; {hint}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); {hint}")


def _parquet_columns(path: Path, hint: str) -> list[str]:
    """The file's column names, from its footer alone (no rows read)."""
    _check_file(path, hint)
    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise _damaged(path, exc, hint) from exc


def _read_parquet(path: Path, hint: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The file, or only its ``columns`` (a missing one is named, like a table's)."""
    if columns is None:
        _check_file(path, hint)
    else:  # pyarrow's error for a missing column would read as a damaged file
        check_columns(pd.DataFrame(columns=_parquet_columns(path, hint)), columns, path, hint)
    try:
        return pd.read_parquet(path, engine="pyarrow", columns=columns)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise _damaged(path, exc, hint) from exc


def check_table(name: str, paths: ProjectPaths | None = None, hint: str = PIPELINE_HINT) -> None:
    """That a processed table is there, is parquet and has its columns, from its footer
    alone: for a reader that does not use the table but must not start on a broken store
    (the API and the model table)."""
    path = table_path(name, paths)
    check_columns(pd.DataFrame(columns=_parquet_columns(path, hint)), _CONTRACT[name][0], path,
                  hint)


def read_table(name: str, paths: ProjectPaths | None = None, folder: Path | None = None,
               hint: str = PIPELINE_HINT) -> pd.DataFrame:
    """Read one processed table, check its columns and cast it to its documented dtypes.

    Raises:
        DataError: the file is missing, empty, not parquet (truncated, random bytes), lacks
            a column, or a column cannot hold its documented type; the message names the file
            and ``hint`` (what to run).
    """
    columns, cast = _CONTRACT[name]
    path = table_path(name, paths, folder)
    df = _read_parquet(path, hint)
    check_columns(df, columns, path, hint)
    return _checked(df, name, cast, path, hint)


def read_user_ids(paths: ProjectPaths | None = None, hint: str = PIPELINE_HINT) -> pd.Series:
    """The ratings table's ``user_id`` column alone (int32), checked like :func:`read_table`.
    The API orders users by their number of ratings and needs nothing else of the ratings:
    reading the whole table (and the model table) only to drop it raised its load peak."""
    path = table_path("ratings", paths)
    df = _read_parquet(path, hint, columns=["user_id"])
    return _checked(df, "ratings", lambda d: d["user_id"].astype("int32"), path, hint)


def _checked(df: pd.DataFrame, name: str, cast: Callable[[pd.DataFrame], Any], path: Path,
             hint: str) -> Any:
    """``cast(df)`` once ``name``'s numeric columns among ``df``'s hold numbers."""
    for column in (c for c in _NUMERIC[name] if c in df.columns):
        if not pd.api.types.is_numeric_dtype(df[column]):
            first = df[column].dropna().head(1).tolist()
            raise DataError(f"{path}: column {column!r} holds {df[column].dtype} values "
                            f"({excerpt(first[0] if first else '', 30)}), not numbers; {hint}")
    try:
        return cast(df)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{path} has a column of the wrong type ({excerpt(exc, 80)}); "
                        f"{hint}") from exc


def read_json_object(path: Path, hint: str = PIPELINE_HINT) -> dict:
    """A JSON file that must hold an object (a manifest, a record); ``DataError`` otherwise."""
    if not path.is_file():
        raise DataError(f"{path} not found; {hint}")
    value, problem = json_object_or_problem(path)
    if value is None:
        raise DataError(f"{path} {problem}; {hint}")
    return value


def json_object_or_problem(path: Path) -> tuple[dict | None, str | None]:
    """``(value, None)``, or ``(None, what is wrong)`` when ``path`` holds no JSON object: for
    a caller that goes over many files and must not stop at a damaged one. An ``OSError``
    (permissions, ...) is raised: a sound file we may not read is never called damaged."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"is not valid JSON ({excerpt(exc, 80)})"
    if not isinstance(value, dict):
        return None, f"holds a JSON {type(value).__name__}, not an object"
    return value, None


def ratings_fingerprint(ratings: pd.DataFrame) -> str:
    """The fingerprint that ties the three store tables together: that of the ratings table."""
    return data_fingerprint(cast_ratings(ratings))


def write_table(path: Path, df: pd.DataFrame, ratings_fp: str | None = None) -> Path:
    """Write a table atomically, stamped with the fingerprint of the ratings it derives from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    if ratings_fp is not None:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), RATINGS_FINGERPRINT_KEY: ratings_fp.encode()})
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_stamp(path: Path) -> str | None:
    """The ratings fingerprint a table was written with (None: unstamped or unreadable)."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - a missing or damaged file simply has no stamp
        return None
    stamp = metadata.get(RATINGS_FINGERPRINT_KEY)
    return stamp.decode() if stamp else None
