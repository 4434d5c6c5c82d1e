"""Crash-safe writes and the fault hook (the harness itself is tests/test_crash.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from recsys_utils import atomic


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic.atomic_write_text(path, "one")
    atomic.atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_a_failing_writer_leaves_the_old_file_untouched(tmp_path):
    path = tmp_path / "a.txt"
    atomic.atomic_write_text(path, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_every_durable_write_is_counted(tmp_path):
    before = atomic.durable_writes()
    atomic.atomic_write_text(tmp_path / "a", "x")
    atomic.append_line(tmp_path / "log", "line")
    (tmp_path / "dir").mkdir()
    atomic.atomic_rename(tmp_path / "dir", tmp_path / "published")
    assert atomic.durable_writes() - before == 3
    assert (tmp_path / "log").read_text() == "line\n"
    assert (tmp_path / "published").is_dir()


def test_remove_temp_files_removes_only_temporaries(tmp_path):
    for name in (".ratings.parquet.ab12.tmp", "model.parquet.tmp", "ratings.parquet", ".lock"):
        (tmp_path / name).write_text("x")
    assert atomic.remove_temp_files(tmp_path) == [".ratings.parquet.ab12.tmp", "model.parquet.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "ratings.parquet"]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_fault_hook_kills_the_process_at_the_kth_write(tmp_path, k):
    """Die at write k: writes before k are in place, write k left only its temporary file."""
    script = textwrap.dedent(f"""
        from pathlib import Path
        from recsys_utils.atomic import atomic_write_text
        for i in (1, 2, 3):
            atomic_write_text(Path({str(tmp_path)!r}) / f"f{{i}}", str(i))
        print("survived")
    """)
    log = tmp_path / "writes.log"
    env = {**os.environ, atomic.CRASH_ENV: str(k), atomic.WRITE_LOG_ENV: str(log)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == atomic.CRASH_EXIT_CODE
    assert "survived" not in done.stdout
    assert sorted(p.name for p in tmp_path.glob("f*")) == [f"f{i}" for i in range(1, k)]
    assert len(list(tmp_path.glob(f".f{k}.*.tmp"))) == 1  # complete, never published
    assert [line.split("\t")[0] for line in log.read_text().splitlines()] == [
        str(i) for i in range(1, k + 1)]


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask 022", "umask 077"])
def test_written_files_and_version_folders_get_the_mode_a_plain_write_gives(tmp_path, umask):
    """mkstemp / mkdtemp create 0600 / 0700: every table, record and registry version was
    unreadable to another user (the API's service account, a teammate on a shared volume)."""
    import pandas as pd

    from recsys_utils.lifecycle import registry
    from recsys_utils.paths import project_paths

    old = os.umask(umask)
    try:
        table = atomic.atomic_write(tmp_path / "t.parquet",
                                    lambda tmp: pd.DataFrame({"a": [1]}).to_parquet(tmp))
        text = atomic.atomic_write_text(tmp_path / "r.json", "{}")
        paths = project_paths(tmp_path / "project")
        version = registry.register_model({"a": 1}, params={}, metrics={}, paths=paths,
                                          data_fingerprint="x", promote=True)
    finally:
        os.umask(old)
    folder = paths.models / version
    files = [table, text, folder / registry.MANIFEST_FILE, folder / registry.MODEL_FILE,
             paths.models / registry.CHAMPION_FILE]
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {
        f.name: oct(0o666 & ~umask) for f in files}
    assert oct(folder.stat().st_mode & 0o777) == oct(0o777 & ~umask)
