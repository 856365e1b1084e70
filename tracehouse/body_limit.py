"""A size limit for the bodies of routes that do not bound their own.

Ingest routes stream their bodies and check the size before and after decompression (`ingest.body`); every other
route (queries, feedback, projects) lets FastAPI read the whole body into memory first, so without this a single
request could carry gigabytes. Those bodies are read here, up to the limit, and replayed to the app. (FastAPI's
own `max_body_size` answers a declared oversize body in plain text, and an exception raised from `receive`
would be turned into a vague 400 by FastAPI's body parsing, hence a middleware that answers the JSON error.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson
from fastapi import APIRouter
from fastapi.openapi.utils import get_openapi
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/api/v1"

RouteMatch = tuple[re.Pattern[str], frozenset[str]]  # path regex, methods


def operations(router: APIRouter) -> list[RouteMatch]:
    """The operations a router serves, from its OpenAPI description (FastAPI keeps included routers nested)."""
    paths = get_openapi(title="", version="", routes=router.routes)["paths"]
    return [(compile_path(path)[0], frozenset(method.upper() for method in item)) for path, item in paths.items()]


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, exempt: Iterable[RouteMatch]) -> None:
        """`exempt`: the operations that enforce their own limit, matched with or without the `/api/v1` prefix."""
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = tuple(exempt)

    def _exempt(self, scope: Scope) -> bool:
        path = scope["path"]
        path = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path
        return any(scope["method"] in methods for regex, methods in self.exempt if regex.match(path))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away; the app sees the disconnect
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        body = {"error": f"request body exceeds the limit of {self.max_bytes} bytes", "status": 413}
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps(body)})
