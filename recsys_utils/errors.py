"""User-facing exceptions shared by the whole project.

Why a module of its own: notebooks, CLIs and the API all need to tell a
*user* mistake (missing file, unknown platform) from a bug. Every command runs
its body through :func:`run_command`, which prints ``error: ...`` for a
``DataError`` and exits 2; the API maps ``UnknownFilterError`` to 404/422 and
``UnknownItemError`` to 404.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import select
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["DataError", "UnknownFilterError", "UnknownItemError", "arg_type", "bounded",
           "environment_message", "excerpt", "run_command"]


def excerpt(value: object, limit: int = 40) -> str:
    """A short, printable quote of bad input for a message: at most ``limit`` characters,
    non-printable characters escaped, ``...`` when cut (never kilobytes of binary)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    cut = len(text) > limit or len(shown) > limit
    return f"'{shown[:limit]}...'" if cut else f"'{shown}'"


class DataError(Exception):
    """Input data is missing or malformed; the message names the file and what was expected."""


class UnknownFilterError(ValueError):
    """A filter value (platform, kind, rating, ...) is not one of the valid values.

    Attributes:
        field: name of the filter (``"platform"``).
        value: the value given.
        valid: the sorted valid values.
    """

    def __init__(self, field: str, value: object, valid: Iterable[object]) -> None:
        self.field = field
        self.value = value
        self.valid: list[str] = sorted({str(v) for v in valid})
        listed = ", ".join(repr(v) for v in self.valid) or "(none)"
        super().__init__(f"unknown {field} {value!r}; valid values: {listed}")


class UnknownItemError(KeyError):
    """An item id is not known to the model or table.

    ``KeyError.__str__`` quotes its argument; we override it so the message reads well.
    """

    def __init__(self, item_id: object, message: str | None = None) -> None:
        self.item_id = item_id
        self.message = message or f"unknown item {item_id!r}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def run_command(body: Callable[[], int | None],
                exit_codes: Mapping[type[BaseException], int] | None = None) -> int:
    """Run a command-line entry point's body; the one place user errors become exit codes.

    ``DataError`` → ``error: <message>`` on stderr and exit 2 (a user's data or state is
    wrong: the message says what to run). ``exit_codes`` adds command-specific
    exceptions (e.g. a failed notebook → 1) printed the same way. An ``OSError`` naming a
    file the machine refuses (permissions, a full or read-only disk, a folder where a file
    is expected) → one line naming it, exit 2. Anything else is a bug and keeps its
    traceback. Ctrl-C exits 130 with one line, not a traceback. A reader of the output
    that goes away (``| head``) ends the command quietly with SIGPIPE's status, 141.
    The body runs without numpy's huge-page advice (``_without_hugepage_advice``).
    """
    codes = {DataError: 2, **(exit_codes or {})}
    _without_hugepage_advice()
    try:
        code = body() or 0
        sys.stdout.flush()  # now, so a reader gone away is handled below, not at exit
        return code
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # another pipe (a subprocess's): a bug, keep the traceback
        # `recsys-clean --check raw | head`: stop quietly like any Unix tool, with the exit
        # status of SIGPIPE, and let Python's own flush at exit write to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        print("error: interrupted; run the command again to finish", file=sys.stderr)
        return 130
    except tuple(codes) as exc:
        code = next(code for kind, code in codes.items() if isinstance(exc, kind))
        print(f"error: {exc}", file=sys.stderr)
        return code
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS or not exc.filename:
            raise  # no file to blame: a bug, keep the traceback
        print(f"error: {environment_message(exc)}", file=sys.stderr)
        return 2


def _without_hugepage_advice() -> None:
    """Every command runs without numpy's huge-page advice unless ``NUMPY_MADVISE_HUGEPAGE``
    is set. Where transparent hugepages are defragmented on demand (``madvise``, a common
    default), each new large array can stall in memory compaction: measured on 2 cores,
    03_modeling 194 s -> 132 s without it. Results do not change. Set in the environment too,
    so the notebooks' kernels and other child processes inherit it."""
    if os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0") != "0":
        return
    import numpy as np  # every command imports it anyway

    # numpy reads the variable once, at import; this is the switch it uses then
    np._core.multiarray._set_madvise_hugepage(False)


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reading end is closed (poll reports an
    error on it)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, no file descriptor
        return False


#: File-system refusals that are the machine's state, not a bug: say which file and why.
_ENVIRONMENT_ERRNOS = {errno.EACCES: "check its permissions", errno.EPERM: "check its permissions",
                       errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space",
                       errno.EROFS: "the file system is read-only", errno.ENOTDIR: "",
                       errno.EISDIR: "", errno.ENAMETOOLONG: "", errno.EMFILE: "",
                       errno.ELOOP: ""}


def environment_message(exc: OSError) -> str:
    """``cannot <...> <file>: <reason> (<what to do>)``: one line for an ``OSError`` the
    file system raised. Atomic writes leave no half-written file, so a rerun is safe."""
    hint = _ENVIRONMENT_ERRNOS.get(exc.errno or 0, "")
    reason = (exc.strerror or str(exc)).lower()
    other = f" -> {exc.filename2}" if exc.filename2 else ""
    return (f"{exc.filename}{other}: {reason}" + (f" ({hint}; then run the command again)"
                                                   if hint else ""))


def arg_type(convert: Callable[[str], Any], ok: Callable[[Any], bool],
             expected: str) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert`` the text, refuse it unless ``ok``, so a bad value is
    a usage error (exit 2) saying what is expected, before any file is read."""
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except (ValueError, DataError):
            value = None
        if value is None or not ok(value):  # NaN fails every comparison: refused too
            raise argparse.ArgumentTypeError(f"expected {expected}, got {excerpt(text)}")
        return value
    return parse


def bounded(kind: type[int] | type[float], low: float,
            high: float | None = None) -> Callable[[str], Any]:
    """:func:`arg_type` for a finite ``kind`` from ``low`` to ``high`` (a bare ``int`` took
    ``--port 99999`` and ``--workers 0``)."""
    top = math.inf if high is None else high
    expected = ("a whole number" if kind is int else "a number") + (
        f" from {low:g} to {top:g}" if high is not None else f" >= {low:g}")
    return arg_type(kind, lambda v: math.isfinite(v) and low <= v <= top, expected)
