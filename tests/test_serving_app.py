"""The app (``serving.app``): it refuses bad state with one line, never a traceback,
and ``recsys-serve`` exits 2 before binding the port."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_fixture import serving_project

from recsys_utils.errors import DataError
from recsys_utils.lifecycle.registry import champion_version
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.serving.app import create_app, main


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> ProjectPaths:
    return serving_project(tmp_path_factory)


def test_refuses_to_start_without_artifacts(tmp_path: Path):
    empty = project_paths(tmp_path / "empty")
    with pytest.raises(DataError, match="make pipeline"):
        with TestClient(create_app(empty)):
            pass


def test_cli_prints_error_and_exits_2_without_artifacts(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]):
    assert main(["--root", str(tmp_path / "empty"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "make pipeline" in err
    assert "Traceback" not in err


def test_refuses_a_tampered_model(paths: ProjectPaths, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]):
    copy = project_paths(tmp_path / "copy")
    shutil.copytree(paths.root, copy.root)
    model_file = copy.models / champion_version(copy) / "model.pkl"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    assert main(["--root", str(copy.root)]) == 2
    assert "checksum" in capsys.readouterr().err

