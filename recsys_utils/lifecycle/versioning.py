"""Data and model versioning with DVC: the ratings store and the registry on a remote.

What is tracked (one pointer file each, committed with git):

* ``data/processed`` → ``data/processed.dvc``: the processed tables, including the
  ratings store that retraining appends to (``ratings``/``model``/``analytics.parquet``)
  and ``titles.parquet``;
* ``data/history`` → ``data/history.dvc``: the ratings history (every batch retraining
  accepted, every hold-back; ``recsys_utils.data.store.merge_history``), from which the
  cleaning step rebuilds the store — tracked once a retrain has written to it;
* ``outputs/models`` → ``outputs/models.dvc``: the model registry (every version, the
  champion pointer and its history).

Where the content goes: the DVC remote, chosen in this order:

1. ``$RECSYS_DVC_REMOTE`` (CI passes the team bucket this way; written to the
   uncommitted ``.dvc/config.local``);
2. the default remote of the DVC configuration (``recsys-ct remote gs://bucket/path``
   writes it to the committed ``.dvc/config``, so the whole team shares it);
3. a local folder outside the repository, ``$XDG_CACHE_HOME/recsys-dvc-remote``
   (``~/.cache/recsys-dvc-remote``): works offline, shared by the clones of one machine.

``gs://`` needs the ``dvc-gs`` plugin and ``s3://`` the ``dvc-s3`` plugin (the extras
``recsys-utils[dvc-gs]`` / ``[dvc-s3]``); the credentials are the cloud SDK's usual ones.

Why only outputs are tracked, and no ``dvc.yaml`` pipeline: the store and the registry
are *state* that retraining appends to, not a pure function of inputs: a DVC stage
deletes its outputs before re-running, which would throw away appended ratings and
the registry's history. And ``recsys-pipeline`` already decides what is up to date
(notebook content, effective parameters, input digests, code fingerprint, champion
identity); a ``dvc.yaml`` would be a second source of truth judging by other rules, and
``dvc status`` and the pipeline would disagree. So the pipeline decides what to
recompute; DVC only versions and ships what it produced.

DVC runs in-process through its Python API (``dvc.repo.Repo``: a subprocess per call
would cost a second of start-up each); a DVC failure becomes a ``DataError`` naming
the operation.

Retention: :func:`prune_versions` deletes old non-champion registry versions from the
workspace once they are in the remote; each pruned version is listed in
``outputs/models/pruned.jsonl`` with the registry pointer hash that still holds it,
and :func:`restore_version` fetches it back from the remote.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from recsys_utils.atomic import append_line, atomic_write_text, temp_folder
from recsys_utils.data.store import store_lock
from recsys_utils.errors import DataError
from recsys_utils.lifecycle import registry
from recsys_utils.paths import ProjectPaths, project_paths

__all__ = [
    "ENV_REMOTE",
    "REMOTE_NAME",
    "DEFAULT_KEEP",
    "PRUNED_FILE",
    "tracked_paths",
    "pointer_file",
    "default_local_remote",
    "configured_remote",
    "require_project",
    "remote_in_use",
    "check_remote",
    "absolute_url",
    "ensure_repo",
    "set_remote",
    "track",
    "push",
    "pull",
    "local_changes",
    "status",
    "pointer_hashes",
    "prune_versions",
    "restore_version",
]

ENV_REMOTE = "RECSYS_DVC_REMOTE"
REMOTE_NAME = "storage"
#: non-champion versions kept in the workspace by the retention rule (all stay in the remote)
DEFAULT_KEEP = 3
PRUNED_FILE = "pruned.jsonl"



def tracked_paths(paths: ProjectPaths) -> list[Path]:
    """The folders DVC versions: the processed tables (with the ratings store), the ratings
    history and the registry."""
    return [paths.processed, paths.history, paths.models]


def pointer_file(folder: Path) -> Path:
    """``data/processed`` → ``data/processed.dvc`` (the file git commits)."""
    return folder.with_name(folder.name + ".dvc")


def default_local_remote() -> Path:
    """The offline default: a folder outside any repository, shared by this machine's clones."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "recsys-dvc-remote"


# --------------------------------------------------------------------------- running dvc

_NOT_INSTALLED = ("DVC is not installed: `.venv/bin/pip install -e '.[dvc]'` (add the dvc-gs "
                  "or dvc-s3 extra for a cloud remote)")


def _dvc_logs_to_current_streams() -> None:
    """DVC binds its console log handlers to ``sys.stdout``/``sys.stderr`` when it is
    imported; a notebook kernel or a captured test may have replaced (and closed) those
    since, and DVC then raises on its next hint. Point them at the streams of now."""
    for handler in logging.getLogger("dvc").handlers:
        if isinstance(handler, logging.StreamHandler):  # not setStream: it flushes the old one
            handler.stream = sys.stderr if handler.level >= logging.WARNING else sys.stdout


@contextlib.contextmanager
def _repo(paths: ProjectPaths, what: str, remote_url: str | None = None) -> Iterator[Any]:
    """DVC's Python API on the project (in-process: a subprocess per call costs a second);
    any DVC failure becomes a ``DataError`` naming the operation. ``remote_url``: the
    default remote for this call only, in memory (nothing written to the configuration)."""
    try:
        from dvc.exceptions import DvcException
        from dvc.repo import Repo
    except ImportError as exc:
        raise DataError(_NOT_INSTALLED) from exc
    _dvc_logs_to_current_streams()
    config = ({"core": {"remote": REMOTE_NAME}, "remote": {REMOTE_NAME: {"url": remote_url}}}
              if remote_url else None)
    try:
        with Repo(str(paths.root), config=config) as repo:
            yield repo
    except DvcException as exc:
        raise DataError(f"`dvc {what}` failed in {paths.root}: "
                        + " ".join(str(exc).split())) from exc


def _require_git(paths: ProjectPaths) -> None:
    done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=paths.root,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 or Path(done.stdout.strip()).resolve() != paths.root.resolve():
        raise DataError(f"{paths.root} is not the root of a git repository: DVC pointer files "
                        "(*.dvc) are versioned with git; clone the project with git")


def configured_remote(paths: ProjectPaths) -> str | None:
    """URL of the default DVC remote (any config level), or ``None`` when there is none."""
    try:
        from dvc.config import Config
    except ImportError as exc:
        raise DataError(_NOT_INSTALLED) from exc
    config = Config(dvc_dir=str(paths.root / ".dvc"))
    name = config["core"].get("remote")
    return config["remote"].get(name, {}).get("url") if name else None


def require_project(paths: ProjectPaths) -> None:
    """Commands that only read or fetch need an existing DVC project: they never create one
    (only ``run``, ``push`` and ``remote URL`` may, through :func:`ensure_repo`)."""
    if not (paths.root / ".dvc").is_dir():
        raise DataError(f"{paths.root} is not a DVC project (no .dvc/ folder): run it from the "
                        "project's clone (or point $RECSYS_ROOT at it), or `dvc init` first")
    _require_git(paths)


def remote_in_use(paths: ProjectPaths, remote: str | None = None) -> tuple[str, str]:
    """``(url, where it comes from)``: the remote a command uses, in :func:`ensure_repo`'s
    order (``remote``, ``$RECSYS_DVC_REMOTE``, the DVC configuration, the local default),
    found without writing anything."""
    if remote:
        return remote, "the remote argument"
    if os.environ.get(ENV_REMOTE):
        return os.environ[ENV_REMOTE], f"${ENV_REMOTE}"
    try:
        from dvc.exceptions import DvcException
    except ImportError as exc:
        raise DataError(_NOT_INSTALLED) from exc
    try:
        configured = configured_remote(paths)
    except DvcException as exc:  # a malformed .dvc/config
        raise DataError(f"cannot read the DVC configuration in {paths.root / '.dvc'}: "
                        + " ".join(str(exc).split())) from exc
    if configured:
        return configured, "the DVC configuration"
    return str(default_local_remote()), "the default local remote"


def check_remote(url: str, origin: str, *, plugin_needed: bool = True) -> str | None:
    """Refuse a remote DVC cannot use, in one line instead of a traceback deep in DVC: a
    local path that is (or lies under) a file, or a cloud URL whose DVC plugin is missing.
    A missing plugin returns the message instead when ``plugin_needed`` is false."""
    if "://" not in url:
        folder = Path(url).expanduser()
        for part in (folder, *folder.parents):
            if part.exists():
                if not part.is_dir():
                    raise DataError(f"the DVC remote {url} (from {origin}) is not a folder: "
                                    f"{part} is a file; choose a folder (`recsys-ct remote "
                                    f"PATH`, ${ENV_REMOTE})")
                break
        return None
    scheme = url.split("://", 1)[0].lower()
    try:
        from dvc_objects.fs import registry as filesystems
    except ImportError:
        return None  # DVC itself is missing: the command says so
    try:
        filesystems[scheme]
    except ImportError as exc:
        extra = (f"`.venv/bin/pip install -e '.[dvc-{scheme}]'`" if scheme in ("gs", "s3")
                 else f"`.venv/bin/pip install dvc-{scheme}`")
        message = f"the DVC remote {url} (from {origin}): {exc}: {extra}"
        if plugin_needed:
            raise DataError(message) from exc
        return message
    return None


def _write_remote(paths: ProjectPaths, url: str, level: str) -> None:
    """Make ``url`` the default remote at config ``level`` (``local`` or ``repo``)."""
    with _repo(paths, f"remote add --{level} {REMOTE_NAME}") as repo:
        with repo.config.edit(level) as conf:
            conf["remote"][REMOTE_NAME] = {"url": url}
            conf["core"]["remote"] = REMOTE_NAME


def ensure_repo(paths: ProjectPaths | None = None, remote: str | None = None,
                log: Callable[[str], None] = print) -> str:
    """Make sure the project is a DVC repository with a default remote; return the remote URL.

    ``remote`` (or ``$RECSYS_DVC_REMOTE``) overrides the configured remote for this clone
    only (``.dvc/config.local``); with no remote anywhere, the local default folder is used.
    """
    paths = paths or project_paths()
    _require_git(paths)
    if not (paths.root / ".dvc").is_dir():
        try:
            from dvc.repo import Repo
        except ImportError as exc:
            raise DataError(_NOT_INSTALLED) from exc
        _dvc_logs_to_current_streams()
        Repo.init(str(paths.root)).close()
        log(f"initialised DVC in {paths.root} (commit .dvc/ and .dvcignore)")
    _ensure_dvcignore(paths)
    wanted = remote or os.environ.get(ENV_REMOTE) or None
    current = configured_remote(paths)
    if wanted is None and current is not None:
        return current
    url = _normalise(wanted or str(default_local_remote()))
    if url != current:
        _write_remote(paths, url, "local")
        log(f"DVC remote for this clone: {url}")
    return url


def _ensure_dvcignore(paths: ProjectPaths) -> None:
    """Transient files inside the tracked folders (temp files, locks, staging folders; all
    dot-files) are never versioned: list them in ``.dvcignore`` if it does not yet."""
    dvcignore = paths.root / ".dvcignore"
    old = dvcignore.read_text(encoding="utf-8") if dvcignore.is_file() else ""
    wanted = [f"{folder.relative_to(paths.root).as_posix()}/.*" for folder in tracked_paths(paths)]
    missing = [line for line in wanted if line not in old.splitlines()]
    if missing:
        atomic_write_text(dvcignore, old + ("\n" if old and not old.endswith("\n") else "")
                          + "# transient files in DVC-tracked folders\n" + "\n".join(missing)
                          + "\n")


def absolute_url(url: str) -> str:
    """Cloud URLs as given; a local folder made absolute (not created)."""
    return url if "://" in url else str(Path(url).expanduser().resolve())


def _normalise(url: str) -> str:
    """:func:`absolute_url`, a local folder created too (DVC expects it)."""
    url = absolute_url(url)
    if "://" not in url:
        Path(url).mkdir(parents=True, exist_ok=True)
    return url


def set_remote(url: str, paths: ProjectPaths | None = None) -> str:
    """Set the team's remote in the committed ``.dvc/config`` (commit it); returns the URL."""
    paths = paths or project_paths()
    ensure_repo(paths, remote=None, log=lambda _: None)
    url = _normalise(url)
    _write_remote(paths, url, "repo")
    # A clone-local override would hide the team's remote: drop it.
    with _repo(paths, "remote remove --local") as repo, repo.config.edit("local") as conf:
        conf["remote"].pop(REMOTE_NAME, None)
        conf["core"].pop("remote", None)
    return url


# --------------------------------------------------------------------------- track, push, pull


def pointer_hashes(paths: ProjectPaths) -> dict[str, str | None]:
    """``{pointer file (relative): md5 of the tracked folder}``; ``None`` when not tracked yet
    (the history is left out until a retrain has written to it)."""
    found: dict[str, str | None] = {}
    for folder in tracked_paths(paths):
        pointer = pointer_file(folder)
        rel = pointer.relative_to(paths.root).as_posix()
        if not pointer.is_file():
            # No history yet (nothing retrained): nothing to track, nothing to report.
            if folder != paths.history or (folder.is_dir() and any(folder.iterdir())):
                found[rel] = None
            continue
        data = yaml.safe_load(pointer.read_text(encoding="utf-8")) or {}
        outs = data.get("outs") or [{}]
        found[rel] = outs[0].get("md5")
    return found


def _tracked(hashes: dict[str, str | None]) -> list[str]:
    return [p for p, h in hashes.items() if h is not None]


def _absolute(paths: ProjectPaths, targets: list[str]) -> list[str]:
    """DVC's API resolves relative targets against the process's cwd: pass absolute ones."""
    return [str(paths.root / t) for t in targets]


def track(paths: ProjectPaths | None = None, remote: str | None = None,
          log: Callable[[str], None] = print) -> dict[str, str | None]:
    """``dvc add`` the tracked folders that exist; returns the pointer hashes (see above).

    Unchanged folders keep their pointer as it was (DVC re-hashes from its state cache).
    """
    paths = paths or project_paths()
    present = [f.relative_to(paths.root).as_posix() for f in tracked_paths(paths)
               if f.is_dir() and any(f.iterdir())]
    if not present:  # checked first: a failed push leaves no new .dvc/ behind
        raise DataError(f"nothing to track: {paths.processed} and {paths.models} are empty; "
                        "run `make pipeline` first")
    ensure_repo(paths, remote, log)
    with _repo(paths, "add " + " ".join(present)) as repo:
        repo.add(_absolute(paths, present))
    return pointer_hashes(paths)


def push(paths: ProjectPaths | None = None, remote: str | None = None,
         log: Callable[[str], None] = print) -> dict[str, str | None]:
    """Track the folders and upload their content to the remote; returns the pointer hashes.

    Commit the pointer files afterwards (``git add data/processed.dvc outputs/models.dvc``):
    they are how a teammate's ``make pull`` finds this exact content.
    """
    paths = paths or project_paths()
    hashes = track(paths, remote, log)
    url = ensure_repo(paths, remote, log=lambda _: None)
    with _repo(paths, "push") as repo:
        count = repo.push(_absolute(paths, _tracked(hashes)))
    log(f"pushed {count} new file(s) to {url} ({', '.join(_tracked(hashes))})")
    return hashes


def local_changes(paths: ProjectPaths) -> list[str]:
    """Tracked folders holding content DVC never saw: work nobody pushed.

    A folder that differs from its pointer file *and* whose content is not in the local
    DVC cache was changed here since the last pull or push (a ``make retrain``, an
    interrupted ``make ct``): pulling over it would lose that work. A folder that is an
    older pulled or pushed version (after a ``git pull`` of new pointer files) is in the
    cache, so replacing it loses nothing; a missing folder neither.
    """
    hashes = pointer_hashes(paths)
    changed = []
    with _repo(paths, "status") as repo:
        for pointer in _absolute(paths, _tracked(hashes)):
            out = repo.stage.load_one(pointer).outs[0]
            if not out.exists:
                continue
            content = out.get_hash().value  # DVC's state cache makes a re-hash cheap
            if content != out.hash_info.value and not out.cache.exists(content):
                changed.append(Path(out.fs_path).relative_to(paths.root).as_posix())
    return changed


def pull(paths: ProjectPaths | None = None, remote: str | None = None,
         log: Callable[[str], None] = print, discard: bool = False) -> dict[str, str | None]:
    """Fetch the tracked folders named by the committed pointer files from the remote.

    Returns the pointer hashes. ``DataError`` when no pointer file exists yet (nothing was
    pushed from this repository: run ``make pipeline`` and ``make push`` once), when the
    remote lacks the content (someone committed pointers without pushing), or when a
    tracked folder has local changes (:func:`local_changes`) and ``discard`` is false.
    """
    paths = paths or project_paths()
    url = ensure_repo(paths, remote, log)
    hashes = pointer_hashes(paths)
    if not _tracked(hashes):
        raise DataError(f"no DVC pointer file ({', '.join(hashes)}) in {paths.root}: nothing "
                        "was pushed yet; run `make pipeline` then `make push` (and commit the "
                        "*.dvc files)")
    changed = local_changes(paths)
    if changed and not discard:
        raise DataError(f"{', '.join(changed)} differ from the committed pointer files (an "
                        "unpushed `make retrain` or an interrupted `make ct`): `make push` to "
                        "keep them, or `recsys-ct pull --discard` to replace them with the "
                        "remote's version")
    try:
        with _repo(paths, "pull") as repo:
            repo.pull(_absolute(paths, _tracked(hashes)), force=True)
    except DataError as exc:
        raise DataError(f"{exc}. The remote {url} lacks content the committed pointer files "
                        "name: whoever committed them must run `make push` (or set the right "
                        f"remote: `recsys-ct remote URL`, ${ENV_REMOTE})") from exc
    log(f"pulled {', '.join(_tracked(hashes))} from {url}")
    return hashes


def status(paths: ProjectPaths | None = None, remote: str | None = None) -> dict:
    """What differs: ``workspace`` (folders vs pointers) and ``remote`` (cache vs remote).

    Both are DVC's status (empty dict = in sync); ``remote_url`` and ``pointers``
    (the hashes) say which remote and which versions. Read-only: no ``dvc init`` (outside
    a DVC project it is a ``DataError``), no remote written to the configuration, no
    ``.dvcignore`` edit, no remote folder created (a remote that does not exist yet holds
    nothing: everything is new there).
    """
    paths = paths or project_paths()
    require_project(paths)
    url, origin = remote_in_use(paths, remote)
    check_remote(url, origin)
    url = absolute_url(url)
    hashes = pointer_hashes(paths)
    found: dict[str, Any] = {"remote_url": url, "pointers": hashes, "workspace": {},
                             "remote": {}}
    if _tracked(hashes):
        with _repo(paths, "status", remote_url=url) as repo:
            targets = _absolute(paths, _tracked(hashes))
            found["workspace"] = repo.status(targets)
            found["remote"] = repo.status(targets, cloud=True)
    return found


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune_versions` removed and what it kept."""

    pruned: list[str]
    kept: list[str]
    reason: str


def _protected(paths: ProjectPaths) -> set[str]:
    """The champion, the pointer's previous version and the next rollback target (the last
    of its ``earlier`` walk-back list): a rollback never needs a restore first."""
    pointer = paths.models / registry.CHAMPION_FILE
    if not pointer.is_file():
        return set()
    record = json.loads(pointer.read_text(encoding="utf-8"))
    earlier = record.get("earlier") if isinstance(record.get("earlier"), list) else []
    return {str(v) for v in (record.get("version"), record.get("previous"), *earlier[-1:]) if v}


def prune_versions(paths: ProjectPaths | None = None, keep: int = DEFAULT_KEEP,
                   pushed_hash: str | None = None,
                   log: Callable[[str], None] = print) -> PruneResult:
    """Delete all but the newest ``keep`` non-champion versions from the workspace registry.

    Never pruned: the champion, the previous champion, the next rollback target, and any
    version not yet in the remote (a walk-back rollback skips pruned versions).
    ``pushed_hash`` is the registry pointer hash (``outputs/models.dvc``) known to be in
    the remote — normally the one just pulled;
    only versions inside it are pruned, so each stays retrievable with
    :func:`restore_version`. Each pruned version is appended to ``pruned.jsonl``.
    """
    paths = paths or project_paths()
    if pushed_hash is None:
        pushed_hash = pointer_hashes(paths)[pointer_file(paths.models)
                                            .relative_to(paths.root).as_posix()]
    if pushed_hash is None:
        return PruneResult([], registry.list_versions(paths),
                           "the registry is not in the remote yet")
    in_remote = set(_versions_in(paths, pushed_hash))
    with store_lock(paths):  # no rollback or retrain moves the pointer meanwhile
        protected = _protected(paths)
        candidates = [v for v in registry.list_versions(paths) if v not in protected]
        old = candidates[:-keep] if keep > 0 else candidates
        pruned = [v for v in old if v in in_remote]
        for version in pruned:
            manifest = registry.read_manifest(version, paths)
            # Logged before deleting: a crash in between leaves a logged version still
            # present (restore_version finds it), never a deleted one nobody can find.
            append_line(paths.models / PRUNED_FILE, json.dumps({
                "version": version, "pruned_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "registry_hash": pushed_hash, "created_at": manifest.get("created_at"),
                "notes": manifest.get("notes", "")}))
            registry.remove_version(version, paths)  # atomic: never half a version
    if pruned:
        log(f"retention: pruned {', '.join(pruned)} from the workspace (kept in the remote; "
            f"`recsys-ct restore VERSION` fetches one back)")
    kept = registry.list_versions(paths)
    return PruneResult(pruned, kept, f"keep the champion, its predecessor and the newest {keep} "
                                     "other versions; prune only what the remote holds")


def _dir_listing(paths: ProjectPaths, dir_hash: str) -> list[dict]:
    """The file list of a tracked folder version, from the local DVC cache (where a pull or
    a push left it); empty when the cache does not have it (then nothing is pruned)."""
    with _repo(paths, "cache") as repo:
        listing = Path(repo.cache.local.oid_to_path(dir_hash))
    if not listing.is_file():
        return []
    return json.loads(listing.read_text(encoding="utf-8"))


def _versions_in(paths: ProjectPaths, dir_hash: str) -> list[str]:
    names = {entry["relpath"].split("/", 1)[0] for entry in _dir_listing(paths, dir_hash)}
    return sorted(n for n in names if n.startswith("v") and n[1:].isdigit())


def restore_version(version: str, paths: ProjectPaths | None = None,
                    remote: str | None = None, log: Callable[[str], None] = print) -> Path:
    """Fetch a pruned registry version back from the remote into ``outputs/models/VERSION``."""
    paths = paths or project_paths()
    ensure_repo(paths, remote, log)
    if (paths.models / version).is_dir():
        return paths.models / version
    log_path = paths.models / PRUNED_FILE
    records = ([json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()
                if line.strip()] if log_path.is_file() else [])
    found = [r for r in records if r.get("version") == version]
    if not found:
        raise DataError(f"{version} is not in {log_path} (pruned versions: "
                        f"{', '.join(r['version'] for r in records) or 'none'})")
    # A throw-away pointer file naming the old registry folder: `dvc pull` fetches it.
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=paths.root) as tmp:
        name = Path(tmp).name
        pointer = Path(tmp + ".dvc")
        pointer.write_text(yaml.safe_dump({"outs": [{"md5": found[-1]["registry_hash"],
                                                     "hash": "md5", "path": name}]}),
                           encoding="utf-8")
        try:
            shutil.rmtree(tmp)
            with _repo(paths, "pull (restore)") as repo:
                repo.pull([str(pointer)], force=True)
            staging = temp_folder(paths.models, registry.STAGING_PREFIX)
            shutil.copytree(Path(tmp) / version, staging, dirs_exist_ok=True)
            os.rename(staging, paths.models / version)
        finally:
            pointer.unlink(missing_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
    registry.read_manifest(version, paths)
    log(f"restored {version} from the remote")
    return paths.models / version

