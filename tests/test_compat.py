"""Loading a model saved with other library versions: refused, or loaded with a loud warning."""

from __future__ import annotations

import json
import warnings

import pytest

from recsys_utils.errors import DataError
from recsys_utils.lifecycle import compat, registry
from recsys_utils.paths import project_paths

SAVED = {"python": "3.11.7", "numpy": "2.1.0", "pandas": "2.2.3", "scipy": "1.14.1",
         "scikit-surprise": "1.1.4", "recsys_utils": "0.1.0"}


def _installed(**changes):
    return {**SAVED, **changes}


@pytest.mark.parametrize("changes, word", [
    ({"scikit-surprise": "1.1.5"}, "scikit-surprise 1.1.4 when saved, 1.1.5 installed"),
    ({"numpy": "1.26.4"}, "another major version"),
    ({"pandas": "3.0.0"}, "another major version"),
    ({"scipy": "1.13.0"}, "older than the saving version"),
    ({"python": "4.0.0"}, "another major version"),
])
def test_refused_differences_name_both_versions(changes, word):
    refusals, notes = compat.compare_libraries(SAVED, _installed(**changes))
    assert len(refusals) == 1 and word in refusals[0] and notes == []


@pytest.mark.parametrize("changes", [
    {"numpy": "2.4.6"}, {"pandas": "2.3.1"}, {"scipy": "1.14.2"}, {"python": "3.12.1"},
    {"python": "3.11.9"},
])
def test_newer_releases_of_the_same_major_only_warn(changes):
    refusals, notes = compat.compare_libraries(SAVED, _installed(**changes))
    (name, have), = changes.items()
    assert refusals == [] and len(notes) == 1
    assert f"{name} {SAVED[name]} when saved, {have} installed" in notes[0]


def test_same_versions_and_unknown_ones_are_silent():
    assert compat.compare_libraries(SAVED, SAVED) == ([], [])
    assert compat.compare_libraries({**SAVED, "numpy": "not installed"},
                                    _installed(numpy="1.0")) == ([], [])
    assert compat.compare_libraries({}, SAVED) == ([], [])  # an old manifest without the field


def _registered(tmp_path, libraries: dict) -> tuple:
    paths = project_paths(tmp_path)
    version = registry.register_model({"a": 1}, params={}, metrics={}, data_fingerprint="f",
                                      paths=paths)
    manifest_path = paths.models / version / registry.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["libraries"] = {**manifest["libraries"], **libraries}
    manifest_path.write_text(json.dumps(manifest))
    return paths, version


def test_load_refuses_a_model_saved_with_another_surprise(tmp_path):
    paths, version = _registered(tmp_path, {"scikit-surprise": "0.9.0"})
    with pytest.raises(DataError, match=r"scikit-surprise 0\.9\.0 when saved, .* installed"):
        registry.load_champion(paths)
    with pytest.raises(DataError, match="retrain"):
        registry.load_version(version, paths)


def test_load_warns_loudly_for_an_older_patch_release(tmp_path):
    installed = registry.library_versions()["numpy"]
    major = installed.split(".")[0]
    paths, _ = _registered(tmp_path, {"numpy": f"{major}.0.0"})
    expect_warning = installed != f"{major}.0.0"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _ = registry.load_champion(paths)
    assert model == {"a": 1}
    found = [w for w in caught if issubclass(w.category, compat.LibraryWarning)]
    assert bool(found) == expect_warning
    if found:
        assert f"numpy {major}.0.0 when saved, {installed} installed" in str(found[0].message)


def test_pip_pins_are_the_recorded_versions():
    pins = compat.pip_pins({"libraries": {**SAVED, "scipy": "not installed"}})
    assert pins == ["scikit-surprise==1.1.4", "numpy==2.1.0", "pandas==2.2.3"]
