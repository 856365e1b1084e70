"""schemathesis against the running server's OpenAPI document: no generated request may produce a 5xx, every
error is the API's JSON error saying what is wrong, and every success matches the response schema the document
declares.

Not checked: status-code conformance (routes answer 400/404/413/415 that the generated document does not list).
The 422s the document lists are checked against it: it describes them as `{"error", "status", "detail"}`, the
shape of every tracehouse error, not as FastAPI's own validation error.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.fuzz.conftest import EXAMPLES, TRIED
from tests.support import Server

NOT_JSON = {"/metrics"}  # Prometheus text format


@pytest.fixture(scope="module")
def api_schema(server: Server, known_run: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_no_server_errors(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation, `EXAMPLES` generated requests each (schemathesis as a library: its pytest plugin does not
    support pytest 9 yet)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=os.environ.get("CI") == "true",
        )
        def check(case: schemathesis.Case) -> None:
            TRIED[f"openapi {case.method} {case.path}"] += 1
            response = case.call(timeout=30)
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:
                assert response.headers["content-type"][0].startswith("application/json"), response.text[:300]
                assert response.json().get("error") and response.json().get("status") == response.status_code, (
                    response.text[:300]
                )
                if response.status_code == 422:
                    case.validate_response(response, checks=[response_schema_conformance])
            elif case.path not in NOT_JSON:
                case.validate_response(response, checks=[response_schema_conformance])

        check()
    assert len(operations) >= 25, "every route is in the document"
