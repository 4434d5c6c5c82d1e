"""The model registry: versioned models, their manifests and an atomic champion pointer.

Layout under ``outputs/models/`` (``ProjectPaths.models``)::

    v0001/model.pkl          the pickled, fully fitted model
    v0001/manifest.json      what it is (see ``register_model``)
    v0002/...
    champion.json            {"version": "v0002", "updated_at": ..., "reason": ...}
    champion_history.jsonl   one line per pointer change (audit trail, used by rollback)

Why this design:

* A version folder is built under a temporary name (``.staging-*``) and renamed into
  place, so a half-written version never exists under its real name; the next command
  removes staging leftovers (:func:`recover_registry`).
* The champion pointer is a small JSON file replaced atomically (``recsys_utils.atomic``):
  readers (the API, ``load_champion``) see the old champion or the new one,
  never a torn pointer. A JSON file rather than a symlink because it also works
  on Windows and in CI artifact uploads. It also holds ``earlier``, the champions a
  rollback walks back through (newest last), so rolling back twice goes back two
  champions instead of flipping between the last two.
* Every change of the pointer takes the store lock (``recsys_utils.data.store.store_lock``)
  and re-checks, under it, what it read (:func:`promote`'s ``expected``).
* Version names are validated (``v0001``): a path such as ``../models/v0001`` is refused.
* Every file's sha256 is stored in the manifest and verified before
  unpickling: a truncated or tampered ``model.pkl`` is refused with a
  ``DataError`` instead of loading garbage (or running arbitrary pickle code
  from a file we did not write).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_utils.atomic import append_line, atomic_rename, atomic_write_text, fsync_dir
from recsys_utils.data.store import store_lock
from recsys_utils.data.tables import read_json_object
from recsys_utils.errors import DataError, excerpt
from recsys_utils.fingerprint import code_fingerprint
from recsys_utils.lifecycle.compat import check_libraries
from recsys_utils.paths import ProjectPaths, project_paths

__all__ = [
    "MODEL_FILE",
    "MANIFEST_FILE",
    "CHAMPION_FILE",
    "register_model",
    "load_champion",
    "load_version",
    "champion_version",
    "list_versions",
    "versions_table",
    "read_manifest",
    "promote",
    "rollback",
    "library_versions",
    "sha256_file",
    "check_version_name",
    "recover_registry",
    "remove_version",
]

MODEL_FILE = "model.pkl"
MANIFEST_FILE = "manifest.json"
CHAMPION_FILE = "champion.json"
HISTORY_FILE = "champion_history.jsonl"
_PIPELINE_HINT = "run `make pipeline` (03_modeling registers the first model)"
_VERSION_NAME = re.compile(r"v\d{4,}")
STAGING_PREFIX = ".staging-"


# --------------------------------------------------------------------------- helpers


def _paths(paths: ProjectPaths | None) -> ProjectPaths:
    return paths if paths is not None else project_paths()


def _utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries a pickled model depends on (unpickling needs compatible ones)."""
    versions = {"python": platform.python_version()}
    for key, dist in (("numpy", "numpy"), ("pandas", "pandas"), ("scipy", "scipy"),
                      ("scikit-surprise", "scikit-surprise"), ("recsys_utils", "recsys-utils")):
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = "not installed"
    return versions


def _jsonable(value: Any) -> Any:
    """Make numpy scalars, tuples, paths and timestamps JSON-serialisable (params/metrics)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, Path | datetime | pd.Timestamp):
        return str(value)
    return value


def _is_version_dir(folder: Path) -> bool:
    return (folder.is_dir() and _VERSION_NAME.fullmatch(folder.name) is not None
            and (folder / MANIFEST_FILE).is_file())


def check_version_name(version: str) -> str:
    """``version`` if it is a registry version name (``v0001``); ``DataError`` otherwise."""
    if not isinstance(version, str) or _VERSION_NAME.fullmatch(version) is None:
        raise DataError(f"{excerpt(version)} is not a version name: expected v0001, v0002, ... "
                        "(see `recsys-retrain --list`)")
    return version


def _next_version_number(models: Path) -> int:
    numbers = [0]
    for folder in models.glob("v*"):
        digits = folder.name[1:]
        if folder.is_dir() and digits.isdigit():
            numbers.append(int(digits))
    return max(numbers) + 1


def _earlier(record: dict | None) -> list[str]:
    """The champions a rollback walks back through, newest last (older pointers: ``previous``)."""
    if record is None:
        return []
    if isinstance(record.get("earlier"), list):
        return [str(v) for v in record["earlier"]]
    return [record["previous"]] if record.get("previous") else []


def _write_pointer(models: Path, version: str, reason: str, earlier: list[str]) -> None:
    """Move the champion pointer atomically, then append the change to the history log.

    The pointer is the source of truth; the log is its audit trail (a crash between the
    two is repaired by :func:`recover_registry`).
    """
    previous = _read_pointer(models)
    record = {
        "version": version,
        "previous": previous["version"] if previous else None,
        "updated_at": _utc_now(),
        "reason": reason,
        "earlier": earlier,
    }
    atomic_write_text(models / CHAMPION_FILE, json.dumps(record, indent=2) + "\n")
    append_line(models / HISTORY_FILE, json.dumps(record))


def _read_pointer(models: Path) -> dict | None:
    pointer = models / CHAMPION_FILE
    if not pointer.is_file():
        return None
    record = read_json_object(pointer, _PIPELINE_HINT)
    version = record.get("version")
    if not isinstance(version, str) or _VERSION_NAME.fullmatch(version) is None:
        raise DataError(f"{pointer} names no version (\"version\": {excerpt(version)}; expected "
                        f"v0001, v0002, ...); roll back (`recsys-retrain --rollback VERSION`) "
                        f"or {_PIPELINE_HINT}")
    return record


def _history(models: Path) -> list[dict]:
    """The pointer changes logged so far, oldest first (a line torn by a crash is skipped)."""
    path = models / HISTORY_FILE
    records = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _last_history_record(models: Path) -> dict | None:
    history = _history(models)
    return history[-1] if history else None


def remove_version(version: str, paths: ProjectPaths | None = None) -> None:
    """Delete a version folder: renamed to a staging name first, so a crash midway leaves
    only a staging leftover (removed by :func:`recover_registry`), never half a version."""
    models = _paths(paths).models
    folder = models / check_version_name(version)
    if not folder.is_dir():
        return
    trash = models / f"{STAGING_PREFIX}removed-{version}"
    shutil.rmtree(trash, ignore_errors=True)
    os.rename(folder, trash)
    fsync_dir(models)
    shutil.rmtree(trash, ignore_errors=True)


def recover_registry(paths: ProjectPaths | None = None) -> list[str]:
    """Tidy what a crash left in the registry; returns what was done.

    Removes staging folders (``.staging-*``: a model being pickled or a version being
    removed) and temporary files, and appends the pointer's record to the history log
    when a crash came between moving the pointer and logging it. Call under the store lock.
    """
    models = _paths(paths).models
    done: list[str] = []
    if not models.is_dir():
        return done
    for leftover in sorted(models.glob(f"{STAGING_PREFIX}*")):
        shutil.rmtree(leftover, ignore_errors=True)
        done.append(f"removed {leftover.name}")
    for tmp in sorted(models.glob(".*.tmp")):
        tmp.unlink(missing_ok=True)
        done.append(f"removed {tmp.name}")
    pointer = _read_pointer(models)
    last = _last_history_record(models)
    if pointer is not None and (last is None or (last.get("version"), last.get("updated_at"))
                                != (pointer["version"], pointer.get("updated_at"))):
        append_line(models / HISTORY_FILE, json.dumps(pointer))
        done.append(f"logged the pointer change to {pointer['version']}")
    # A version registered to be promoted that the pointer never named: the crash came
    # between the rename and the pointer; finish the registration.
    ever = {r.get("version") for r in _history(models)}
    for version in list_versions(paths):
        if version not in ever and read_manifest(version, paths).get("promote_on_register"):
            _promote(version, paths, reason="registered (recovered)", expected=None)
            done.append(f"promoted {version} (its registration was cut short)")
    return done


# --------------------------------------------------------------------------- public API


def register_model(
    model: object,
    *,
    params: dict,
    metrics: dict,
    data_fingerprint: str,
    paths: ProjectPaths | None = None,
    promote: bool = True,
    notes: str = "",
    extra: dict | None = None,
) -> str:
    """Save ``model`` as a new registry version and (optionally) make it the champion.

    Args:
        model: the fully fitted object to pickle (a ``recsys_utils.ranking.recommender.Recommender``).
        params: everything needed to retrain it the same way; retraining reads
            ``params["rating_params"]``, ``params["ranking_params"]`` and ``params["seed"]``.
        metrics: its scores, including *which* holdout they were measured on
            (e.g. ``{"holdout": {...protocol...}, "rmse": 0.86, "ndcg@10": 0.12}``).
        data_fingerprint: ``recsys_utils.fingerprint.data_fingerprint`` of the training table.
        paths: project paths (default: ``project_paths()``).
        promote: move the champion pointer to this version.
        notes: free text (why it was registered).
        extra: additional manifest fields (e.g. the decision record id).

    Returns:
        The new version name, ``v0001``, ``v0002``, ... (numbered in registration order).

    The manifest holds: version, created_at (UTC ISO 8601), data_fingerprint,
    params, metrics, libraries (python, numpy, pandas, scipy, scikit-surprise,
    recsys_utils), files (sha256 and size of ``model.pkl``), notes.
    """
    with store_lock(paths):  # recovery removes staging folders: not while we fill one
        return _register(model, params=params, metrics=metrics,
                         data_fingerprint=data_fingerprint, paths=paths, promote=promote,
                         notes=notes, extra=extra)


def _register(model: object, *, params: dict, metrics: dict, data_fingerprint: str,
              paths: ProjectPaths | None, promote: bool, notes: str, extra: dict | None) -> str:
    models = _paths(paths).models
    models.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=models))
    try:
        model_path = staging / MODEL_FILE
        with open(model_path, "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        files = {MODEL_FILE: {"sha256": sha256_file(model_path), "bytes": model_path.stat().st_size}}
        manifest: dict[str, Any] = {
            "version": None,  # filled once the name is reserved
            "created_at": _utc_now(),
            "data_fingerprint": data_fingerprint,
            "params": _jsonable(params),
            "metrics": _jsonable(metrics),
            "libraries": library_versions(),
            "code_fingerprint": code_fingerprint(),
            "files": files,
            "notes": notes,
        }
        if promote:  # the intent, so recovery can finish a registration cut short
            manifest["promote_on_register"] = True
        if extra:
            manifest.update(_jsonable(extra))
        # Reserve the next free name by renaming the staging folder onto it;
        # rename fails if another process took the name first, so retry.
        for _ in range(1000):
            version = f"v{_next_version_number(models):04d}"
            manifest["version"] = version
            atomic_write_text(staging / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
            try:
                atomic_rename(staging, models / version)
            except OSError:
                if (models / version).exists():
                    continue
                raise
            break
        else:  # pragma: no cover - a thousand concurrent registrations
            raise RuntimeError("could not reserve a registry version name")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if promote:
        _promote(version, paths, reason=notes or "registered", expected=None)
    return version


def read_manifest(version: str, paths: ProjectPaths | None = None) -> dict:
    """The manifest of ``version``; ``DataError`` if the name is not a version name, the
    version does not exist or its manifest is not a JSON object."""
    models = _paths(paths).models
    manifest_path = models / check_version_name(version) / MANIFEST_FILE
    if not manifest_path.is_file():
        known = ", ".join(list_versions(paths)) or "none"
        raise DataError(
            f"no model version {version!r} in {models} (expected {manifest_path}); "
            f"known versions: {known}"
        )
    return read_json_object(manifest_path, f"roll back (`recsys-retrain --rollback`) or "
                                           f"{_PIPELINE_HINT}")


def list_versions(paths: ProjectPaths | None = None) -> list[str]:
    """Registered versions, oldest first (empty list when the registry is empty or missing)."""
    models = _paths(paths).models
    if not models.is_dir():
        return []
    return sorted(f.name for f in models.iterdir() if _is_version_dir(f))


def find_version(*, params: dict, metrics: dict, data_fingerprint: str,
                 paths: ProjectPaths | None = None) -> str | None:
    """The newest version trained on the same data with the same params and metrics, or ``None``.

    A seeded training run repeated on unchanged data and code (nbval re-executing ``03_modeling``,
    a forced pipeline rerun) gives the same manifest: reusing that version avoids
    training again and filling the registry with copies.
    """
    wanted = json.dumps([data_fingerprint, _jsonable(params), _jsonable(metrics),
                         library_versions(), code_fingerprint()], sort_keys=True)
    for version in reversed(list_versions(paths)):
        m = read_manifest(version, paths)
        found = [m.get("data_fingerprint"), m.get("params"), m.get("metrics"),
                 m.get("libraries"), m.get("code_fingerprint")]
        if json.dumps(found, sort_keys=True) == wanted:
            return version
    return None


def register_or_reuse(
    train: Callable[[], object],
    *,
    params: dict,
    metrics: dict,
    data_fingerprint: str,
    paths: ProjectPaths | None = None,
    notes: str = "",
) -> tuple[str, object, bool]:
    """Make the model of this run the champion: reuse an identical version, else train one.

    ``train`` is called only when no version matches (:func:`find_version`).
    Returns ``(version, model, reused)``.
    """
    version = find_version(params=params, metrics=metrics, data_fingerprint=data_fingerprint,
                           paths=paths)
    if version is None:
        model = train()
        version = register_model(model, params=params, metrics=metrics,
                                 data_fingerprint=data_fingerprint, paths=paths, notes=notes)
        return version, model, False
    model, _ = load_version(version, paths)
    if champion_version(paths) != version:
        promote(version, paths, reason="the same run again: reused")
    return version, model, True


def champion_version(paths: ProjectPaths | None = None) -> str | None:
    """The version the champion pointer names, or ``None`` when no model was promoted yet."""
    record = _read_pointer(_paths(paths).models)
    return record["version"] if record else None


def versions_table(paths: ProjectPaths | None = None) -> pd.DataFrame:
    """One row per version: created_at, champion flag, data fingerprint, scalar metrics, notes."""
    champ = champion_version(paths)
    rows = []
    for version in list_versions(paths):
        manifest = read_manifest(version, paths)
        row = {
            "version": version,
            "champion": version == champ,
            "created_at": manifest.get("created_at"),
            "data_fingerprint": manifest.get("data_fingerprint"),
        }
        row.update(
            {k: v for k, v in manifest.get("metrics", {}).items() if isinstance(v, int | float)}
        )
        row["notes"] = manifest.get("notes", "")
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["version", "champion", "created_at", "notes"])
    table = pd.DataFrame(rows)
    return table[[c for c in table.columns if c != "notes"] + ["notes"]]


def _verify(version: str, paths: ProjectPaths | None) -> tuple[Path, dict]:
    """Check every file of ``version`` against its manifest checksum; return folder and manifest."""
    manifest = read_manifest(version, paths)
    folder = _paths(paths).models / version
    files = manifest.get("files") or {}
    if MODEL_FILE not in files:
        raise DataError(f"{folder / MANIFEST_FILE} lists no checksum for {MODEL_FILE}")
    for name, info in files.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing (listed in its manifest); {_PIPELINE_HINT}")
        actual = sha256_file(path)
        if actual != info.get("sha256"):
            raise DataError(
                f"checksum mismatch for {path}: sha256 {actual[:12]}..., the manifest says "
                f"{str(info.get('sha256'))[:12]}...; refusing to unpickle it. Roll back "
                f"(`recsys-retrain --rollback VERSION`) or {_PIPELINE_HINT}"
            )
    return folder, manifest


def load_version(version: str, paths: ProjectPaths | None = None) -> tuple[object, dict]:
    """Load a registered model after verifying its checksums: ``(model, manifest)``.

    Library versions differing from the recorded ones are refused or warned about
    (``recsys_utils.lifecycle.compat`` says which and why) before unpickling.
    """
    folder, manifest = _verify(version, paths)
    check_libraries(manifest, library_versions())
    with open(folder / MODEL_FILE, "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - checksum verified against our own manifest
    return model, manifest


def _champion_or_raise(paths: ProjectPaths | None) -> str:
    models = _paths(paths).models
    record = _read_pointer(models)
    if record is None:
        raise DataError(
            f"no champion model: {models / CHAMPION_FILE} does not exist; {_PIPELINE_HINT}"
        )
    return record["version"]


def champion_manifest(paths: ProjectPaths | None = None) -> dict:
    """The champion's manifest, without loading the model (``DataError`` as ``load_champion``)."""
    return read_manifest(_champion_or_raise(paths), paths)


def load_champion(paths: ProjectPaths | None = None) -> tuple[object, dict]:
    """Load the champion model after verifying its checksums: ``(model, manifest)``.

    Raises:
        DataError: no registry / no champion yet (telling to run ``make pipeline``),
            or a checksum mismatch.
    """
    return load_version(_champion_or_raise(paths), paths)


def promote(version: str, paths: ProjectPaths | None = None, reason: str = "promoted",
            expected: str | None = None) -> str:
    """Make ``version`` the champion (checksums verified first); returns the previous champion.

    Takes the store lock; with ``expected``, refuses (``DataError``) when the champion is
    no longer the one the caller read (another command moved the pointer meanwhile).
    """
    with store_lock(paths):
        return _promote(version, paths, reason, expected)


def _promote(version: str, paths: ProjectPaths | None, reason: str,
             expected: str | None) -> str:
    _verify(version, paths)
    models = _paths(paths).models
    current = _read_pointer(models)
    previous = current["version"] if current else None
    if expected is not None and previous != expected:
        raise DataError(f"the champion changed from {expected} to {previous} while this "
                        f"command ran; {version} was not promoted (run the command again)")
    if previous == version:
        return previous
    earlier = _earlier(current) + ([previous] if previous else [])
    _write_pointer(models, version, reason, earlier)
    return previous or ""


def rollback(version: str | None = None, paths: ProjectPaths | None = None) -> str:
    """Point the champion back at ``version`` (default: the champion before the current one).

    Without a version, each rollback goes one champion further back through the pointer's
    ``earlier`` list (skipping versions no longer registered), never forth again. With a
    version (a validated registry name), the pointer moves there and the walk-back list is
    cut at that version. The target's checksums are verified before the pointer moves,
    under the store lock. Returns the new champion version.
    """
    models = _paths(paths).models
    if version is not None:
        check_version_name(version)
    with store_lock(paths):
        current = _read_pointer(models)
        if current is None:
            raise DataError(f"nothing to roll back: {models / CHAMPION_FILE} does not exist; "
                            f"{_PIPELINE_HINT}")
        earlier = _earlier(current)
        if version is None:
            known = set(list_versions(paths))
            while earlier and earlier[-1] not in known:
                earlier.pop()
            if not earlier:
                raise DataError(
                    f"nothing to roll back to: {current['version']} has no earlier champion "
                    "in the registry; pass a version (see `recsys-retrain --list`)")
            version = earlier.pop()
        elif version in earlier:
            earlier = earlier[:len(earlier) - 1 - earlier[::-1].index(version)]
        elif version != current["version"]:
            earlier.append(current["version"])
        if version == current["version"]:
            return version
        _verify(version, paths)
        _write_pointer(models, version, f"rollback to {version}", earlier)
    return version
