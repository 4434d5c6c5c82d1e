"""The batch runner on tiny throwaway notebooks (a project tree in tmp_path).

The notebooks here take well under a second each to execute; they exercise
parameter parsing and typing, the unknown-name error, the skip logic (content
hashes) and the failure report, not the real analysis.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from recsys_utils.paths import PROJECT_ROOT, project_paths
from recsys_utils.run import pipeline
from recsys_utils.run.pipeline import (
    ParameterError,
    StepFailed,
    load_params_file,
    parse_override,
    parse_value,
    resolve_parameters,
    run_pipeline,
)


def write_notebook(path: Path, params: str, body: str, title: str = "Tiny") -> Path:
    """A notebook in the house structure: title, imports, parameters, body."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"
    }
    nb.metadata["language_info"] = {"name": "python"}
    tagged = new_code_cell(params)
    tagged.metadata["tags"] = ["parameters"]
    nb.cells = [
        new_markdown_cell(f"# {title}"),
        new_code_cell("import json\nfrom pathlib import Path"),
        tagged,
        new_code_cell(body),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with two notebooks: 01 copies data/raw/n.txt to data/processed, 02 reads it."""
    nbs = tmp_path / "notebooks"
    write_notebook(
        nbs / "01_make.ipynb",
        'raw_dir = "data/raw"\nseed = 1\nscale = 1.0',
        "root = Path.cwd().parent\n"
        "n = int((root / raw_dir / 'n.txt').read_text())\n"
        "(root / 'data/processed').mkdir(parents=True, exist_ok=True)\n"
        "(root / 'data/processed/n.json').write_text(json.dumps({'n': n * scale, 'seed': seed}))",
    )
    write_notebook(
        nbs / "02_use.ipynb",
        "seed = 1\nks = [5, 10]\nverbose = False",
        "root = Path.cwd().parent\n"
        "data = json.loads((root / 'data/processed/n.json').read_text())\n"
        "assert data['n'] >= 0, 'n must be non-negative'\n"
        "print(data['n'], ks, seed)",
    )
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/n.txt").write_text("3")
    return tmp_path


def run(project: Path, **kwargs):
    return run_pipeline(paths=project_paths(project), **kwargs)


def statuses(results) -> list[str]:
    return [r.status for r in results]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50", 50),
        ("0.1", 0.1),
        ("1e-3", 0.001),  # YAML 1.1 would leave this a string
        ("-2.5E2", -250.0),
        ("[5, 10]", [5, 10]),
        ("true", True),
        ("null", None),
        ("data/raw", "data/raw"),
        ("'50'", "50"),
        ("{a: 1}", {"a": 1}),
    ],
)
def test_parse_value_is_typed(text, expected):
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_override_splits_notebook_and_name():
    assert parse_override("seed=7") == (None, "seed", 7)
    assert parse_override("03_modeling.n_epochs=5") == ("03_modeling", "n_epochs", 5)
    assert parse_override("raw_dir=../shared/data/catalogs") == (
        None, "raw_dir", "../shared/data/catalogs"
    )
    with pytest.raises(ParameterError, match="name=value"):
        parse_override("seed")
    with pytest.raises(ParameterError, match="not a parameter name"):
        parse_override("my-seed=1")


def test_params_file_sections_and_precedence(project: Path, tmp_path: Path):
    params = tmp_path / "params.yaml"
    params.write_text("common:\n  seed: 3\n01_make:\n  scale: 2\n02_use:\n  seed: 9\n")
    steps = pipeline.discover_steps(project / "notebooks")
    eff = resolve_parameters(steps, load_params_file(params))
    # common goes only to notebooks that declare the name; sections override common
    assert eff == {"01_make": {"seed": 3, "scale": 2}, "02_use": {"seed": 9}}
    # --set beats the file; a targeted --set beats a global one, whatever the order given
    eff = resolve_parameters(
        steps, load_params_file(params),
        [("02_use", "seed", 11), (None, "seed", 5), (None, "ks", [1, 2, 3])],
    )
    assert eff["01_make"]["seed"] == 5
    assert eff["02_use"] == {"seed": 11, "ks": [1, 2, 3]}


def test_unknown_names_are_errors(project: Path, tmp_path: Path):
    steps = pipeline.discover_steps(project / "notebooks")
    with pytest.raises(ParameterError, match=r"unknown parameter 'sed'.*did you mean 'seed'"):
        resolve_parameters(steps, load_params_file(None), [(None, "sed", 1)])
    # declared by 02 but not by 01: targeting 01 is an error
    with pytest.raises(ParameterError, match="not declared by 01_make"):
        resolve_parameters(steps, load_params_file(None), [("01_make", "ks", [1])])
    bad = tmp_path / "bad.yaml"
    bad.write_text("common:\n  n_factorz: 3\n")
    with pytest.raises(ParameterError, match=r"bad.yaml \[common\]: unknown parameter 'n_factorz'"):
        resolve_parameters(steps, load_params_file(bad))
    bad.write_text("09_nothing:\n  seed: 3\n")
    with pytest.raises(ParameterError, match="section '09_nothing'.*unknown notebook"):
        resolve_parameters(steps, load_params_file(bad))


def test_types_are_checked_against_declarations(project: Path):
    steps = pipeline.discover_steps(project / "notebooks")
    with pytest.raises(ParameterError, match="declares seed as int.*got str 'abc'"):
        resolve_parameters(steps, load_params_file(None), [(None, "seed", "abc")])
    with pytest.raises(ParameterError, match="declares seed as int.*got bool"):
        resolve_parameters(steps, load_params_file(None), [(None, "seed", True)])
    with pytest.raises(ParameterError, match="declares ks as list"):
        resolve_parameters(steps, load_params_file(None), [(None, "ks", 5)])
    # an int is an acceptable float
    eff = resolve_parameters(steps, load_params_file(None), [(None, "scale", 2)])
    assert eff["01_make"]["scale"] == 2


def test_cli_unknown_parameter_exits_2_without_traceback(project, monkeypatch, capsys):
    monkeypatch.setenv("RECSYS_ROOT", str(project))
    code = pipeline.main(["--set", "sede=2"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --set sede: unknown parameter 'sede'")
    assert "Traceback" not in err
    assert not (project / "outputs/notebooks/01_make.ipynb").exists()  # nothing ran


def test_cli_refuses_a_bad_value_before_any_notebook_runs(project, monkeypatch, capsys):
    """A value its rule refuses (recsys_utils.run.parameter_rules) is exit 2, one line, and
    nothing runs, not even the notebooks before the one that declares it."""
    write_notebook(project / "notebooks/03_fit.ipynb", "n_folds = 5\nseed = 1",
                   "print(n_folds, seed)")
    monkeypatch.setenv("RECSYS_ROOT", str(project))
    for args, message in (
        (["--set", "n_folds=-1"], "--set n_folds: 03_fit's n_folds must be an integer >= 2, got -1"),
        (["--set", "03.n_folds=1"], "--set 03.n_folds: 03_fit's n_folds must be an integer >= 2, "
                                    "got 1"),
        (["--set", "seed=-3", "--list"], "--set seed: 01_make's seed must be an integer in "
                                         "[0, 4294967295], got -3"),
    ):
        assert pipeline.main(args) == 2
        captured = capsys.readouterr()
        assert captured.err == f"error: {message}\n"
        assert "running" not in captured.out and "pipeline:" not in captured.out
    params = project / "params.yaml"
    params.write_text("03_fit:\n  n_folds: 0\n", encoding="utf-8")
    assert pipeline.main(["--params", str(params)]) == 2
    assert capsys.readouterr().err == (f"error: {params} [03_fit]: 03_fit's n_folds must be an "
                                       "integer >= 2, got 0\n")
    # no notebook ran: no executed copy, no state file, not 01's output either
    assert not (project / "outputs/notebooks").exists()
    assert not (project / "data/processed").exists()
    # the same values, valid, do run
    assert pipeline.main(["--set", "n_folds=2", "--set", "seed=0"]) == 0
    assert (project / "outputs/notebooks" / pipeline.STATE_FILE).is_file()
    assert (project / "outputs/notebooks/03_fit.ipynb").is_file()


def test_cli_missing_params_file_exits_2(project, monkeypatch, capsys):
    monkeypatch.setenv("RECSYS_ROOT", str(project))
    assert pipeline.main(["--params", str(project / "nope.yaml")]) == 2
    assert "nope.yaml does not exist" in capsys.readouterr().err
    assert pipeline.main(["--params", str(project)]) == 2
    assert f"parameters file {project} is a folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- running


def test_runs_in_order_with_parameters_then_skips_unchanged(project: Path):
    results = run(project, overrides=["01_make.scale=2", "seed=4"])
    assert [(r.name, r.status) for r in results] == [("01_make", "ran"), ("02_use", "ran")]
    executed = project / "outputs/notebooks/02_use.ipynb"
    nb = nbformat.read(executed, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "seed = 4" in injected[0].source
    assert "ks" not in injected[0].source  # only what was given, only what is declared
    assert json.loads((project / "data/processed/n.json").read_text()) == {"n": 6.0, "seed": 4}
    state = json.loads((project / "outputs/notebooks" / pipeline.STATE_FILE).read_text())
    assert set(state["steps"]) == {"01_make", "02_use"}

    # same everything -> nothing runs
    assert statuses(run(project, overrides=["01_make.scale=2", "seed=4"])) == [
        "skipped", "skipped"
    ]
    # a different parameter value reruns the step that receives it (and its dependants)
    assert statuses(run(project, overrides=["01_make.scale=3", "seed=4"])) == ["ran", "ran"]


def test_changed_input_notebook_or_missing_copy_reruns(project: Path, monkeypatch):
    # map the tiny steps onto the real specs: 01 reads {raw_dir}, 02 reads data/processed
    run(project)
    assert statuses(run(project)) == ["skipped", "skipped"]

    (project / "data/raw/n.txt").write_text("4")  # input file of 01
    assert statuses(run(project)) == ["ran", "ran"]  # 02: data/processed changed

    # a batch `make retrain` wrote to the ratings history: 01 replays it
    (project / "data/history").mkdir(parents=True, exist_ok=True)
    (project / "data/history/20260101T000000_accepted.csv").write_text("x")
    assert statuses(run(project))[0] == "ran"

    nb_path = project / "notebooks/02_use.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[-1].source += "\nprint('more')"
    nbformat.write(nb, nb_path)
    assert statuses(run(project)) == ["skipped", "ran"]

    # outputs and metadata are not content: saving from JupyterLab does not force a rerun
    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata["widgets"] = {"state": {}}
    nb.cells[-1].execution_count = 3
    nbformat.write(nb, nb_path)
    assert statuses(run(project)) == ["skipped", "skipped"]

    (project / "outputs/notebooks/01_make.ipynb").unlink()
    assert statuses(run(project)) == ["ran", "skipped"]  # 01 re-made the same data


def test_only_from_and_force_select_steps(project: Path):
    run(project)
    assert [(r.name, r.status) for r in run(project, only=["use"])] == [("02_use", "ran")]
    assert [(r.name, r.status) for r in run(project, start="02")] == [("02_use", "ran")]
    assert statuses(run(project, force=True)) == ["ran", "ran"]
    with pytest.raises(ParameterError, match="unknown notebook '7'"):
        run(project, only=["7"])
    for only, start in (([""], None), (["01"], "02")):  # `--only ""`; `--only 01 --from 02`
        with pytest.raises(ParameterError, match="names no notebook to run"):
            run(project, only=only, start=start)


def test_skip_leaves_steps_out_and_the_rest_still_run_only_if_changed(project: Path):
    assert [(r.name, r.status) for r in run(project, skip=["02"])] == [("01_make", "ran")]
    assert not (project / "outputs/notebooks/02_use.ipynb").exists()
    assert statuses(run(project)) == ["skipped", "ran"]  # 02 never ran; 01 is unchanged
    assert statuses(run(project, skip=["use"])) == ["skipped"]
    with pytest.raises(ParameterError, match="leaves no notebook to run"):
        run(project, skip=["01,02"])
    with pytest.raises(ParameterError, match="unknown notebook '7'"):
        run(project, skip=["7"])


def test_cli_params_file_not_utf8_exits_2(project, monkeypatch, capsys):
    monkeypatch.setenv("RECSYS_ROOT", str(project))
    latin1 = project / "latin1.yaml"
    latin1.write_bytes("common:\n  raw_dir: caf\u00e9\n".encode("latin-1"))
    assert pipeline.main(["--params", str(latin1), "--list"]) == 2
    err = capsys.readouterr().err
    assert "latin1.yaml is not UTF-8 text (byte 22: b'\\xe9')" in err and "Traceback" not in err


def test_list_runs_nothing(project: Path, capsys):
    assert run(project, list_only=True, overrides=["seed=2"]) == []
    out = capsys.readouterr().out
    assert "01_make" in out and "would run (no successful run recorded)" in out
    assert "ks: list = [5, 10]  (notebook default)" in out
    # what each value accepts, from the rules the run checks
    assert "seed: int = 2  [an integer in [0, 4294967295]]" in out
    assert not (project / "outputs/notebooks/01_make.ipynb").exists()


def test_failure_names_notebook_and_cell_and_keeps_copy(project: Path, monkeypatch, capsys):
    run(project)
    (project / "data/raw/n.txt").write_text("-1")
    with pytest.raises(StepFailed) as info:
        run(project)
    msg = str(info.value)
    assert msg.startswith("02_use failed at cell 3 (In [")
    assert "root = Path.cwd().parent" in msg  # first line of the failing cell
    assert "failing line: assert data['n'] >= 0" in msg  # the line IPython points at
    assert "AssertionError: n must be non-negative" in msg
    assert "outputs/notebooks/02_use.ipynb" in msg
    kept = nbformat.read(project / "outputs/notebooks/02_use.ipynb", as_version=4)
    assert any(o.get("ename") == "AssertionError" for c in kept.cells for o in c.get("outputs", []))
    state = json.loads((project / "outputs/notebooks" / pipeline.STATE_FILE).read_text())
    assert "02_use" not in state["steps"]  # a failed step is never skipped next time
    assert "01_make" in state["steps"]

    # the CLI: exit 1, message, no traceback
    monkeypatch.setenv("RECSYS_ROOT", str(project))
    capsys.readouterr()
    assert pipeline.main([]) == 1
    captured = capsys.readouterr()
    assert "02_use" in captured.out and "FAILED" in captured.out
    assert "error: 02_use failed at cell 3" in captured.err
    assert "Traceback" not in captured.err


def test_failure_stops_at_once(project: Path):
    nb_path = project / "notebooks/01_make.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(new_code_cell("raise ValueError('bad scale')"))
    nbformat.write(nb, nb_path)
    with pytest.raises(StepFailed, match=r"01_make failed at cell 4[\s\S]*\n  ValueError: bad scale"):
        run(project)
    assert not (project / "outputs/notebooks/02_use.ipynb").exists()  # 02 never started


def test_no_notebooks_is_a_clear_error(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    with pytest.raises(ParameterError, match="no notebooks to run"):
        run_pipeline(paths=project_paths(tmp_path))


def test_project_params_file_matches_the_notebooks():
    """The committed params.yaml only names parameters the committed notebooks declare."""
    paths = project_paths(PROJECT_ROOT)
    nbs = sorted(paths.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        pytest.skip("no notebooks committed yet")
    steps = pipeline.discover_steps(paths.notebooks)
    eff = resolve_parameters(steps, load_params_file(paths.notebooks / "params.yaml"))
    assert set(eff) == {p.stem for p in nbs}


def test_champion_input_follows_the_model_not_pointer_or_pickle_bytes(tmp_path: Path):
    models = tmp_path / "outputs/models"
    assert pipeline.input_digest(pipeline.CHAMPION_INPUT, tmp_path) == "missing"

    def register(version: str, fingerprint: str, params: dict, pickle: bytes) -> None:
        (models / version).mkdir(parents=True)
        (models / version / "model.pkl").write_bytes(pickle)
        (models / version / "manifest.json").write_text(json.dumps(
            {"version": version, "created_at": version, "data_fingerprint": fingerprint,
             "params": params}))
        (models / "champion.json").write_text(json.dumps({"version": version,
                                                          "updated_at": version}))

    register("v0001", "fp1", {"l2": 60}, b"model one")
    first = pipeline.input_digest(pipeline.CHAMPION_INPUT, tmp_path)
    # the same model trained again (nbval re-running 03): other version, other bytes
    register("v0002", "fp1", {"l2": 60}, b"model one, pickled again")
    assert pipeline.input_digest(pipeline.CHAMPION_INPUT, tmp_path) == first
    # a retrain on more data, or other parameters, is another champion
    register("v0003", "fp2", {"l2": 60}, b"model two")
    second = pipeline.input_digest(pipeline.CHAMPION_INPUT, tmp_path)
    assert second != first
    register("v0004", "fp2", {"l2": 100}, b"model three")
    assert pipeline.input_digest(pipeline.CHAMPION_INPUT, tmp_path) not in (first, second)


def test_failing_line_is_the_cells_own_line_with_chained_exceptions(project: Path):
    nb_path = project / "notebooks/01_make.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(new_code_cell(
        "def parse(p):\n"
        "    try:\n"
        "        return {'Q': 1}[p]\n"
        "    except KeyError:\n"
        "        raise ValueError(p)\n"
        "\n"
        "x = 1\n"
        "y = parse('X')"
    ))
    nbformat.write(nb, nb_path)
    with pytest.raises(StepFailed) as info:
        run(project)
    msg = str(info.value)
    assert msg.startswith("01_make failed at cell 4 (In [")
    assert "): def parse(p):\n" in msg  # the cell's first line
    assert "\n  failing line: y = parse('X')\n" in msg  # not a line inside parse()
    assert "\n  ValueError: X\n" in msg


def test_changed_package_code_reruns_every_step(project: Path, monkeypatch):
    run(project)
    assert statuses(run(project)) == ["skipped", "skipped"]
    # every notebook calls recsys_utils: results computed with other code are stale
    monkeypatch.setattr(pipeline, "code_fingerprint", lambda: "edited-code")
    assert statuses(run(project)) == ["ran", "ran"]
    assert statuses(run(project)) == ["skipped", "skipped"]


def test_a_kernel_that_dies_while_starting_is_started_once_more(project: Path, monkeypatch,
                                                                capsys):
    """A kernel that dies before any cell ran (ports raced by kernels starting at once) is
    restarted once; a second death, or any other failure, stops the step."""
    import papermill as pm

    real, calls = pm.execute_notebook, []

    def dies_first(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - papermill's signature
        calls.append(args[0])
        if len(calls) == 1:
            raise RuntimeError(pipeline.KERNEL_START_FAILED)
        return real(*args, **kwargs)

    monkeypatch.setattr(pm, "execute_notebook", dies_first)
    assert statuses(run(project)) == ["ran", "ran"]
    assert len(calls) == 3 and calls[0] == calls[1]  # 01 twice, then 02
    assert "the kernel died while starting; starting another" in capsys.readouterr().out

    def always_dies(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args[0])
        raise RuntimeError(pipeline.KERNEL_START_FAILED)

    calls.clear()
    monkeypatch.setattr(pm, "execute_notebook", always_dies)
    with pytest.raises(StepFailed, match="01_make could not be executed: RuntimeError: Kernel"):
        run(project, force=True)
    assert len(calls) == 2  # once more, not forever
