"""The architecture holds: stages import downward only, one home per concept.

Why tests: the layout is the documentation a newcomer reads first (issue 9). These checks
fail when a module imports a later stage, a star re-export or a folder literal sneaks
back, or a default seed drifts from ``params.yaml``. That the README's package map is
generated from the package is checked in test_package_map.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

import recsys_utils
from recsys_utils.paths import PROJECT_ROOT
from recsys_utils.run import package_map

PACKAGE = PROJECT_ROOT / "recsys_utils"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: A module may import its own stage, earlier stages and the top level, never a later stage.
RANK = {name: i for i, name in enumerate(package_map.STAGE_ORDER)}


def _stage(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else None


def _imported(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recsys_utils"):
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.startswith("recsys_utils")]
    return names


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(PACKAGE).as_posix() for p in paths]


def test_every_subpackage_has_a_place_in_the_stage_order():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages <= set(package_map.STAGE_ORDER)


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_modules_import_only_their_own_or_earlier_stages(path: Path):
    here = _stage(path)
    later = []
    for name in _imported(path):
        parts = name.split(".")
        target = parts[1] if len(parts) > 1 and parts[1] in RANK else None
        if target is None or target == here:
            continue
        if here is None or RANK[target] > RANK[here]:
            later.append(name)
    assert not later, f"{path.name} imports a later stage: {sorted(set(later))}"


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_no_star_imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    stars = [n.module for n in ast.walk(tree)
             if isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)]
    assert not stars


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module, docstrings excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and (body := node.body) and isinstance(body[0], ast.Expr)
                  and isinstance(body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_only_paths_spells_the_project_folders():
    # `paths.py` promises to be the one module that knows folders: no other module
    # builds a path from a folder literal such as "data/processed".
    folder = re.compile(r"^(data/(raw|interim|processed)|outputs/(models|reports|figures|notebooks))\b")
    offenders = [f"{path.relative_to(PACKAGE)}:{line}: {value!r}"
                 for path in MODULES if path.name != "paths.py"
                 for line, value in _code_strings(path) if folder.match(value)]
    assert not offenders, offenders


def test_default_seed_is_the_params_file_seed():
    params = yaml.safe_load((PROJECT_ROOT / "notebooks" / "params.yaml").read_text())
    assert params["common"]["seed"] == recsys_utils.DEFAULT_SEED
    literal_seeds = [f"{p.relative_to(PACKAGE)}" for p in MODULES
                     if re.search(r"\bseed: int = \d", p.read_text(encoding="utf-8"))]
    assert not literal_seeds, f"use recsys_utils.DEFAULT_SEED: {literal_seeds}"


def test_every_command_turns_user_errors_into_messages_in_one_place():
    """Each ``main()`` goes through ``errors.run_command`` (``error: ...``, exit 2), none
    catches ``DataError`` itself: one home for the CLI error block."""
    commands = [p for p in MODULES if re.search(r"^def main\(", p.read_text(encoding="utf-8"), re.M)]
    assert len(commands) >= 6
    for path in commands:
        main_src = path.read_text(encoding="utf-8").split("\ndef main(", 1)[1]
        where = path.relative_to(PACKAGE)
        assert "run_command(" in main_src, f"{where}: main() must use errors.run_command"
        assert "except DataError" not in main_src, f"{where}: main() catches DataError itself"
