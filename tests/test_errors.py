"""The user-facing exceptions."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pandas as pd
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


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """``recsys-clean --check raw | head``: the reader closes the pipe while the command
    still writes (more than a pipe's 64 KiB buffer, so the write fails for certain)."""
    body = ("import sys; from recsys_utils.errors import run_command; "
            "sys.exit(run_command(lambda: [print('accounting line', i) for i in range(100_000)]"
            " and 0))")
    child = subprocess.Popen([sys.executable, "-c", body], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"accounting line 0\n"
    child.stdout.close()  # what `head -1` does
    _, err = child.communicate(timeout=60)
    assert child.returncode == 141, err.decode()  # 128 + SIGPIPE, like any Unix tool
    assert err == b""  # no traceback, no "Exception ignored" at exit


def test_a_broken_pipe_that_is_not_the_output_keeps_its_traceback() -> None:
    def writes_to_a_dead_subprocess() -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        run_command(writes_to_a_dead_subprocess)


def test_run_command_interrupt_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_command(interrupted) == 130
    assert capsys.readouterr().err.startswith("error: interrupted")


def test_run_command_names_the_file_the_machine_refuses(tmp_path, capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """Permissions, a full disk, a folder where a file is expected: one line naming the
    file and what to do, exit 2 -- a real open() of a directory, and the refusals no test
    can provoke as root, raised as the OS raises them."""
    def open_a_folder() -> int:
        open(tmp_path, encoding="utf-8")  # IsADirectoryError, with the filename
        return 0

    assert run_command(open_a_folder) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: is a directory\n"
    for code, hint in ((errno.EACCES, "check its permissions"), (errno.ENOSPC, "disk space")):
        def refused(code: int = code) -> int:
            raise OSError(code, os.strerror(code), "data/processed/model.parquet")

        assert run_command(refused) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: data/processed/model.parquet: ") and hint in err
        assert err.count("\n") == 1


def test_run_command_keeps_the_traceback_of_an_os_error_without_a_file() -> None:
    def bug() -> int:
        raise OSError(errno.EACCES, "no file named: a bug")

    with pytest.raises(OSError, match="a bug"):
        run_command(bug)


def test_an_unreadable_table_is_not_called_damaged(tmp_path, monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    """pyarrow's PermissionError has no filename: the table reader names the file and
    does not advise rebuilding a sound file."""
    import pyarrow.parquet as pq

    from recsys_utils.data.tables import read_table

    path = tmp_path / "titles.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Failed to open local file. Permission denied")

    monkeypatch.setattr(pq, "read_schema", refuse)
    monkeypatch.setattr(pd, "read_parquet", refuse)
    with pytest.raises(DataError) as info:
        read_table("titles", folder=tmp_path)
    assert str(info.value).startswith(f"{path}: permission denied (check its permissions")
    assert "damaged" not in str(info.value) and "pipeline" not in str(info.value)


@pytest.mark.parametrize(("setting", "advice_on_entry"), [(None, False), ("1", True)])
def test_commands_run_without_numpys_huge_page_advice_unless_it_is_set(
        setting: str | None, advice_on_entry: bool) -> None:
    """A fresh interpreter (numpy reads the variable at import): inside ``run_command`` the
    advice is off and the variable is set for child processes, unless the user set it."""
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if setting is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = setting
    code = ("import os, numpy\n"
            "from recsys_utils.errors import run_command\n"
            "switch = numpy._core.multiarray._set_madvise_hugepage\n"
            "print(switch(True), flush=True)  # on at import (numpy's default)\n"
            "run_command(lambda: print(switch(False), os.environ['NUMPY_MADVISE_HUGEPAGE']))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout.split("\n")
    assert out[0] == "True"
    assert out[1] == f"{advice_on_entry} {setting or '0'}"
