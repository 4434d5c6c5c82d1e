"""The app (``serving.app``): it refuses bad state with one line, never a traceback,
and ``recsys-serve`` exits 2 before binding the port; HEAD answers like GET; the
docs pages work without internet."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_fixture import KNOWN_USER, RATED_ID, serving_project

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


def test_cli_with_workers_checks_the_artifacts_in_a_throwaway_process(
        paths: ProjectPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):
    """With several workers, the parent (which never serves) must not hold a copy of the
    model: it checks the artifacts load in a spawned process (where this patch does not
    reach), and still says a missing artifact in one line before binding the port."""
    import uvicorn

    from recsys_utils.serving import app

    def no_copy_in_the_parent(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the parent process loaded the serving state")

    served: dict = {}
    monkeypatch.setattr(app, "load_state", no_copy_in_the_parent)
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: served.update(target=target, **kw))
    for name in ("RECSYS_ROOT", "RECSYS_CACHE_SIZE", "RECSYS_WARM_SECONDS",
                 "RECSYS_RELOAD_SECONDS"):  # main sets them for the workers: undone after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    assert main(["--root", str(paths.root), "--port", "0", "--workers", "2"]) == 0
    assert served["target"] == "recsys_utils.serving.app:create_app" and served["workers"] == 2
    assert os.environ["RECSYS_ROOT"] == str(paths.root)

    served.clear()
    assert main(["--root", str(tmp_path / "empty"), "--port", "0", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "make pipeline" in err and "Traceback" not in err
    assert not served


def test_refuses_a_tampered_model(paths: ProjectPaths, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]):
    copy = project_paths(tmp_path / "copy")
    shutil.copytree(paths.root, copy.root)
    model_file = copy.models / champion_version(copy) / "model.pkl"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    assert main(["--root", str(copy.root), "--port", "0"]) == 2  # 8000 may be in use
    assert "checksum" in capsys.readouterr().err


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize(("option", "value"), [
    ("--port", "99999"), ("--port", "-1"), ("--port", "http"), ("--workers", "0"),
    ("--cache-size", "-1"), ("--reload-seconds", "-1"), ("--warm-seconds", "nan"),
    ("--reload-seconds", "inf"), ("--max-body-bytes", "0"), ("--workers", "1.5"),
])
def test_out_of_range_options_are_usage_errors(option: str, value: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as stop:
        main(["--root", str(tmp_path), option, value])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert f"error: argument {option}: expected " in err and f"got '{value}'" in err and "Traceback" not in err


#: The variables ``recsys-serve`` reads its defaults from, and the option each stands for.
VARIABLES = {"RECSYS_PORT": "--port", "RECSYS_CACHE_SIZE": "--cache-size",
             "RECSYS_WARM_SECONDS": "--warm-seconds",
             "RECSYS_RELOAD_SECONDS": "--reload-seconds",
             "RECSYS_MAX_BODY_BYTES": "--max-body-bytes"}


@pytest.mark.parametrize("variable", sorted(VARIABLES))
@pytest.mark.parametrize("value", ["abc", "-1"])
def test_a_bad_environment_variable_is_one_line_naming_it(
        variable: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stop:  # --help still works
        main(["--help"])
    assert stop.value.code == 0 and "usage: recsys-serve" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        main(["--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert f"error: environment variable {variable}: expected " in err
    # the option given on the command line wins over the variable
    good = "1" if variable != "RECSYS_PORT" else "0"
    assert main(["--root", str(tmp_path / "empty"), VARIABLES[variable], good,
                 *(["--port", "0"] if variable != "RECSYS_PORT" else [])]) == 2
    assert "make pipeline" in capsys.readouterr().err  # got past the options
    # a bare `uvicorn --factory ...:create_app` reads them too: a DataError naming it
    if variable != "RECSYS_PORT":
        with pytest.raises(DataError, match=f"environment variable {variable}"):
            create_app(paths=project_paths(tmp_path))


def test_a_busy_port_is_one_line_before_loading(paths: ProjectPaths, busy_port: int,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]):
    from recsys_utils.serving import app

    def not_loaded(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the state was loaded before the port was checked")

    monkeypatch.setattr(app, "load_state", not_loaded)
    assert main(["--root", str(paths.root), "--port", str(busy_port)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: cannot listen on 127.0.0.1:{busy_port}: address already in use; "
                   "choose another --port\n")



# --------------------------------------------------------------------------- HEAD and docs


@pytest.fixture(scope="module")
def client(paths: ProjectPaths):
    with TestClient(create_app(paths)) as test_client:
        yield test_client


def _example_urls(client: TestClient) -> list[str]:
    """One URL per GET operation of the schema, with real ids in the path."""
    spec = client.get("/openapi.json").json()
    urls = [path.replace("{title_id}", RATED_ID).replace("{user_id}", str(KNOWN_USER))
            for path, operations in spec["paths"].items() if "get" in operations]
    posts = [path for path, operations in spec["paths"].items() if "get" not in operations]
    assert posts == ["/recommendations"]  # the one POST-only route
    assert len(urls) == len(spec["paths"]) - len(posts)
    return [*urls, "/openapi.json", "/docs", "/redoc"]


def test_head_answers_like_get_on_every_get_route(client: TestClient):
    for url in _example_urls(client):
        got, head = client.get(url), client.head(url)
        assert head.status_code == got.status_code == 200, url
        assert head.content == b"", url
        assert head.headers["content-type"] == got.headers["content-type"], url
        if url != "/health":  # its uptime and cache counters change between calls
            assert head.headers["content-length"] == str(len(got.content)), url


def test_head_of_an_error_is_the_same_error_without_body(client: TestClient):
    head = client.head("/titles/zz999")
    assert head.status_code == 404 and head.content == b""
    assert client.head("/users/abc/recommendations").status_code == 422


def test_other_methods_are_still_405(client: TestClient):
    response = client.post("/health")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
    # HEAD is GET's answer: a POST-only route answers HEAD like a GET, with 405
    for method in ("GET", "HEAD"):
        response = client.request(method, "/recommendations")
        assert response.status_code == 405 and response.headers["allow"] == "POST"


def test_docs_need_no_internet(client: TestClient):
    """/docs and /redoc load their scripts and styles from this server, not a CDN."""
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "//" not in html.replace("://", ""), page  # no protocol-relative URL
        assert not re.search(r"https?://", html), f"{page} refers to another host"
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, page
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200 and len(response.content) > 1000, asset
