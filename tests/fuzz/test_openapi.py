"""schemathesis against the running server's OpenAPI document: no generated request may produce a 5xx.

Budget: `TRACEHOUSE_FUZZ_EXAMPLES` examples per operation (default 25, ~10 s here).
"""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support import Server

EXAMPLES = int(os.environ.get("TRACEHOUSE_FUZZ_EXAMPLES", "25"))
KNOWN_RUN = str(uuid.uuid4())


@pytest.fixture(scope="module")
def api_schema(server: Server) -> schemathesis.BaseSchema:
    run = {"id": KNOWN_RUN, "name": "known", "run_type": "chain", "inputs": {"keep": "me"}}
    assert httpx.post(f"{server.url}/runs", json=run).status_code == 202
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_no_server_errors(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation, `EXAMPLES` generated requests each (schemathesis as a library: its pytest plugin does not
    support pytest 9 yet)."""
    tried = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=os.environ.get("CI") == "true",  # a fixed budget in CI, random elsewhere
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal tried
            tried += 1
            response = case.call(timeout=30)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
            )

        check()
    print(f"\nschemathesis: {tried} generated requests, 0 server errors")
    assert tried >= EXAMPLES * 10


def test_server_survived_and_data_is_intact(server: Server) -> None:
    assert server.proc is not None and server.proc.poll() is None, "the server process is alive"
    run = httpx.get(f"{server.url}/runs/{KNOWN_RUN}")
    assert run.status_code == 200 and run.json()["inputs"] == {"keep": "me"}
