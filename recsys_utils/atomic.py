"""Crash-safe file writes, and the fault hook that tests them.

Every durable write of the project goes through this module: a table, a JSON
record, the champion pointer, a registry version folder, a line of an audit log.

Why atomic writes: a command can be interrupted at any moment (``kill -9``, a CI
runner cancelled, a full disk, a power loss). A file is written to a temporary
file in the *same* directory (``.<name>.<random>.tmp``), flushed and fsync-ed,
then moved over the old one with ``os.replace`` (an atomic rename on POSIX and
Windows), and the directory entry is fsync-ed. A reader sees either the old file
or the new one, never half of one; a crash leaves at most a temporary file, which
the next command removes (``recsys_utils.lifecycle.retrain.recover``).

The fault hook: every durable write calls :func:`durable_point` right before the
rename that publishes it, which counts the write. With ``RECSYS_CRASH_AT_WRITE=k``
in the environment the process dies there (``os._exit``, like ``kill -9``: no
``finally``, no cleanup) at the k-th write, after the temporary file is complete
but before it replaces anything. A crash-injection test runs an operation once to
count its writes N, then for every k in 1..N in a subprocess that dies at write k
(``tests/test_crash.py``) — no timing involved. ``RECSYS_WRITE_LOG=path`` appends
one line per write (number and file) so the crash points can be named.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "CRASH_ENV",
    "CRASH_EXIT_CODE",
    "WRITE_LOG_ENV",
    "append_line",
    "atomic_rename",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "temp_folder",
    "durable_point",
    "durable_writes",
    "fsync_dir",
    "remove_temp_files",
    "reset_durable_writes",
]

#: Environment variable: die at this (1-based) durable write.
CRASH_ENV = "RECSYS_CRASH_AT_WRITE"
#: Environment variable: append "<n>\t<file>" for every durable write to this file.
WRITE_LOG_ENV = "RECSYS_WRITE_LOG"
#: Exit status of a process killed by the fault hook (tells it from a real failure).
CRASH_EXIT_CODE = 86

_writes = 0


def durable_writes() -> int:
    """How many durable writes this process has made so far."""
    return _writes


def reset_durable_writes() -> None:
    """Count from zero again (a crash-injection harness, in a freshly forked process)."""
    global _writes
    _writes = 0


def durable_point(target: str | Path) -> None:
    """Count one durable write of ``target``; die here when the fault hook asks for it."""
    global _writes
    _writes += 1
    log = os.environ.get(WRITE_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{_writes}\t{target}\n")
    crash_at = os.environ.get(CRASH_ENV)
    if crash_at and int(crash_at) == _writes:
        os._exit(CRASH_EXIT_CODE)  # like kill -9: nothing after this runs


def fsync_dir(folder: Path) -> None:
    """Flush a directory entry so a rename survives a power loss (no-op where unsupported)."""
    with contextlib.suppress(OSError):  # Windows cannot open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (``os.umask``
    sets it, which would race with other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, folder: bool = False) -> None:
    """Give a ``mkstemp`` / ``mkdtemp`` path the mode ``open`` / ``mkdir`` would have: they
    create 0600 / 0700, so a service reading the artifacts as another user (the API, a
    teammate on a shared volume) would be refused what a plain write lets it read.
    Best effort: a filesystem that refuses ``chmod`` (some network or FAT mounts) keeps
    its own modes, and the write goes on."""
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def temp_folder(parent: Path, prefix: str) -> Path:
    """A new folder in ``parent`` to fill and then publish with :func:`atomic_rename`."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    _usual_mode(folder, folder=True)
    return folder


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
        _usual_mode(tmp)
        write(tmp)
        with open(tmp, "rb+") as fh:  # the writer may have closed its handle without fsync
            os.fsync(fh.fileno())
        durable_point(path)
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


def atomic_rename(src: Path, dst: Path) -> None:
    """Publish a fully written file or folder ``src`` (fsync-ed by the caller) as ``dst``.

    ``os.rename`` (not ``replace``): it fails when ``dst`` exists, which is how a
    registry version name is reserved.
    """
    durable_point(dst)
    os.rename(src, dst)
    fsync_dir(Path(dst).parent)


def append_line(path: str | Path, line: str) -> None:
    """Append one line to a log file and fsync it (a torn last line is ignored by readers)."""
    path = Path(path)
    durable_point(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def remove_temp_files(folder: Path) -> list[str]:
    """Remove the temporary files interrupted writes left in ``folder``; returns their names.

    Call only under the lock that serialises the writers of ``folder``: a temporary file
    of a write in progress looks the same.
    """
    removed = []
    for tmp in (*folder.glob(".*.tmp"), *folder.glob("*.parquet.tmp")):  # the latter: older code
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp.name)
    return sorted(removed)
