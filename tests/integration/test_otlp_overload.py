"""Overload: OTLP exports beyond the spool's bound get 503 with Retry-After (exporters retry those), and a
request that fits still goes through on the same server."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from tests.otlp_payloads import new_span_id, new_trace_id, request, span
from tests.support import Server, wait_for


def test_spool_full_gives_503_with_retry_after(tmp_path: Path) -> None:
    with Server(tmp_path / "data", env={"TRACEHOUSE_SPOOL_MAX_BYTES": "4096"}) as srv:
        url = f"{srv.url}/otel/v1/traces"
        headers = {"content-type": "application/json"}
        trace = new_trace_id()
        big = request([span(trace, new_span_id(), f"s{i}", {"input.value": "x" * 200}) for i in range(100)])
        refused = httpx.post(url, content=big, headers=headers, timeout=10)
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1 and "retry" in refused.json()["error"]

        small_trace = new_trace_id()
        accepted = httpx.post(url, content=request([span(small_trace, new_span_id(), "fits")]), headers=headers)
        assert accepted.status_code == 200

        def stored() -> bool:
            runs = httpx.post(f"{srv.url}/runs/query", json={"trace": str(uuid.UUID(small_trace))}).json()["runs"]
            return [r["name"] for r in runs] == ["fits"]

        wait_for(stored, timeout=30, what="the small export stored")
        none = httpx.post(f"{srv.url}/runs/query", json={"trace": str(uuid.UUID(trace))}).json()["runs"]
        assert none == []
