"""The response contract (``serving.schemas``): values become JSON-safe fields."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd

from recsys_utils.serving.schemas import clean, opt_date, opt_float, opt_int, opt_str


def test_clean_makes_any_value_json_safe():
    raw = {"a": np.float32("nan"), "b": [np.int64(3), pd.NA, pd.NaT, float("inf")],
           "c": {"d": np.bool_(True), "e": "x"}}
    cleaned = clean(raw)
    assert cleaned == {"a": None, "b": [3, None, None, None], "c": {"d": True, "e": "x"}}
    json.dumps(cleaned, allow_nan=False)  # would raise on NaN


def test_optional_fields_turn_missing_into_none():
    assert opt_float(np.float64("nan")) is None and opt_float(3.14159, 2) == 3.14
    assert opt_int(pd.NA) is None and opt_int(np.int32(7)) == 7
    assert opt_date(pd.Timestamp("2021-09-25 10:00")) == date(2021, 9, 25)
    assert opt_date("not a date") is None and opt_date(pd.NaT) is None
    assert opt_str(np.nan) is None and opt_str(np.int64(5)) == "5"

