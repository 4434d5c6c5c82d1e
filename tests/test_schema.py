"""The column contracts: the data dictionary, the cast functions, what the cleaning step
writes and what ``read_table`` enforces all name the same columns with the same dtypes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.tables import read_table, table_path
from recsys_utils.errors import DataError
from recsys_utils.paths import PROJECT_ROOT, ProjectPaths
from recsys_utils.schema import (
    ANALYTICS_COLUMNS,
    MODEL_COLUMNS,
    RATINGS_COLUMNS,
    TEXT,
    TITLES_COLUMNS,
    cast_analytics,
    cast_model,
    cast_ratings,
    cast_titles,
    text,
)

CONTRACTS = {"titles": (TITLES_COLUMNS, cast_titles), "ratings": (RATINGS_COLUMNS, cast_ratings),
             "analytics": (ANALYTICS_COLUMNS, cast_analytics), "model": (MODEL_COLUMNS, cast_model)}
DICTIONARY = PROJECT_ROOT / "book" / "data_dictionary.md"


def _documented() -> dict[str, list[tuple[str, str]]]:
    """``{table: [(column, type), ...]}`` from the data dictionary's ``## `<table>.parquet``
    sections (a row may name several columns: ``director``, ``cast``, ``country``)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for section in DICTIONARY.read_text(encoding="utf-8").split("\n## ")[1:]:
        head = re.match(r"`(\w+)\.parquet`", section)
        if not head:
            continue
        rows = re.findall(r"^\| (`[^|]+`) \| ([\w\[\]]+) \|", section, re.M)
        out[head.group(1)] = [(col, typ) for cols, typ in rows
                              for col in re.findall(r"`(\w+)`", cols)]
    return out


def _dtype_name(dtype: object) -> str:
    """The data dictionary's word for a dtype (text columns are ``string``)."""
    return "string" if dtype == TEXT else str(dtype)


def _titles_row() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["n1", "n2"], "item_id": ["n1", "n2"], "platform": ["netflix", "netflix"],
        "show_id": ["1", "2"], "type": ["Movie", "TV Show"], "title": ["A", "B"],
        "title_norm": ["a", None], "director": [None, "D"], "cast": [None, None],
        "country": ["US", np.nan], "genres": ["Drama", None], "description": [None, "x"],
        "date_added": [pd.Timestamp("2021-09-25"), pd.NaT], "release_year": [1999, None],
        "rating": ["R", "G"], "duration_int": [136, None], "duration_type": ["min", None],
        "extra": [1, 2]})


def _ratings_row() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2], "item_id": ["n1", "n2"], "score": [4.5, 1.0],
                         "timestamp": pd.to_datetime([1_600_000_000, 0], unit="s"),
                         "source_file": ["ratings/a.csv", "ratings/a.csv"], "line": [2, 3]})


def _frames() -> dict[str, pd.DataFrame]:
    titles, ratings = _titles_row(), _ratings_row()
    model = ratings.rename(columns={"user_id": "user", "item_id": "item"})
    return {"titles": titles, "ratings": ratings, "model": model,
            "analytics": titles.assign(mean_score=[4.5, np.nan], n_ratings=[1, 0])}


def test_the_data_dictionary_documents_every_column_in_order() -> None:
    documented = _documented()
    assert [c for c, _ in documented["titles"]] == TITLES_COLUMNS
    assert [c for c, _ in documented["ratings"]] == RATINGS_COLUMNS
    assert [c for c, _ in documented["model"]] == MODEL_COLUMNS
    # analytics = titles plus its own table
    assert TITLES_COLUMNS + [c for c, _ in documented["analytics"]] == ANALYTICS_COLUMNS


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_cast_gives_the_documented_columns_and_dtypes(name: str) -> None:
    columns, cast = CONTRACTS[name]
    out = cast(_frames()[name])
    assert out.columns.tolist() == columns  # extra columns dropped, order fixed
    documented = dict(_documented()["titles"] + _documented()[name])
    assert {c: _dtype_name(out[c].dtype) for c in columns} == {c: documented[c] for c in columns}
    assert out.index.tolist() == list(range(len(out)))


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_cast_is_stable_through_parquet(name: str, tmp_path: Path) -> None:
    """Parquet stores datetime64[s] as milliseconds: a table read back casts to the same."""
    _, cast = CONTRACTS[name]
    built = cast(_frames()[name])
    built.to_parquet(tmp_path / "t.parquet", engine="pyarrow")
    back = cast(pd.read_parquet(tmp_path / "t.parquet", engine="pyarrow"))
    pd.testing.assert_frame_equal(back, built)


def test_text_keeps_missing_values_missing() -> None:
    out = text(pd.Series(["a", None, np.nan, 3]))
    assert out.isna().tolist() == [False, True, True, False]
    assert "nan" not in out.dropna().tolist() and "None" not in out.dropna().tolist()
    assert out.dropna().tolist() == ["a", "3"]
    assert out.dtype == TEXT


def test_a_value_that_cannot_take_its_dtype_raises() -> None:
    bad = _ratings_row().assign(user_id=["1", "two"])
    with pytest.raises(ValueError):
        cast_ratings(bad)


# ------------------------------------------------------- what the readers enforce


def test_the_cleaning_step_writes_the_contract_and_read_table_enforces_it(
        processed_tiny: ProjectPaths, tmp_path: Path) -> None:
    """On the tables ``build_processed`` wrote (conftest's tiny raw folder): the columns on
    disk are the contract's, read back they have the documented dtypes, and a file missing
    any one contract column is refused, naming the column."""
    for name, (columns, _) in CONTRACTS.items():
        on_disk = pd.read_parquet(table_path(name, processed_tiny), engine="pyarrow")
        assert on_disk.columns.tolist() == columns, name
        assert len(on_disk) > 0, name
        read = read_table(name, processed_tiny)
        documented = dict(_documented()["titles"] + _documented()[name])
        assert {c: _dtype_name(read[c].dtype) for c in columns} == \
            {c: documented[c] for c in columns}, name
        for column in columns:
            on_disk.drop(columns=[column]).to_parquet(table_path(name, folder=tmp_path))
            with pytest.raises(DataError, match=rf"lacks the columns \['{column}'\]"):
                read_table(name, folder=tmp_path)
