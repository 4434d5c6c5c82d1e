"""Schemathesis fuzzes the API against its own OpenAPI schema: no 5xx, answers match it.

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

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from serving_fixture import serving_project

from recsys_utils.serving.api import create_app, load_state

schema = schemathesis.openapi.from_dict(create_app().openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


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
