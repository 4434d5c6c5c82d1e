"""The API's OpenAPI contract: pinned by a committed snapshot, fuzzed by schemathesis.

The snapshot (``tests/openapi_snapshot.json``) makes every change of the schema
visible in review: a deliberate change is recorded with ``make openapi-snapshot``
(``recsys-serve --openapi``) and committed with the code that caused it.

Schemathesis fuzzes the API against its own OpenAPI schema: no 5xx, answers match it.

Positive and negative cases for every operation, all of schemathesis's default
checks (no server error, status codes, content types and bodies conforming to
the schema, unsupported methods rejected, ...). Bounded: a few examples per
operation, no example database written to the repository.

Why the schema comes from ``create_app().openapi()`` rather than
``schemathesis.pytest.from_fixture``: building the app's schema needs no
artifacts, while the lazy fixture loader of schemathesis 4.x breaks under
pytest 9 (``Function`` has no ``_nodeid``). The calls go to an app loaded from
the fixture project (``app=`` in ``call_and_validate``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from serving_fixture import serving_project

from recsys_utils.paths import PROJECT_ROOT
from recsys_utils.serving.app import create_app, openapi_json
from recsys_utils.serving.state import load_state

SNAPSHOT = PROJECT_ROOT / "tests" / "openapi_snapshot.json"

schema = schemathesis.openapi.from_dict(create_app().openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


def test_openapi_schema_matches_the_committed_snapshot():
    current = json.loads(openapi_json(create_app()))
    pinned = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    changed = sorted(set(current["paths"]) ^ set(pinned["paths"])) or sorted(
        k for k in set(current["components"]["schemas"]) | set(pinned["components"]["schemas"])
        if current["components"]["schemas"].get(k) != pinned["components"]["schemas"].get(k))
    assert current == pinned, (
        f"the OpenAPI schema changed (first differences: {changed[:5]}); if deliberate, "
        "run `make openapi-snapshot` and commit tests/openapi_snapshot.json")


def test_snapshot_command_prints_the_schema():
    """`recsys-serve --openapi` (what `make openapi-snapshot` runs) needs no artifacts."""
    out = subprocess.run([sys.executable, "-m", "recsys_utils.serving.app", "--openapi"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert json.loads(out) == json.loads(openapi_json(create_app()))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    paths = serving_project(tmp_path_factory)
    return create_app(paths, state=load_state(paths))


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, app):
    case.call_and_validate(app=app)


def test_api_workflows_follow_the_schema_links(app):
    """Stateful: recommendations -> the recommended title -> its similar titles, as the
    OpenAPI links describe, with every answer checked against the schema."""
    workflow = schemathesis.openapi.from_asgi("/openapi.json", app).as_state_machine()
    workflow.run(settings=settings(max_examples=15, stateful_step_count=4, deadline=None,
                                   database=None, suppress_health_check=list(HealthCheck)))
