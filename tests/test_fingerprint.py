"""data_fingerprint: stable under order and dtype width, sensitive to content."""

from __future__ import annotations

import pandas as pd

from recsys_utils.fingerprint import data_fingerprint


def _model() -> pd.DataFrame:
    return pd.DataFrame({
        "user": pd.array([1, 2, 2], dtype="int32"), "item": ["ml1", "ml2", "ml1"],
        "score": pd.array([3.5, 4.0, 0.5], dtype="float32"),
        "timestamp": pd.to_datetime([1, 2, 3], unit="s").astype("datetime64[s]")})


def test_fingerprint_is_16_hex() -> None:
    fp = data_fingerprint(_model())
    assert len(fp) == 16 and int(fp, 16) >= 0


def test_ignores_row_order_column_order_index_and_width() -> None:
    df = _model()
    other = df.iloc[::-1][["timestamp", "score", "item", "user"]].set_index(pd.Index([7, 8, 9]))
    other = other.astype({"user": "int64", "score": "float64", "item": object})
    assert data_fingerprint(other) == data_fingerprint(df)


def test_changes_with_content() -> None:
    df = _model()
    changed = df.copy()
    changed.loc[0, "score"] = 4.5
    assert data_fingerprint(changed) != data_fingerprint(df)
    assert data_fingerprint(df.iloc[1:]) != data_fingerprint(df)
    assert data_fingerprint(df.rename(columns={"score": "rating"})) != data_fingerprint(df)


def test_handles_missing_values_and_empty_tables() -> None:
    df = pd.DataFrame({"a": [1.5, None], "b": ["x", None]})
    assert data_fingerprint(df) == data_fingerprint(df.iloc[::-1])
    assert data_fingerprint(df.iloc[:0]) != data_fingerprint(df)
