"""Build the Jupyter Book: ``python -m recsys_utils.run.book`` (``make book``).

The book is the prose in ``book/`` plus the *executed* notebooks in
``outputs/notebooks/`` (papermill is the only executor: ``execute_notebooks:
"off"``). The build starts from an empty ``_build/`` and treats warnings as
errors (``-W --keep-going``), so a broken reference or a missing glued number
fails the build instead of publishing a hole.

Before calling jupyter-book we check what most often breaks a build, and say
it plainly: a chapter listed in ``_toc.yml`` that does not exist (usually:
the pipeline has not run) and a ``{glue:text}`` reference to a key that the
executed notebook does not carry or whose value cannot take the format.

Exit status: 0 built, 1 jupyter-book failed or produced no ``index.html``,
2 a precondition failed (message, no traceback).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from recsys_utils.errors import DataError, run_command
from recsys_utils.paths import ProjectPaths, project_paths, relative_posix
from recsys_utils.run.glue_text import NOT_MEASURED, format_like_myst

__all__ = [
    "GlueRef",
    "BookError",
    "toc_files",
    "missing_toc_files",
    "glue_refs",
    "notebook_glue",
    "check_glue",
    "missing_images",
    "build_book",
    "main",
]

_SUFFIXES = (".md", ".ipynb", ".rst")
#: ``{glue:text}`/outputs/notebooks/04_evaluation.ipynb::eval_rmse:.4f``` and the other glue roles.
_GLUE_ROLE = re.compile(r"\{glue(?::(?P<kind>\w+))?\}`(?P<body>[^`]+)`")


class BookError(DataError):
    """The book cannot be built as configured (missing chapter, unknown glue key, ...)."""


# --------------------------------------------------------------------------- toc


def _toc_entries(node: object) -> Iterator[str]:
    """Every ``file:``/``root:`` value in a parsed ``_toc.yml``, in order."""
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                yield node[key]
        for value in node.values():
            if isinstance(value, list | dict):
                yield from _toc_entries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_entries(item)


def toc_files(root: Path) -> list[str]:
    """The documents ``_toc.yml`` lists (paths without suffix, relative to the root)."""
    toc = root / "_toc.yml"
    if not toc.is_file():
        raise BookError(f"{toc} does not exist: the book needs a table of contents")
    try:
        return list(_toc_entries(yaml.safe_load(toc.read_text(encoding="utf-8"))))
    except yaml.YAMLError as exc:
        raise BookError(f"{toc} is not valid YAML: {exc}") from exc


def _resolve_doc(root: Path, doc: str) -> Path | None:
    base = root / doc
    if base.suffix in _SUFFIXES and base.is_file():
        return base
    for suffix in _SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def missing_toc_files(root: Path) -> list[str]:
    """Documents listed in ``_toc.yml`` that do not exist."""
    return [doc for doc in toc_files(root) if _resolve_doc(root, doc) is None]


# --------------------------------------------------------------------------- glue


@dataclass(frozen=True)
class GlueRef:
    """One cross-document glue reference in a prose chapter."""

    source: Path  # the markdown file that uses it
    line: int
    notebook: str  # as written, e.g. "/outputs/notebooks/04_evaluation.ipynb"
    key: str
    fmt: str | None  # format spec; "" for roles without one; None = missing (an error)

    def notebook_path(self, root: Path) -> Path:
        if self.notebook.startswith("/"):
            return root / self.notebook.lstrip("/")
        return (self.source.parent / self.notebook).resolve()


def glue_numbers(prefix: str, numbers: dict[str, object]) -> None:
    """Glue a step's key numbers into the book as ``<prefix><name>`` (from a notebook);
    ``None`` (not measured on this data) is glued as ``NOT_MEASURED`` ("n/a")."""
    from myst_nb import glue  # only inside a notebook's kernel

    for name, value in numbers.items():
        glue(f"{prefix}{name}", NOT_MEASURED if value is None else value, display=False)


def glue_refs(markdown: Path) -> list[GlueRef]:
    """The ``path::key[:format]`` glue references of a markdown file.

    Same-document references (no ``::``) are left to Sphinx: prose chapters have
    no glue data of their own, so every reference in ``book/`` names a notebook.
    """
    refs = []
    for lineno, line in enumerate(markdown.read_text(encoding="utf-8").splitlines(), 1):
        for match in _GLUE_ROLE.finditer(line):
            body = match.group("body")
            if "::" not in body:
                continue
            fmt: str | None = ""
            if match.group("kind") == "text":
                # myst-nb splits the format off *first* (rsplit on ":"), so with a
                # `path::key` reference the format is mandatory: `path::key:s`.
                head, _, fmt = body.rpartition(":")
                if "::" not in head:
                    head, fmt = body, None
                body = head
            notebook, key = body.split("::", 1)
            refs.append(GlueRef(markdown, lineno, notebook.strip(), key.strip(), fmt))
    return refs


def notebook_glue(path: Path) -> dict[str, str]:
    """``{key: text/plain}`` of every value glued in an executed notebook."""
    # Imported here, not with the module: every notebook's kernel imports this module for
    # glue_numbers, and nbformat's import (jsonschema's format checkers) costs it 1.5 s.
    import nbformat

    nb = nbformat.read(path, as_version=4)
    found: dict[str, str] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            prefix = meta.get("mime_prefix", "")
            data = output.get("data", {})
            found[meta["name"]] = str(data.get(prefix + "text/plain", ""))
    return found


def check_glue(root: Path, chapters: Sequence[Path]) -> list[str]:
    """Problems with the glue references of ``chapters`` (empty list = all resolvable)."""
    problems = []
    cache: dict[Path, dict[str, str]] = {}
    for chapter in chapters:
        for ref in glue_refs(chapter):
            nb_path = ref.notebook_path(root)
            where = f"{relative_posix(chapter, root)}:{ref.line}"
            if ref.fmt is None:
                problems.append(
                    f"{where}: {{glue:text}} with `path::key` needs a format, e.g. "
                    f"`{ref.notebook}::{ref.key}:s` (or `:,d`, `:.4f`)"
                )
                continue
            if not nb_path.is_file():
                problems.append(f"{where}: {ref.notebook} does not exist (run `make pipeline`)")
                continue
            glued = cache.setdefault(nb_path, notebook_glue(nb_path))
            if ref.key not in glued:
                problems.append(
                    f"{where}: no glue key {ref.key!r} in {relative_posix(nb_path, root)}; "
                    f"it glues: {', '.join(sorted(glued)) or '(nothing)'}"
                )
                continue
            try:
                format_like_myst(glued[ref.key], ref.fmt)
            except (TypeError, ValueError) as exc:
                problems.append(
                    f"{where}: glue {ref.key!r} = {glued[ref.key]!r} cannot take format "
                    f"{ref.fmt!r} ({exc}); glue a plain Python int/float/str"
                )
    return problems


_IMAGE_DIRECTIVE = re.compile(r"^\s*(```|:::)\{(figure|image)\}\s+(?P<path>\S+)")
_IMAGE_MARKDOWN = re.compile(r"!\[[^\]]*\]\((?P<path>[^)\s]+)")


def missing_images(root: Path, chapters: Sequence[Path]) -> list[str]:
    """Local images (``{figure}``/``{image}`` directives, ``![..](..)``) that do not exist."""
    problems = []
    for chapter in chapters:
        for lineno, line in enumerate(chapter.read_text(encoding="utf-8").splitlines(), 1):
            for match in (_IMAGE_DIRECTIVE.match(line), *_IMAGE_MARKDOWN.finditer(line)):
                if match is None:
                    continue
                ref = match.group("path")
                if "://" in ref:
                    continue
                target = root / ref.lstrip("/") if ref.startswith("/") else chapter.parent / ref
                if not target.is_file():
                    problems.append(f"{relative_posix(chapter, root)}:{lineno}: "
                                    f"image {ref} does not exist")
    return problems


# --------------------------------------------------------------------------- build


def _jupyter_book() -> list[str]:
    """The jupyter-book command of *this* environment (not whatever is first on PATH)."""
    local = Path(sys.executable).parent / "jupyter-book"
    if local.is_file():
        return [str(local)]
    found = shutil.which("jupyter-book")
    if found is None:
        raise BookError("jupyter-book is not installed: run `make install`")
    return [found]


def preflight(root: Path) -> None:
    """Fail early, with one readable message, on what would break the build."""
    if not (root / "_config.yml").is_file():
        raise BookError(f"{root / '_config.yml'} does not exist")
    missing = missing_toc_files(root)
    if missing:
        raise BookError(
            "chapters listed in _toc.yml do not exist: " + ", ".join(missing)
            + ("; run `make pipeline` first (the book uses the executed notebooks)"
               if any(m.startswith("outputs/") for m in missing) else "")
        )
    chapters = [p for d in toc_files(root) if (p := _resolve_doc(root, d)) and p.suffix == ".md"]
    problems = check_glue(root, chapters) + missing_images(root, chapters)
    if problems:
        raise BookError(
            "the book refers to numbers or figures that do not exist (run `make pipeline`?):\n  "
            + "\n  ".join(problems)
        )


def build_book(paths: ProjectPaths | None = None, *, check: bool = True) -> Path:
    """Build the HTML book from a clean ``_build/``; return ``_build/html/index.html``."""
    paths = paths or project_paths()
    root = paths.root
    # The Scaling chapter includes a fragment rendered from outputs/reports/scale.json (or
    # a "benchmark not run" note), written before every build so the include resolves.
    from recsys_utils.data.example import write_example_fragment
    from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS
    from recsys_utils.run.scaling import write_scaling_fragment

    write_scaling_fragment(paths)
    # "Bring your own data" includes the example folder and its check, built now.
    write_example_fragment(DEFAULT_RANKING_PARAMS["min_item_ratings"],
                           DEFAULT_RANKING_PARAMS["max_ease_items"], paths)
    if check:
        preflight(root)
    build_dir = root / "_build"
    shutil.rmtree(build_dir, ignore_errors=True)  # stale pages must not survive
    cmd = [*_jupyter_book(), "build", str(root), "-W", "--keep-going"]
    print("book: " + " ".join(["jupyter-book", *cmd[1:]]), flush=True)
    result = subprocess.run(cmd, cwd=root, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"jupyter-book failed (exit {result.returncode}); the warnings above name the "
            "page and line (warnings are errors: -W)"
        )
    index = paths.book_html / "index.html"
    if not index.is_file():
        raise RuntimeError(f"the build finished but {index} is missing")
    return index


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_utils.run.book",
        description="Build the Jupyter Book from book/ and outputs/notebooks/ into _build/html/ "
        "(clean build, warnings are errors).",
    )
    parser.add_argument("--no-check", action="store_true",
                        help="skip the toc/glue pre-flight check and let jupyter-book report")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()

    def build() -> None:
        index = build_book(check=not args.no_check)
        print(f"book: built in {time.perf_counter() - t0:.1f}s; open file://{index}")

    return run_command(build, {RuntimeError: 1})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
