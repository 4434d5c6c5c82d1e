"""The user-facing exceptions."""

from __future__ import annotations

import pytest

from recsys_utils.errors import DataError, UnknownFilterError, UnknownItemError


def test_unknown_filter_error_lists_valid_values() -> None:
    err = UnknownFilterError("platform", "hbo", ["netflix", "hulu"])
    assert isinstance(err, ValueError)
    assert (err.field, err.value, err.valid) == ("platform", "hbo", ["hulu", "netflix"])
    assert str(err) == "unknown platform 'hbo'; valid values: 'hulu', 'netflix'"


def test_unknown_item_error_is_a_readable_key_error() -> None:
    with pytest.raises(KeyError) as info:
        raise UnknownItemError("ns999")
    assert info.value.item_id == "ns999"
    assert str(info.value) == "unknown item 'ns999'"


def test_data_error_is_not_a_value_error() -> None:
    # CLIs catch DataError only; a ValueError from a bug must not be mistaken for bad input.
    assert not issubclass(DataError, ValueError)
    assert str(DataError("x.csv: expected a header")) == "x.csv: expected a header"
