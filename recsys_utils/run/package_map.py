"""The README's package map, generated from the package itself so it cannot drift.

Each row is a module and the first sentence of its docstring; subpackages come in
pipeline order (``data`` 01 … ``lifecycle`` 05, then ``serving`` and ``run``).
``python -m recsys_utils.run.package_map --write`` (``make package-map``) rewrites the
block between the README's ``package-map`` markers; a test fails when they differ.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from recsys_utils.atomic import atomic_write_text
from recsys_utils.errors import DataError, run_command
from recsys_utils.paths import PROJECT_ROOT

__all__ = ["STAGE_ORDER", "package_map", "readme_block", "write_readme_block"]

#: Subpackages in the order a reader meets them; a new one must be placed here.
STAGE_ORDER = ("data", "explore", "rating", "ranking", "lifecycle", "scale_out", "serving", "run")
START, END = "<!-- package-map:start -->", "<!-- package-map:end -->"
PACKAGE = PROJECT_ROOT / "recsys_utils"


def _summary(path: Path) -> str:
    """First sentence of a module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(doc.split("\n\n", 1)[0].split()).replace("``", "`")
    match = re.match(r"(.+?\.)(\s|$)", paragraph)
    return (match.group(1) if match else paragraph).rstrip(".") or "(no docstring)"


def package_map(package: Path = PACKAGE) -> str:
    """The markdown table: top-level modules, then each stage's subpackage and modules."""
    rows = ["| module | what it is |", "|---|---|"]
    top = sorted(p for p in package.glob("*.py") if p.name != "__init__.py")
    rows += [f"| `{p.stem}` | {_summary(p)} |" for p in top]
    subpackages = sorted((p.parent for p in package.glob("*/__init__.py")),
                         key=lambda d: (STAGE_ORDER.index(d.name) if d.name in STAGE_ORDER
                                        else len(STAGE_ORDER), d.name))
    for sub in subpackages:
        rows.append(f"| **`{sub.name}/`** | {_summary(sub / '__init__.py')} |")
        modules = sorted(p for p in sub.glob("*.py") if p.name != "__init__.py")
        rows += [f"| `{sub.name}.{p.stem}` | {_summary(p)} |" for p in modules]
    return "\n".join(rows) + "\n"


def readme_block(readme: Path = PROJECT_ROOT / "README.md") -> str:
    """The package map as the README has it now (between the markers)."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise DataError(f"{readme}: no {START} ... {END} block for the package map")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write_readme_block(readme: Path = PROJECT_ROOT / "README.md") -> bool:
    """Rewrite the README's block from the package; True if it changed."""
    text = readme.read_text(encoding="utf-8")
    old = readme_block(readme)
    new = package_map()
    if old == new:
        return False
    head, rest = text.split(START, 1)
    atomic_write_text(readme, f"{head}{START}\n{new}{END}{rest.split(END, 1)[1]}")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_utils.run.package_map",
                                     description="Print (or --write into README.md) the package map.")
    parser.add_argument("--write", action="store_true", help="rewrite the README block")
    args = parser.parse_args(argv)

    def body() -> None:
        if args.write:
            print("README.md package map " + ("updated" if write_readme_block() else "unchanged"))
        else:
            print(package_map(), end="")

    return run_command(body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
