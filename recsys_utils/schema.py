"""Column lists and dtypes of the processed tables (see ``book/data_dictionary.md``).

One place casts every table, so a table has the same dtypes whether it was just
built or read back from parquet (parquet stores ``datetime64[s]`` as
milliseconds, for instance), on pandas 2.2 as on pandas 3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ANALYTICS_COLUMNS", "KINDS", "MODEL_COLUMNS", "RATINGS_COLUMNS", "TEXT",
           "TITLES_COLUMNS", "cast_analytics", "cast_model", "cast_ratings", "cast_titles", "text"]


def _text_dtype() -> object:
    """pandas' default string dtype (NaN for missing, so masks stay boolean); object on 2.2."""
    try:
        return pd.StringDtype(na_value=np.nan)
    except TypeError:  # pandas < 2.3
        return object


#: The dtype of every text column.
TEXT = _text_dtype()

#: The values of the titles' ``type`` column (the cleaning maps every variant to these);
#: also the valid values of the ``kind`` filter.
KINDS: tuple[str, ...] = ("Movie", "TV Show")

TITLES_COLUMNS = ["id", "item_id", "platform", "show_id", "type", "title", "title_norm",
                  "director", "cast", "country", "genres", "description", "date_added",
                  "release_year", "rating", "duration_int", "duration_type"]
RATINGS_COLUMNS = ["user_id", "item_id", "score", "timestamp", "source_file", "line"]
ANALYTICS_COLUMNS = TITLES_COLUMNS + ["mean_score", "n_ratings"]
MODEL_COLUMNS = ["user", "item", "score", "timestamp"]

_TITLE_TEXT = [c for c in TITLES_COLUMNS if c not in ("date_added", "release_year",
                                                      "duration_int")]


def text(values: pd.Series) -> pd.Series:
    """Cast to the text dtype, keeping missing values missing (never the string ``"nan"``)."""
    if values.dtype == TEXT:
        return values  # already text (its missing values are missing): no per-row copy
    out = values.astype(object).where(values.notna(), None)
    return out.astype(TEXT)


def _seconds(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).astype("datetime64[s]")


def cast_titles(df: pd.DataFrame) -> pd.DataFrame:
    """The titles table with its documented columns, in order, and dtypes."""
    out = df[TITLES_COLUMNS].copy()
    for col in _TITLE_TEXT:
        out[col] = text(out[col])
    out["date_added"] = _seconds(out["date_added"])
    out["release_year"] = out["release_year"].astype("Int16")
    out["duration_int"] = out["duration_int"].astype("Int32")
    return out.reset_index(drop=True)


def cast_ratings(df: pd.DataFrame) -> pd.DataFrame:
    """The ratings table with its documented columns and compact dtypes."""
    out = df[RATINGS_COLUMNS].copy()
    out["user_id"] = out["user_id"].astype("int32")
    out["item_id"] = text(out["item_id"])
    out["score"] = out["score"].astype("float32")
    out["timestamp"] = _seconds(out["timestamp"])
    out["source_file"] = text(out["source_file"])
    out["line"] = out["line"].astype("int32")
    return out.reset_index(drop=True)


def cast_analytics(df: pd.DataFrame) -> pd.DataFrame:
    """Titles columns plus ``mean_score`` (float32) and ``n_ratings`` (int32)."""
    out = cast_titles(df)
    out["mean_score"] = df["mean_score"].astype("float32").to_numpy()
    out["n_ratings"] = df["n_ratings"].astype("int32").to_numpy()
    return out


def cast_model(df: pd.DataFrame) -> pd.DataFrame:
    """The modeling table: ``user`` int32, ``item`` text, ``score`` float32, ``timestamp``."""
    out = df[MODEL_COLUMNS].copy()
    out["user"] = out["user"].astype("int32")
    out["item"] = text(out["item"])
    out["score"] = out["score"].astype("float32")
    out["timestamp"] = _seconds(out["timestamp"])
    return out.reset_index(drop=True)
