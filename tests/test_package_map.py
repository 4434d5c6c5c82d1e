"""The README's package map: generated from the package, every module once, stages in order,
and the README block rewritten in place (only between its markers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recsys_utils.errors import DataError
from recsys_utils.run import package_map
from recsys_utils.run.package_map import END, PACKAGE, STAGE_ORDER, START

ROW = re.compile(r"^\| (\*\*)?`([\w.]+)/?`(\*\*)? \| (.+) \|$")


def _rows(table: str) -> list[tuple[str, bool, str]]:
    """``(name, is_subpackage, summary)`` of each table row (the header lines excluded)."""
    lines = table.strip("\n").split("\n")
    assert lines[:2] == ["| module | what it is |", "|---|---|"]
    out = []
    for line in lines[2:]:
        match = ROW.match(line)
        assert match, line
        out.append((match.group(2), bool(match.group(1)), match.group(4)))
    return out


@pytest.fixture(scope="module")
def generated() -> str:
    """The map of the real package (parsing every module takes a moment: once)."""
    return package_map.package_map()


def test_readme_package_map_is_generated_from_the_package(generated: str):
    assert package_map.readme_block() == generated, (
        "README.md's package map is stale: run `make package-map`")


def test_the_map_lists_every_module_and_subpackage_once(generated: str):
    rows = _rows(generated)
    names = [name for name, _, _ in rows]
    modules = {p.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".")
               for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert len(names) == len(set(names))
    assert {n for n, sub, _ in rows if not sub} == modules
    assert {n for n, sub, _ in rows if sub} == subpackages
    assert all(summary and summary != "(no docstring)" for _, _, summary in rows)


def test_subpackages_come_in_stage_order_each_followed_by_its_modules(generated: str):
    rows = _rows(generated)
    order = [name for name, sub, _ in rows if sub]
    assert order == [s for s in STAGE_ORDER if s in order]
    current = None
    for name, sub, _ in rows:
        if sub:
            current = name
        elif current is None:
            assert "." not in name  # top-level modules first
        else:
            assert name.startswith(f"{current}."), name


def _tiny_package(root: Path) -> Path:
    pkg = root / "pkg"
    files = {
        "__init__.py": '"""Top."""\n',
        "zeta.py": '"""Zeta module. More text."""\n',
        "alpha.py": "x = 1\n",  # no docstring
        "extra/__init__.py": '"""A stage nobody placed."""\n',
        "extra/thing.py": '"""Does ``x``\n  on two lines.\n\nSecond paragraph."""\n',
        "rating/__init__.py": '"""Rating stage."""\n',
        "rating/b.py": '"""B."""\n',
        "data/__init__.py": '"""Data stage"""\n',
        "data/a.py": '"""Version 1.2 of A. Then more."""\n',
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text, encoding="utf-8")
    return pkg


def test_rows_of_a_small_package(tmp_path: Path):
    rows = _rows(package_map.package_map(_tiny_package(tmp_path)))
    assert rows == [
        ("alpha", False, "(no docstring)"),
        ("zeta", False, "Zeta module"),           # the first sentence, without its full stop
        ("data", True, "Data stage"),             # stages in STAGE_ORDER: data before rating
        ("data.a", False, "Version 1.2 of A"),    # a dot inside a number ends no sentence
        ("rating", True, "Rating stage"),
        ("rating.b", False, "B"),
        ("extra", True, "A stage nobody placed"),  # unplaced subpackages come last
        ("extra.thing", False, "Does `x` on two lines"),
    ]


def _readme(path: Path, block: str) -> Path:
    path.write_text(f"# Title\n\nbefore\n\n{START}\n{block}{END}\n\nafter\n", encoding="utf-8")
    return path


def test_write_readme_block_rewrites_only_the_block(tmp_path: Path, generated: str):
    readme = _readme(tmp_path / "README.md", "| stale | table |\n")
    assert package_map.write_readme_block(readme) is True
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{END}\n\nafter\n")
    assert package_map.readme_block(readme) == generated
    assert "stale" not in text
    assert package_map.write_readme_block(readme) is False  # already current
    assert readme.read_text(encoding="utf-8") == text


def test_a_readme_without_markers_is_a_data_error(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text("# no map here\n", encoding="utf-8")
    with pytest.raises(DataError, match="package-map"):
        package_map.readme_block(readme)


def test_main_prints_the_map(capsys: pytest.CaptureFixture[str], generated: str):
    assert package_map.main([]) == 0
    assert capsys.readouterr().out == generated
