"""Library-version checks before unpickling a registered model: refuse or warn, and say why.

A model is a pickle; unpickling it with other library versions than it was saved with
can fail, or worse, load an object that silently behaves differently. Every manifest
records the versions (``registry.library_versions``); :func:`check_libraries` compares
them with the installed ones. The rule, library by library:

==================  =========================================  ================================
library             refused (``DataError``)                     loud warning (``LibraryWarning``)
==================  =========================================  ================================
scikit-surprise     any other version: its algorithms are       —
                    Cython classes pickled by their internal
                    state, with no compatibility promise
numpy, scipy,       another *major* version, or an *older*     a newer minor/patch release of
pandas              installed version (pickles are backward-   the same major: these libraries
                    but not forward-compatible: numpy 2 writes  keep loading their own older
                    ``numpy._core`` paths numpy 1 lacks)        pickles within a major version
python              another major version                      another minor or patch release
                                                               (pickle protocol 5 is read by
                                                               every Python >= 3.8)
recsys_utils        —                                          — (its version does not change
                                                               with its code; the manifest's
                                                               ``code_fingerprint`` tells that)
==================  =========================================  ================================

A library recorded or installed as ``"not installed"`` is not compared (the manifest
predates it, or the serving image omits a library the model does not import).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping

from recsys_utils.errors import DataError

__all__ = ["LibraryWarning", "compare_libraries", "check_libraries", "pip_pins"]

_EXACT = ("scikit-surprise",)
_SAME_MAJOR_NOT_OLDER = ("numpy", "scipy", "pandas")
_SAME_MAJOR = ("python",)


class LibraryWarning(UserWarning):
    """A model saved with other (known-harmless) library versions than the installed ones."""


def _release(version: str) -> tuple[int, ...]:
    """``"2.4.6"`` → ``(2, 4, 6)``; ``"1.1.4.post1"`` → ``(1, 1, 4)`` (leading numbers only)."""
    head = re.match(r"^\d+(\.\d+)*", version.strip())
    return tuple(int(n) for n in head.group(0).split(".")) if head else ()


def compare_libraries(recorded: Mapping[str, str], installed: Mapping[str, str]
                      ) -> tuple[list[str], list[str]]:
    """``(refusals, warnings)``: one message per differing library, naming both versions."""
    refusals, notes = [], []
    for name in (*_EXACT, *_SAME_MAJOR_NOT_OLDER, *_SAME_MAJOR):
        saved, have = recorded.get(name), installed.get(name)
        if not saved or not have or "not installed" in (saved, have) or saved == have:
            continue
        pair = f"{name} {saved} when saved, {have} installed"
        old, new = _release(saved), _release(have)
        if name in _EXACT:
            refusals.append(f"{pair} (its pickles carry no compatibility promise)")
        elif old[:1] != new[:1]:
            refusals.append(f"{pair} (another major version)")
        elif name in _SAME_MAJOR_NOT_OLDER and new < old:
            refusals.append(f"{pair} (older than the saving version: pickles are not "
                            "forward-compatible)")
        else:
            notes.append(f"{pair} (same major version, newer or equal release: known to load)")
    return refusals, notes


def check_libraries(manifest: Mapping, installed: Mapping[str, str]) -> list[str]:
    """Refuse (``DataError``) or warn (``LibraryWarning``) per the module's rule.

    Returns the warning messages (also emitted with ``warnings.warn``).
    """
    refusals, notes = compare_libraries(manifest.get("libraries") or {}, installed)
    version = manifest.get("version", "?")
    if refusals:
        raise DataError(
            f"model {version} was saved with other library versions than installed: "
            + "; ".join(refusals)
            + ". Install the saving versions (the manifest's 'libraries') or retrain it "
              "with the installed ones (`make retrain` / `make pipeline`)")
    for note in notes:
        warnings.warn(f"model {version}: {note}", LibraryWarning, stacklevel=3)
    return notes


def pip_pins(manifest: Mapping) -> list[str]:
    """``["numpy==2.1.0", ...]``: the recorded versions of the libraries the rule compares.

    The CD workflow installs exactly these in the serving image (Dockerfile ``SERVE_PINS``),
    so the image loads the champion without a refusal or a warning.
    """
    recorded = manifest.get("libraries") or {}
    return [f"{name}=={recorded[name]}" for name in (*_EXACT, *_SAME_MAJOR_NOT_OLDER)
            if recorded.get(name) and recorded[name] != "not installed"]
