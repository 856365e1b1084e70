"""Shared by the fuzz modules: the example budget, a request helper that fails on any 5xx or non-JSON error, a
count of the cases tried per target, and a check after every test that the server is alive and the run stored
before the fuzzing is intact.

Budget: `TRACEHOUSE_FUZZ_EXAMPLES` (default 25) examples per schemathesis operation, 2x that per wire
fuzzer; about two minutes for the three modules here, server starts included. In CI (`CI=true`) the examples
are derandomized, so a run is judged on a fixed budget; elsewhere they are random, so longer local runs keep
finding new cases.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, settings

from tests.support import Server, wait_for

EXAMPLES = int(os.environ.get("TRACEHOUSE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES * 2,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=os.environ.get("CI") == "true",
)
TRIED: Counter[str] = Counter()
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KNOWN_INPUTS = {"keep": "me", "text": "ünïcode ✓"}


def send(
    url: str,
    method: str,
    path: str,
    body: bytes,
    content_type: str | None = "application/json",
    encoding: str | None = None,
    *,
    target: str | None = None,
) -> httpx.Response:
    """One request; a 5xx fails the test, and so does an error that is not the API's JSON error saying what is
    wrong."""
    headers = {k: v for k, v in (("Content-Type", content_type), ("Content-Encoding", encoding)) if v is not None}
    TRIED[target or f"{method} {_UUID.sub('{id}', path.split('?')[0])}"] += 1
    response = httpx.request(method, f"{url}{path}", content=body, headers=headers, timeout=60)
    assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), response.text[:200]
        error = response.json()
        assert error.get("error") and error.get("status") == response.status_code, f"the API's error shape: {error}"
    return response


@pytest.fixture(scope="module")
def known_run(server: Server) -> str:
    """A run stored before any fuzzing; it must come back unchanged after every test."""
    run_id = str(uuid.uuid4())
    run = {"id": run_id, "name": "known", "run_type": "chain", "inputs": KNOWN_INPUTS}
    assert httpx.post(f"{server.url}/runs", json=run).status_code == 202
    wait_for(lambda: httpx.get(f"{server.url}/runs/{run_id}").status_code == 200, what="the known run")
    return run_id


@pytest.fixture(autouse=True)
def _server_survives(server: Server, known_run: str) -> Iterator[None]:
    yield
    assert server.proc is not None and server.proc.poll() is None, "the server process is alive"
    response = httpx.get(f"{server.url}/runs/{known_run}", timeout=30)
    assert response.status_code == 200 and response.json()["inputs"] == KNOWN_INPUTS, "data stored before is intact"
    sentinel = str(uuid.uuid4())  # acknowledged after the fuzzing: the batcher was not wedged by what came before
    assert httpx.post(f"{server.url}/runs", json={"id": sentinel, "name": "after", "run_type": "tool"}).is_success
    wait_for(lambda: httpx.get(f"{server.url}/runs/{sentinel}").status_code == 200, what="a run sent after fuzzing")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TRIED:
        terminalreporter.section("fuzz cases tried")
        for target, count in sorted(TRIED.items()):
            terminalreporter.write_line(f"{count:6d}  {target}")
        terminalreporter.write_line(f"{sum(TRIED.values()):6d}  in all, 0 server errors (any 5xx fails its test)")
