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
import stat
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_utils.atomic import (
    append_line,
    atomic_rename,
    atomic_write_text,
    fsync_dir,
    temp_folder,
)
from recsys_utils.data.store import store_lock
from recsys_utils.data.tables import json_object_or_problem
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
    "load_evaluated",
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
    "pointer_problem",
    "manifest_or_damage",
    "BATCH_KIND",
    "is_batch_manifest",
]

MODEL_FILE = "model.pkl"
MANIFEST_FILE = "manifest.json"
CHAMPION_FILE = "champion.json"
HISTORY_FILE = "champion_history.jsonl"
_PIPELINE_HINT = "run `make pipeline` (03_modeling registers the first model)"
_VERSION_NAME = re.compile(r"v\d{4,}")
STAGING_PREFIX = ".staging-"
#: ``manifest["kind"]`` of a Spark batch version (``scale_out.batch.register_batch``): stored
#: lists, which 06_scale_out refits; retraining cannot.
BATCH_KIND = "batch_top_n"


def is_batch_manifest(manifest: Mapping[str, Any]) -> bool:
    """Whether a registry manifest is a Spark batch version."""
    return manifest.get("kind") == BATCH_KIND


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


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; a folder we may not enter raises ``PermissionError`` (never
    "missing", which would call a sound version or pointer damaged)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _is_version_dir(folder: Path) -> bool:
    return (_VERSION_NAME.fullmatch(folder.name) is not None
            and _is_file(folder / MANIFEST_FILE))


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


def _walk_back(record: dict | None) -> list[str]:
    """The walk-back list once the pointer moves away from ``record``'s champion."""
    return _earlier(record) + ([record["version"]] if record else [])


def _write_pointer(models: Path, version: str, reason: str, earlier: list[str]) -> None:
    """Move the champion pointer atomically, then append the change to the history log.

    The pointer is the source of truth; the log is its audit trail (a crash between the
    two is repaired by :func:`recover_registry`). A damaged pointer has no ``previous``.
    """
    previous, _ = _pointer(models)
    record = {
        "version": version,
        "previous": previous["version"] if previous else None,
        "updated_at": _utc_now(),
        "reason": reason,
        "earlier": earlier,
    }
    atomic_write_text(models / CHAMPION_FILE, json.dumps(record, indent=2) + "\n")
    append_line(models / HISTORY_FILE, json.dumps(record))


def _pointer(models: Path) -> tuple[dict | None, str | None]:
    """The champion pointer: ``(record, None)``, ``(None, None)`` when there is none yet, or
    ``(None, what is wrong)`` when it is damaged or names a version that is not registered."""
    path = models / CHAMPION_FILE
    if not _is_file(path):
        return None, None
    record, problem = json_object_or_problem(path)
    if record is None:
        return None, problem
    version = record.get("version")
    if not isinstance(version, str) or _VERSION_NAME.fullmatch(version) is None:
        return None, (f"names no version (\"version\": {excerpt(version)}; expected v0001, "
                      "v0002, ...)")
    if not _is_version_dir(models / version):
        return None, f"names {version}, but there is no model version {version!r}"
    return record, None


def _pointer_message(models: Path, problem: str) -> str:
    """A damaged pointer, and the command that rewrites it (a rollback to a named version)."""
    last = _last_good_record(models)
    known = f"the last good champion was {last['version']}; " if last else ""
    return (f"{models / CHAMPION_FILE} {problem}; point it at a registered version with "
            f"`recsys-retrain --rollback VERSION` ({known}versions: `recsys-retrain --list`)")


def _read_pointer(models: Path) -> dict | None:
    """The champion pointer (``None``: none yet); ``DataError`` when it is damaged."""
    record, problem = _pointer(models)
    if problem is not None:
        raise DataError(_pointer_message(models, problem))
    return record


def pointer_problem(paths: ProjectPaths | None = None) -> str | None:
    """What is wrong with the champion pointer (the error of a command that needs it), or
    ``None`` when it is sound or absent."""
    models = _paths(paths).models
    _, problem = _pointer(models)
    return None if problem is None else _pointer_message(models, problem)


def _history(models: Path) -> list[dict]:
    """The pointer changes logged so far, oldest first (a line torn by a crash is skipped)."""
    path = models / HISTORY_FILE
    records = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _last_good_record(models: Path) -> dict | None:
    """The newest logged pointer naming a version still registered (a damaged pointer's
    stand-in: what a rollback over it walks back from)."""
    for record in reversed(_history(models)):
        version = record.get("version")
        if (isinstance(version, str) and _VERSION_NAME.fullmatch(version)
                and _is_version_dir(models / version)):
            return record
    return None


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
    # Pointer writes are atomic, so a damaged pointer is no crash's doing and no change to
    # log: it is reported where it is needed, and `--rollback VERSION` rewrites it.
    # The whole record is compared: the same version promoted again within the second of
    # its last line has the same version and updated_at, but not the same reason.
    pointer, _ = _pointer(models)
    if pointer is not None and _last_history_record(models) != pointer:
        append_line(models / HISTORY_FILE, json.dumps(pointer))
        done.append(f"logged the pointer change to {pointer['version']}")
    # A version registered to be promoted that the pointer never named: the crash came
    # between the rename and the pointer; finish the registration. A damaged manifest
    # (never a crash's doing: it is written before the rename) or one we may not read is
    # left to the commands that need that version: recovery runs before every command.
    ever = {r.get("version") for r in _history(models)}
    for version in list_versions(paths):
        if version in ever:
            continue
        try:
            manifest, _ = manifest_or_damage(version, paths)
        except OSError:
            continue
        if manifest is not None and manifest.get("promote_on_register"):
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
    staging = temp_folder(models, STAGING_PREFIX)
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
    manifest, problem = manifest_or_damage(version, paths)
    if manifest is None:
        raise DataError(f"{_paths(paths).models / version / MANIFEST_FILE} {problem}; roll back "
                        f"to another version (`recsys-retrain --rollback VERSION`; see "
                        f"`recsys-retrain --list`) or {_PIPELINE_HINT}")
    return manifest


def manifest_or_damage(version: str,
                       paths: ProjectPaths | None = None) -> tuple[dict | None, str | None]:
    """``(manifest, None)`` or ``(None, what is wrong with it)``: for the commands that go over
    every version and must not stop at a damaged one. ``DataError`` when there is no such
    version; ``OSError`` (permissions, ...) is raised."""
    models = _paths(paths).models
    manifest_path = models / check_version_name(version) / MANIFEST_FILE
    if not _is_file(manifest_path):
        known = ", ".join(list_versions(paths)) or "none"
        raise DataError(
            f"no model version {version!r} in {models} (expected {manifest_path}); "
            f"known versions: {known}"
        )
    return json_object_or_problem(manifest_path)


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
        m, _ = manifest_or_damage(version, paths)
        if m is None:  # damaged: not a match (so `make pipeline` registers a sound one)
            continue
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
    if champion_version(paths, strict=False) != version:  # a damaged pointer is replaced
        promote(version, paths, reason="the same run again: reused")
    return version, model, True


def champion_version(paths: ProjectPaths | None = None, *, strict: bool = True) -> str | None:
    """The version the champion pointer names, or ``None`` when no model was promoted yet.

    A damaged pointer (or one naming a version that is not registered) is a ``DataError``
    saying how to repair it; with ``strict=False`` it reads as ``None`` (recovery, listing).
    """
    models = _paths(paths).models
    record = _read_pointer(models) if strict else _pointer(models)[0]
    return record["version"] if record else None


def _status(version: str, paths: ProjectPaths | None) -> tuple[dict, str]:
    """A version's manifest (``{}`` if unusable) and ``ok``/``damaged: ...``/``unreadable: ...``
    (model checksums are not verified here: that reads every model)."""
    folder = _paths(paths).models / version
    try:
        manifest, problem = manifest_or_damage(version, paths)
    except OSError as exc:  # a permission problem, not damage
        return {}, f"unreadable: {MANIFEST_FILE}: {(exc.strerror or str(exc)).lower()}"
    if manifest is None:
        return {}, f"damaged: {MANIFEST_FILE} {problem}"
    if not _is_file(folder / MODEL_FILE):
        return manifest, f"damaged: {MODEL_FILE} is missing"
    return manifest, "ok"


def versions_table(paths: ProjectPaths | None = None) -> pd.DataFrame:
    """One row per version: champion flag, created_at, data fingerprint, scalar metrics, notes
    and status (``ok``, or ``damaged: <why>``: a version commands cannot use; last, as it can
    be long). A damaged version or pointer does not stop the listing
    (:func:`pointer_problem` says what is wrong with the pointer)."""
    champ = champion_version(paths, strict=False)
    rows = []
    for version in list_versions(paths):
        manifest, status = _status(version, paths)
        row = {
            "version": version,
            "champion": version == champ,
            "created_at": manifest.get("created_at"),
            "data_fingerprint": manifest.get("data_fingerprint"),
        }
        metrics = manifest.get("metrics")
        row.update({k: v for k, v in (metrics if isinstance(metrics, dict) else {}).items()
                    if isinstance(v, int | float)})
        row["notes"] = manifest.get("notes", "")
        row["status"] = status
        rows.append(row)
    last = ["notes", "status"]
    if not rows:
        return pd.DataFrame(columns=["version", "champion", "created_at", *last])
    table = pd.DataFrame(rows)
    return table[[c for c in table.columns if c not in last] + last]


def _verify(version: str, paths: ProjectPaths | None) -> tuple[Path, dict]:
    """Check every file of ``version`` against its manifest checksum; return folder and manifest."""
    manifest = read_manifest(version, paths)
    folder = _paths(paths).models / version
    files = manifest.get("files") or {}
    if MODEL_FILE not in files:
        raise DataError(f"{folder / MANIFEST_FILE} lists no checksum for {MODEL_FILE}")
    for name, info in files.items():
        path = folder / name
        if not _is_file(path):
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
        try:
            model = pickle.load(fh)  # noqa: S301 - checksum verified against our own manifest
        except OSError:
            raise  # the machine refused the read: not a bad file
        except Exception as exc:
            # The file is the one registered, yet unpickling runs its classes' code: a
            # truncated pickle or a class the code no longer has can fail in any way.
            raise DataError(
                f"{version}: {folder / MODEL_FILE} cannot be unpickled ({type(exc).__name__}: "
                f"{excerpt(exc, 80)}); roll back (`recsys-retrain --rollback VERSION`) or "
                f"{_PIPELINE_HINT}") from exc
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


def load_evaluated(paths: ProjectPaths | None = None) -> tuple[object, dict] | None:
    """What ``04_evaluation`` evaluates: the champion (``load_champion``), or ``None`` when
    none is registered yet.

    A Spark batch champion holds stored lists, evaluated by ``06_scale_out``, not a
    configuration to retrain per split: then the recommender champion it replaced (the
    newest non-batch version of the pointer's walk-back list), its manifest a copy with
    ``stand_in_for`` naming the Spark champion; ``None`` when there was none.
    """
    record = _read_pointer(_paths(paths).models)  # once: what is checked is what is loaded
    if record is None:
        return None
    manifest = read_manifest(record["version"], paths)  # the kind first: Spark lists are big
    if not is_batch_manifest(manifest):
        return load_version(record["version"], paths)
    registered = set(list_versions(paths))
    for version in reversed(_earlier(record)):
        earlier = manifest_or_damage(version, paths)[0] if version in registered else None
        if earlier is not None and not is_batch_manifest(earlier):  # damaged: skipped
            model, found = load_version(version, paths)
            return model, {**found, "stand_in_for": manifest["version"]}
    return None


def promote(version: str, paths: ProjectPaths | None = None, reason: str = "promoted",
            expected: str | None = None) -> str:
    """Make ``version`` the champion (checksums verified first); returns the previous champion.

    Takes the store lock; with ``expected``, refuses (``DataError``) when the champion is
    no longer the one the caller read (another command moved the pointer meanwhile) or the
    pointer is damaged. Without it, a damaged pointer is replaced (the history says so).
    """
    with store_lock(paths):
        return _promote(version, paths, reason, expected)


def _promote(version: str, paths: ProjectPaths | None, reason: str,
             expected: str | None) -> str:
    _verify(version, paths)
    models = _paths(paths).models
    current, problem = _pointer(models)
    if problem is not None:
        if expected is not None:  # the caller judged against a champion we cannot read
            raise DataError(_pointer_message(models, problem))
        reason = _replacing(reason, problem)
    previous = current["version"] if current else None
    if expected is not None and previous != expected:
        raise DataError(f"the champion changed from {expected} to {previous} while this "
                        f"command ran; {version} was not promoted (run the command again)")
    if previous == version:
        return previous
    earlier = _walk_back(current if problem is None else _last_good_record(models))
    _write_pointer(models, version, reason, earlier)
    return previous or ""


def _replacing(reason: str, problem: str) -> str:
    """The history's note that a pointer change replaced a damaged pointer."""
    return f"{reason} (replaced a damaged {CHAMPION_FILE} that {problem})"


def rollback(version: str | None = None, paths: ProjectPaths | None = None) -> str:
    """Point the champion back at ``version`` (default: the champion before the current one).

    Without a version, each rollback goes one champion further back through the pointer's
    ``earlier`` list (skipping versions no longer registered), never forth again. With a
    version (a validated registry name), the pointer moves there and the walk-back list is
    cut at that version. The target's checksums are verified before the pointer moves,
    under the store lock. Returns the new champion version.

    A damaged pointer (not JSON, or naming no registered version) is rewritten by a
    rollback to a named version, the walk-back list taken from the last sound pointer in
    the history; the history line says it replaced a damaged pointer.
    """
    models = _paths(paths).models
    if version is not None:
        check_version_name(version)
    with store_lock(paths):
        current, problem = _pointer(models)
        if problem is not None:
            if version is None:  # no walk-back list to follow: the user names the version
                raise DataError(_pointer_message(models, problem))
            return _rollback_over_damage(models, version, problem, paths)
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


def _rollback_over_damage(models: Path, version: str, problem: str,
                          paths: ProjectPaths | None) -> str:
    """Rewrite a damaged pointer to name ``version`` (under the store lock)."""
    earlier = _walk_back(_last_good_record(models))
    if version in earlier:  # cut the walk-back list there, as a rollback to it would
        earlier = earlier[:len(earlier) - 1 - earlier[::-1].index(version)]
    _verify(version, paths)
    _write_pointer(models, version, _replacing(f"rollback to {version}", problem), earlier)
    return version
