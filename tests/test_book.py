"""The book's pre-flight checks, and one real (small) jupyter-book build in tmp_path."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from recsys_utils.paths import PROJECT_ROOT, project_paths
from recsys_utils.run import book
from recsys_utils.run.book import BookError, check_glue, glue_refs, missing_toc_files, notebook_glue
from recsys_utils.run.glue_text import NOT_MEASURED, format_like_myst


def glued_output(name: str, text: str, display: bool = False) -> dict:
    """The output `myst_nb.glue(name, value, display=...)` leaves in a notebook."""
    prefix = "" if display else "application/papermill.record/"
    return new_output(
        "display_data",
        data={prefix + "text/plain": text},
        metadata={"scrapbook": {"name": name, "mime_prefix": prefix}},
    )


def executed_notebook(path: Path, glued: dict[str, str]) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = new_code_cell("from myst_nb import glue\n...", execution_count=1)
    cell.outputs = [glued_output(k, v) for k, v in glued.items()]
    nb.cells = [new_markdown_cell("# Evaluation"), cell]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_glue_refs_follow_myst_nb_parsing(tmp_path: Path):
    md = tmp_path / "book/results.md"
    md.parent.mkdir()
    md.write_text(
        "RMSE {glue:text}`/outputs/notebooks/04_evaluation.ipynb::eval_rmse:.4f` and\n"
        "rows {glue:text}`../outputs/notebooks/01_cleaning.ipynb::clean_n_ratings:,d`,\n"
        "a figure {glue}`/outputs/notebooks/02_eda.ipynb::eda_fig`, same-doc {glue:text}`x:.1f`,\n"
        "no format {glue:text}`/outputs/notebooks/04_evaluation.ipynb::eval_ndcg`\n"
    )
    refs = [(r.line, r.notebook, r.key, r.fmt) for r in glue_refs(md)]
    assert refs == [
        (1, "/outputs/notebooks/04_evaluation.ipynb", "eval_rmse", ".4f"),
        (2, "../outputs/notebooks/01_cleaning.ipynb", "clean_n_ratings", ",d"),
        (3, "/outputs/notebooks/02_eda.ipynb", "eda_fig", ""),
        (4, "/outputs/notebooks/04_evaluation.ipynb", "eval_ndcg", None),
    ]


def test_check_glue_reports_missing_keys_bad_formats_and_notebooks(tmp_path: Path):
    executed_notebook(
        tmp_path / "outputs/notebooks/04_evaluation.ipynb",
        {"eval_rmse": "0.8734", "eval_n": "100004", "eval_np": "np.float64(0.87)"},
    )
    assert notebook_glue(tmp_path / "outputs/notebooks/04_evaluation.ipynb") == {
        "eval_rmse": "0.8734", "eval_n": "100004", "eval_np": "np.float64(0.87)"
    }
    md = tmp_path / "book/results.md"
    md.parent.mkdir()
    nb = "/outputs/notebooks/04_evaluation.ipynb"
    md.write_text(
        f"ok {{glue:text}}`{nb}::eval_rmse:.3f` {{glue:text}}`{nb}::eval_n:,d`\n"
        f"typo {{glue:text}}`{nb}::eval_rsme:.3f`\n"
        f"numpy {{glue:text}}`{nb}::eval_np:.2f`\n"
        f"absent {{glue:text}}`/outputs/notebooks/09_x.ipynb::x_y:.2f`\n"
        f"unformatted {{glue:text}}`{nb}::eval_n`\n"
    )
    problems = check_glue(tmp_path, [md])
    assert len(problems) == 4, problems
    assert problems[0].startswith("book/results.md:2: no glue key 'eval_rsme'")
    assert "it glues: eval_n, eval_np, eval_rmse" in problems[0]
    assert problems[1].startswith("book/results.md:3: glue 'eval_np'")
    assert "glue a plain Python int/float/str" in problems[1]
    assert "09_x.ipynb does not exist" in problems[2]
    assert "needs a format" in problems[3]


def test_preflight_names_missing_chapters(tmp_path: Path):
    (tmp_path / "_config.yml").write_text("title: t\n")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: outputs/notebooks/01_a\n"
    )
    (tmp_path / "book").mkdir()
    (tmp_path / "book/intro.md").write_text("# Intro\n")
    assert missing_toc_files(tmp_path) == ["outputs/notebooks/01_a"]
    with pytest.raises(BookError, match=r"01_a; run `make pipeline` first"):
        book.preflight(tmp_path)


def test_cli_reports_preflight_errors_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path))
    assert book.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "_config.yml does not exist" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_small_book_builds_with_warnings_as_errors(tmp_path: Path):
    """The real configuration files on a two-page book: glue across documents works under -W."""
    for name in ("_config.yml",):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: outputs/notebooks/04_evaluation\n"
    )
    # a number the data could not give is glued as 'n/a' (glue_numbers) and pastes as n/a
    # whatever the format (the recsys_utils.run.glue_text extension of _config.yml)
    executed_notebook(tmp_path / "outputs/notebooks/04_evaluation.ipynb",
                      {"eval_rmse": "0.87345", "eval_time_ndcg_se": "'n/a'",
                       "eval_time_n_test_users": "'n/a'"})
    (tmp_path / "book").mkdir()
    (tmp_path / "book/intro.md").write_text(
        "# Intro\n\nRMSE is {glue:text}`/outputs/notebooks/04_evaluation.ipynb::eval_rmse:.3f`.\n"
        "S.e. {glue:text}`/outputs/notebooks/04_evaluation.ipynb::eval_time_ndcg_se:.3f` over "
        "{glue:text}`/outputs/notebooks/04_evaluation.ipynb::eval_time_n_test_users:,d` users.\n"
    )
    (tmp_path / "notebooks").mkdir()  # excluded sources must not become pages
    executed_notebook(tmp_path / "notebooks/99_source.ipynb", {})
    index = book.build_book(project_paths(tmp_path))
    assert index == tmp_path / "_build/html/index.html"
    intro = (tmp_path / "_build/html/book/intro.html").read_text()
    assert "RMSE is <span" in intro and "0.873</span>" in intro
    assert re.search(r"S\.e\. <span[^>]*>n/a</span> over <span[^>]*>n/a</span> users", intro)
    assert not (tmp_path / "_build/html/notebooks").exists()

    # a missing glue key is caught before jupyter-book runs
    (tmp_path / "book/intro.md").write_text(
        "# Intro\n\n{glue:text}`/outputs/notebooks/04_evaluation.ipynb::eval_mae:.3f`\n"
    )
    with pytest.raises(BookError, match="no glue key 'eval_mae'"):
        book.build_book(project_paths(tmp_path))
    # ... and, without the pre-flight, -W turns jupyter-book's warning into a failure
    with pytest.raises(RuntimeError, match="jupyter-book failed"):
        book.build_book(project_paths(tmp_path), check=False)


def test_glued_numbers_read_as_the_book_shows_them():
    assert format_like_myst("0.87345", ".3f") == "0.873"
    assert format_like_myst("12345", ",d") == "12,345"
    assert format_like_myst("'n/a'", ".3f") == NOT_MEASURED
    assert format_like_myst("-0.004", ".0%") == "0%"  # not Python's "-0%"
    assert format_like_myst("-0.04", ".0%") == "-4%"
    assert format_like_myst("-0.00001", ".1e") == "-1.0e-05"
    with pytest.raises(ValueError):
        format_like_myst("'ease'", ".3f")


def test_missing_images_are_named(tmp_path: Path):
    (tmp_path / "outputs/figures").mkdir(parents=True)
    (tmp_path / "outputs/figures/there.png").write_bytes(b"png")
    md = tmp_path / "book/monitoring.md"
    md.parent.mkdir()
    md.write_text(
        "```{figure} /outputs/figures/there.png\n```\n"
        "```{figure} /outputs/figures/gone.png\n```\n"
        "![alt](../outputs/figures/there.png) ![alt](../outputs/figures/away.png)\n"
        "![remote](https://example.org/x.png)\n"
    )
    assert book.missing_images(tmp_path, [md]) == [
        "book/monitoring.md:3: image /outputs/figures/gone.png does not exist",
        "book/monitoring.md:5: image ../outputs/figures/away.png does not exist",
    ]


def test_a_notebook_gluing_its_numbers_does_not_load_nbformat():
    """Every notebook imports this module for ``glue_numbers``; nbformat (1.5 s of
    jsonschema format checkers) is only for reading executed notebooks, so it loads there."""
    probe = ("import sys\nfrom recsys_utils.run.book import glue_numbers\n"
             "print(sorted(m for m in ('nbformat', 'jsonschema') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
