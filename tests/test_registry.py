"""The model registry: versions, manifests, the atomic champion pointer, checksums, rollback."""

from __future__ import annotations

import errno
import json
import os
import pickle
from pathlib import Path

import pytest

from recsys_utils.errors import DataError
from recsys_utils.lifecycle import registry
from recsys_utils.paths import project_paths


@pytest.fixture()
def paths(tmp_path):
    return project_paths(tmp_path)


def _register(paths, payload, promote=True, rmse=0.9):
    return registry.register_model(
        {"payload": payload}, params={"rating_params": {"k": 1}, "seed": 42},
        metrics={"rmse": rmse, "holdout": {"rule": "test"}}, data_fingerprint="fp" + str(payload),
        paths=paths, promote=promote, notes=f"model {payload}")


def test_empty_registry_says_run_pipeline(paths):
    assert registry.list_versions(paths) == []
    assert registry.champion_version(paths) is None
    with pytest.raises(DataError, match="make pipeline"):
        registry.load_champion(paths)


def test_register_writes_manifest_and_moves_pointer(paths):
    v1 = _register(paths, 1)
    assert v1 == "v0001"
    model, manifest = registry.load_champion(paths)
    assert model == {"payload": 1}
    assert manifest["version"] == v1
    assert manifest["data_fingerprint"] == "fp1"
    assert manifest["params"]["rating_params"] == {"k": 1}
    assert manifest["metrics"]["holdout"] == {"rule": "test"}
    assert manifest["created_at"].endswith("Z")
    assert {"python", "numpy", "pandas", "scikit-surprise", "recsys_utils"} <= set(
        manifest["libraries"])
    checksum = manifest["files"]["model.pkl"]["sha256"]
    assert checksum == registry.sha256_file(paths.models / v1 / "model.pkl")
    pointer = json.loads((paths.models / "champion.json").read_text())
    assert pointer["version"] == v1


def test_register_without_promotion_keeps_champion(paths):
    v1 = _register(paths, 1)
    v2 = _register(paths, 2, promote=False)
    assert registry.list_versions(paths) == [v1, v2]
    assert registry.champion_version(paths) == v1
    assert registry.load_champion(paths)[0] == {"payload": 1}
    table = registry.versions_table(paths)
    assert table["champion"].tolist() == [True, False]
    assert "rmse" in table


def test_no_temporary_files_left_behind(paths):
    _register(paths, 1)
    _register(paths, 2)
    leftovers = [p.name for p in paths.models.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_checksum_mismatch_is_refused(paths):
    v1 = _register(paths, 1)
    (paths.models / v1 / "model.pkl").write_bytes(b"tampered")
    with pytest.raises(DataError, match="checksum mismatch"):
        registry.load_champion(paths)


def test_missing_model_file_is_refused(paths):
    v1 = _register(paths, 1)
    (paths.models / v1 / "model.pkl").unlink()
    with pytest.raises(DataError, match="missing"):
        registry.load_champion(paths)


def test_rollback_walks_back_through_the_champion_history(paths):
    v1, v2, v3 = (_register(paths, i) for i in (1, 2, 3))
    assert registry.rollback(paths=paths) == v2
    # A second rollback goes one further back, not forth to v3 again.
    assert registry.rollback(paths=paths) == v1
    assert registry.load_champion(paths)[0] == {"payload": 1}
    with pytest.raises(DataError, match="nothing to roll back to"):
        registry.rollback(paths=paths)
    history = (paths.models / "champion_history.jsonl").read_text().splitlines()
    assert [json.loads(line)["version"] for line in history] == [v1, v2, v3, v2, v1]


def test_rollback_to_a_named_version_cuts_the_walk_back_there(paths):
    v1, v2, v3 = (_register(paths, i) for i in (1, 2, 3))
    assert registry.rollback(v1, paths) == v1
    with pytest.raises(DataError, match="nothing to roll back to"):
        registry.rollback(paths=paths)
    # Rolling "back" to a version that was never champion remembers where it came from.
    v4 = _register(paths, 4, promote=False)
    assert registry.rollback(v4, paths) == v4
    assert registry.rollback(paths=paths) == v1
    assert v2 and v3  # registered, not champions any more


def test_rollback_skips_versions_no_longer_registered(paths):
    import shutil

    v1, v2, _ = (_register(paths, i) for i in (1, 2, 3))
    shutil.rmtree(paths.models / v2)
    assert registry.rollback(paths=paths) == v1


@pytest.mark.parametrize("name", ["../models/v0001", "v0001/../v0001", "/tmp/v0001", "V0001",
                                  "v1", "champion.json", ""])
def test_rollback_refuses_anything_but_a_version_name(paths, name):
    v1 = _register(paths, 1)
    _register(paths, 2)
    with pytest.raises(DataError, match="not a version name"):
        registry.rollback(name, paths)
    assert registry.champion_version(paths) != v1  # the pointer did not move
    pointer = json.loads((paths.models / "champion.json").read_text())
    assert "/" not in pointer["version"]


def test_promote_rechecks_the_champion_it_read(paths):
    v1 = _register(paths, 1)
    v2 = _register(paths, 2, promote=False)
    v3 = _register(paths, 3, promote=False)
    registry.promote(v3, paths)  # another command moved the pointer meanwhile
    with pytest.raises(DataError, match=f"changed from {v1} to {v3}"):
        registry.promote(v2, paths, expected=v1)
    assert registry.champion_version(paths) == v3


def test_recover_registry_removes_leftovers_and_logs_a_missed_pointer_change(paths):
    v1 = _register(paths, 1)
    (paths.models / ".staging-abc").mkdir()
    (paths.models / ".staging-abc" / "model.pkl").write_bytes(b"partial")
    (paths.models / ".champion.json.x1.tmp").write_text("{")
    # The pointer moved but the crash came before the history line.
    history = paths.models / "champion_history.jsonl"
    history.write_text("")
    done = registry.recover_registry(paths)
    assert sorted(p.name for p in paths.models.iterdir()) == [
        "champion.json", "champion_history.jsonl", v1]
    assert json.loads(history.read_text())["version"] == v1
    assert any("logged" in d for d in done)
    assert registry.recover_registry(paths) == []  # nothing left to do


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "is not valid JSON"),
    (b"[1, 2]", "holds a JSON list, not an object"),
    (b"\x00\xff" * 300, "is not valid JSON"),
])
def test_a_damaged_manifest_is_a_data_error(paths, content, message):
    v1 = _register(paths, 1)
    (paths.models / v1 / "manifest.json").write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        registry.load_champion(paths)
    assert "manifest.json" in str(err.value) and len(str(err.value)) < 400


def test_rollback_refuses_unknown_and_corrupted_versions(paths):
    v1 = _register(paths, 1)
    v2 = _register(paths, 2)
    with pytest.raises(DataError, match="v0099"):
        registry.rollback("v0099", paths)
    (paths.models / v1 / "model.pkl").write_bytes(b"broken")
    with pytest.raises(DataError, match="checksum"):
        registry.rollback(v1, paths)
    assert registry.champion_version(paths) == v2  # the pointer did not move


def test_rollback_without_history_is_a_data_error(paths):
    _register(paths, 1)
    with pytest.raises(DataError, match="nothing to roll back"):
        registry.rollback(paths=paths)


def test_pointer_is_replaced_atomically(paths, monkeypatch):
    v1 = _register(paths, 1)
    _register(paths, 2, promote=False)

    def crash(*args, **kwargs):
        raise OSError("disk vanished")

    monkeypatch.setattr("recsys_utils.data.store.os.replace", crash)
    with pytest.raises(OSError):
        registry.promote("v0002", paths)
    monkeypatch.undo()
    assert registry.champion_version(paths) == v1
    assert [p.name for p in paths.models.iterdir() if p.name.startswith(".")] == []


def test_corrupt_pointer_is_a_data_error(paths):
    _register(paths, 1)
    (paths.models / "champion.json").write_text("{not json")
    with pytest.raises(DataError, match="champion.json"):
        registry.load_champion(paths)


def test_register_or_reuse_trains_only_for_a_new_run(paths):
    trained = []

    def train(payload):
        def fit():
            trained.append(payload)
            return {"payload": payload}
        return fit

    run = {"params": {"seed": 42}, "metrics": {"rmse": 0.9}, "data_fingerprint": "fp"}
    v1, model, reused = registry.register_or_reuse(train(1), paths=paths, **run)
    assert (v1, model, reused) == ("v0001", {"payload": 1}, False)
    # the same run again: nothing trained, nothing written, the same version
    v, model, reused = registry.register_or_reuse(train(2), paths=paths, **run)
    assert (v, model, reused) == (v1, {"payload": 1}, True)
    assert trained == [1] and registry.list_versions(paths) == [v1]
    # other metrics (or data, params, code) are another run
    other = dict(run, metrics={"rmse": 0.8})
    v2, _, reused = registry.register_or_reuse(train(3), paths=paths, **other)
    assert (v2, reused) == ("v0002", False) and registry.champion_version(paths) == v2
    # re-running the first one makes it the champion again without retraining
    v, _, reused = registry.register_or_reuse(train(4), paths=paths, **run)
    assert (v, reused) == (v1, True) and registry.champion_version(paths) == v1
    assert trained == [1, 3]


def test_find_version_compares_code(paths, monkeypatch):
    _register(paths, 1)
    same = {"params": {"rating_params": {"k": 1}, "seed": 42},
            "metrics": {"rmse": 0.9, "holdout": {"rule": "test"}}, "data_fingerprint": "fp1"}
    assert registry.find_version(paths=paths, **same) == "v0001"
    monkeypatch.setattr(registry, "code_fingerprint", lambda: "edited-code")
    assert registry.find_version(paths=paths, **same) is None


# --------------------------------------------------------------------------- damage


def _replace_model(paths, version, data):
    """Replace ``model.pkl`` and record its checksum: the checksum passes, unpickling fails."""
    (paths.models / version / "model.pkl").write_bytes(data)
    manifest_path = paths.models / version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["model.pkl"]["sha256"] = registry.sha256_file(
        paths.models / version / "model.pkl")
    manifest_path.write_text(json.dumps(manifest))


def test_a_damaged_manifest_blocks_only_its_own_version(paths):
    v1 = _register(paths, 1)
    v2, v3 = _register(paths, 2, promote=False), _register(paths, 3, promote=False)
    (paths.models / v2 / "manifest.json").write_bytes(b"")
    table = registry.versions_table(paths).set_index("version")
    assert table.loc[v2, "status"].startswith("damaged: manifest.json is not valid JSON")
    assert table.loc[v1, "status"] == "ok" and table.loc[v1, "champion"]
    assert registry.recover_registry(paths) == []  # it reads the never-promoted v2
    # an identical run is still found (a pipeline rerun reuses it instead of failing)
    assert registry.find_version(params={"rating_params": {"k": 1}, "seed": 42},
                                 metrics={"rmse": 0.9, "holdout": {"rule": "test"}},
                                 data_fingerprint="fp1", paths=paths) == v1
    assert registry.rollback(v3, paths) == v3
    assert registry.rollback(paths=paths) == v1
    with pytest.raises(DataError, match=f"{v2}/manifest.json is not valid JSON"):
        registry.rollback(v2, paths)
    assert registry.champion_version(paths) == v1


@pytest.mark.parametrize(("content", "problem"), [
    ('{"version": "v00', "is not valid JSON"),
    ('{"version": "v0042"}', "names v0042, but there is no model version 'v0042'"),
    ('["v0001"]', "holds a JSON list, not an object"),
], ids=["torn", "missing-version", "not-an-object"])
def test_a_damaged_pointer_names_the_rollback_that_repairs_it(paths, content, problem):
    v1, v2 = _register(paths, 1), _register(paths, 2)
    pointer, history = paths.models / "champion.json", paths.models / "champion_history.jsonl"
    pointer.write_text(content)
    logged = history.read_text()
    for needs_the_pointer in (registry.load_champion, registry.champion_version,
                              lambda p: registry.rollback(paths=p),
                              lambda p: registry.promote(v1, p, expected=v2)):
        with pytest.raises(DataError, match=problem) as err:
            needs_the_pointer(paths)
        assert "`recsys-retrain --rollback VERSION` (the last good champion was v0002" in str(
            err.value)
    assert registry.pointer_problem(paths).startswith(f"{pointer} {problem}")
    assert not registry.versions_table(paths)["champion"].any()
    # never logged as a pointer change (the history is what a rollback trusts)
    assert registry.recover_registry(paths) == []
    assert history.read_text() == logged
    # a rollback to a named version rewrites it, logged as such; the walk-back list is
    # that of the last sound pointer
    assert registry.rollback(v2, paths) == v2
    assert registry.pointer_problem(paths) is None
    last = json.loads(history.read_text().splitlines()[-1])
    assert last["version"] == v2 and "replaced a damaged champion.json that " + problem in (
        last["reason"])
    # a crash between the pointer and its log line is still repaired by recovery
    history.write_text("".join(history.read_text().splitlines(keepends=True)[:-1]))
    assert registry.recover_registry(paths) == [f"logged the pointer change to {v2}"]
    assert registry.rollback(paths=paths) == v1


@pytest.mark.parametrize(("data", "cause"), [
    (pickle.dumps({"payload": 1})[:-5], "UnpicklingError|EOFError"),  # truncated
    (b"cno_such_module_for_this_test\nModel\n.", "ModuleNotFoundError"),  # code that moved
    (b"crecsys_utils.errors\nNoSuchModelClass\n.", "AttributeError"),  # a class removed
], ids=["truncated", "module-gone", "class-gone"])
def test_a_model_that_cannot_be_unpickled_is_a_data_error(paths, data, cause):
    v1 = _register(paths, 1)
    _replace_model(paths, v1, data)
    with pytest.raises(DataError, match=rf"^{v1}: .*model.pkl cannot be unpickled \(({cause}):"):
        registry.load_champion(paths)


def test_an_unreadable_registry_file_is_not_called_damaged(paths, monkeypatch):
    """A permission error is raised as such (the command says: check its permissions), not
    reported as damage to repair, and never makes a rollback replace the file."""
    v1, v2 = _register(paths, 1), _register(paths, 2, promote=False)
    real_read, real_stat = Path.read_bytes, os.stat
    refused: set[str] = set()

    def read_bytes(self):
        if self.name in refused or self.parent.name in refused:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    def stat(path, *args, **kwargs):  # a version folder we may not enter
        if "no-entry" in refused and Path(path).parent.name == v1:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(os, "stat", stat)
    refused.add(v2)
    table = registry.versions_table(paths).set_index("version")
    assert table.loc[v2, "status"] == "unreadable: manifest.json: permission denied"
    # recovery runs before every command: one old version we may not read stops none
    assert registry.recover_registry(paths) == []
    with pytest.raises(PermissionError):
        registry.read_manifest(v2, paths)
    refused.update({"champion.json", "no-entry"})
    for needs_the_pointer in (registry.champion_version, registry.versions_table,
                              lambda p: registry.rollback(v1, p)):
        with pytest.raises(PermissionError):
            needs_the_pointer(paths)
    refused.discard("champion.json")
    with pytest.raises(PermissionError):  # not "names v0001, but there is no model version"
        registry.champion_version(paths)
    monkeypatch.undo()
    assert registry.champion_version(paths) == v1


def _register_lists(paths, promote=True):
    """A Spark batch version as ``scale_out.batch.register_batch`` records it."""
    return registry.register_model({"top_n": "lists"}, params={"engine": "spark"}, metrics={},
                                   data_fingerprint="fp", paths=paths, promote=promote,
                                   extra={"engine": "spark", "kind": registry.BATCH_KIND})


def test_load_evaluated_is_the_champion_or_the_recommender_behind_a_spark_champion(paths):
    """04 used to read a Spark champion's manifest as a recommender's: no ranking parameters,
    so it evaluated the code's defaults and labelled them "registered champion"."""
    assert registry.load_evaluated(paths) is None  # nothing registered
    first = _register(paths, 1)
    model, manifest = registry.load_evaluated(paths)
    assert model == {"payload": 1} and manifest["version"] == first
    assert "stand_in_for" not in manifest
    second = _register(paths, 2)
    spark = _register_lists(paths)
    model, manifest = registry.load_evaluated(paths)
    assert model == {"payload": 2} and manifest["version"] == second  # the one it replaced
    assert manifest["stand_in_for"] == spark
    assert "stand_in_for" not in registry.read_manifest(second, paths)  # a copy, not saved
    registry.rollback(first, paths)
    assert registry.load_evaluated(paths)[1]["version"] == first


def test_a_spark_champion_with_no_recommender_before_it_evaluates_none(tmp_path):
    paths = project_paths(tmp_path)
    _register_lists(paths)
    assert registry.load_evaluated(paths) is None
