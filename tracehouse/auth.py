"""Who is calling: the ASGI middleware that attaches a tenant to every request (or refuses it).

With auth off everything belongs to the default tenant. With `TRACEHOUSE_AUTH=api-key` every route needs
`x-api-key` (any case; empty counts as absent) or `Authorization: Bearer`, except the probes, `/info`, the API
docs, and the URLs whose token is the credential (presigned feedback, public shares, signed attachments).
`x-tenant-id` picks one of several tenants a key grants. A pure ASGI middleware: BaseHTTPMiddleware would add
a task and a copy of the body to every ingest request.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Protocol

import orjson
from anyio import to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from schemas import DEFAULT_TENANT_ID, Tenant
from storage.keys import Grant
from tracehouse.metrics import REFUSALS
from tracehouse.ratelimit import RateLimiter

_PUBLIC = re.compile(
    r"^(?:/api/v1)?(?:/info|/ok|/health|/metrics|/docs.*|/redoc|/openapi\.json"
    r"|/feedback/tokens/[^/]+|/public/.*|/api/v2/public/.*|/attachments/.*)$"
)


class KeyLookup(Protocol):
    """What the middleware needs of `storage.keys.KeyRepository`."""

    def cached(self, key: str) -> Grant | None: ...

    def tenants_of(self, key: str) -> Grant: ...


async def _reject(send: Send, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
    REFUSALS.labels(reason).inc()
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="tracehouse"'))
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps({"error": message, "status": status})})


def _credential(headers: dict[bytes, bytes]) -> str | None:
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    if key:
        return key
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, lookup: KeyLookup | None, limiter: RateLimiter | None) -> None:
        """`lookup` finds the tenants a key grants (None: auth off, everything is the default tenant)."""
        self.app = app
        self.lookup = lookup
        self.limiter = limiter
        self.default = Tenant(id=DEFAULT_TENANT_ID)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tenant = self.default
        public = _PUBLIC.match(scope["path"]) is not None
        if self.lookup is not None and not public:
            headers = dict(scope["headers"])
            key = _credential(headers)
            if key is None:
                await _reject(
                    send, 401, "missing_key", "authentication required: send x-api-key or Authorization: Bearer"
                )
                return
            granted = self.lookup.cached(key)
            if granted is None:  # a storage round trip: keep it off the event loop
                granted = await to_thread.run_sync(self.lookup.tenants_of, key)
            if not granted:
                await _reject(send, 401, "invalid_key", "invalid or revoked API key")
                return
            tenant = Tenant(id=granted[0])
            wanted = headers.get(b"x-tenant-id", b"").decode("latin-1").strip()
            if wanted:
                try:
                    chosen = uuid.UUID(wanted)
                except ValueError:
                    await _reject(send, 400, "bad_workspace", "x-tenant-id is not a UUID")
                    return
                if chosen not in granted:
                    await _reject(
                        send,
                        403,
                        "workspace_not_granted",
                        "this API key does not grant access to the workspace in x-tenant-id",
                    )
                    return
                tenant = Tenant(id=chosen)
        if self.limiter is not None and not public:
            wait = self.limiter.acquire(tenant.id)
            if wait:
                await _reject(
                    send, 429, "rate_limited", "rate limit exceeded for this workspace; retry later", retry_after=wait
                )
                return
        scope.setdefault("state", {})["tenant"] = tenant
        await self.app(scope, receive, send)
