"""The user-facing exceptions."""

from __future__ import annotations

import pytest

from recsys_utils.errors import DataError, UnknownFilterError, UnknownItemError, run_command


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


def test_run_command_turns_user_errors_into_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    def bad_data() -> int:
        raise DataError("ratings.parquet is not a parquet file; run `make pipeline`")

    assert run_command(bad_data) == 2
    assert capsys.readouterr().err == (
        "error: ratings.parquet is not a parquet file; run `make pipeline`\n")
    assert run_command(lambda: None) == 0
    assert run_command(lambda: 3) == 3

    def step_failed() -> int:
        raise RuntimeError("03 failed at cell 4")

    assert run_command(step_failed, {RuntimeError: 1}) == 1
    assert "error: 03 failed at cell 4" in capsys.readouterr().err


def test_run_command_keeps_the_traceback_of_a_bug() -> None:
    def bug() -> int:
        raise ZeroDivisionError("a bug, not bad input")

    with pytest.raises(ZeroDivisionError):
        run_command(bug)


def test_run_command_interrupt_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_command(interrupted) == 130
    assert capsys.readouterr().err.startswith("error: interrupted")
