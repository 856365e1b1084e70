"""Hand-built OTLP/JSON export requests (hex ids, camelCase, int64 as strings), as collectors and non-Python
SDKs send them: shared by the OTLP unit and integration tests."""

from __future__ import annotations

import os
import time
from typing import Any

from schemas import jsonutil


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        wrapped: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        wrapped = {"intValue": str(value)}
    elif isinstance(value, float):
        wrapped = {"doubleValue": value}
    elif isinstance(value, list):
        wrapped = {"arrayValue": {"values": [attr("", v)["value"] for v in value]}}
    else:
        wrapped = {"stringValue": str(value)}
    return {"key": key, "value": wrapped}


def span(
    trace_id: str,
    span_id: str,
    name: str,
    attributes: dict[str, Any] | None = None,
    *,
    parent: str = "",
    start_ns: int | None = None,
    duration_ns: int = 1_000_000,
    events: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    start = start_ns if start_ns is not None else time.time_ns()
    out: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": "SPAN_KIND_INTERNAL",
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + duration_ns),
        "attributes": [attr(k, v) for k, v in (attributes or {}).items()],
        "status": {"code": 2, "message": error} if error else {"code": 1},
    }
    if parent:
        out["parentSpanId"] = parent
    if events:
        out["events"] = [
            {
                "name": e["name"],
                "timeUnixNano": str(e.get("time", start)),
                "attributes": [attr(k, v) for k, v in e.get("attributes", {}).items()],
            }
            for e in events
        ]
    return out


def request(spans: list[dict[str, Any]], resource: dict[str, Any] | None = None, scope: str = "test") -> bytes:
    resource_attrs = {"service.name": "otlp-test", **(resource or {})}
    return jsonutil.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [attr(k, v) for k, v in resource_attrs.items()]},
                    "scopeSpans": [{"scope": {"name": scope, "version": "1.0"}, "spans": spans}],
                }
            ]
        }
    )
