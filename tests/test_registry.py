"""The model registry: versions, manifests, the atomic champion pointer, checksums, rollback."""

from __future__ import annotations

import json

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
