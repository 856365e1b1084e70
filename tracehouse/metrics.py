"""HTTP metrics (requests and latency by route template and status) and the `/metrics` endpoint.

The write path's own metrics (ingest rates, spool depth, batch sizes, flush latency) are declared in
`storage.metrics`; all of them share the default registry and appear on `/metrics`.
"""

from __future__ import annotations

import time

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("tracehouse_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "tracehouse_http_request_seconds",
    "HTTP request latency (ingest: until the ack; query: until the response)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

REFUSALS = Counter(
    "tracehouse_auth_refusals_total",
    "Requests refused before routing, by reason (missing_key, invalid_key, bad_workspace, workspace_not_granted, "
    "rate_limited)",
    ["reason"],
)


def metrics_endpoint() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI: labels use the matched route's template (`/runs/{run_id}`), never the raw path, so the
    number of series stays bounded; unmatched paths count as `unmatched`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
