"""Body limit of the routes that do not bound their own: declared and streamed sizes, exempt operations."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracehouse.body_limit import BodyLimitMiddleware, operations


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"body_bytes": len(await request.body())})


def client(max_bytes: int = 1000) -> httpx.AsyncClient:
    inner = Starlette(routes=[Route("/{path:path}", echo, methods=["POST", "PATCH"])])
    exempt = [
        (re.compile(r"^/runs/multipart$"), frozenset({"POST"})),
        (re.compile(r"^/runs/[^/]+$"), frozenset({"PATCH"})),
    ]
    app = BodyLimitMiddleware(inner, max_bytes=max_bytes, exempt=exempt)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def chunks(n: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b"x" * size


@pytest.mark.anyio
async def test_limit_on_declared_and_streamed_bodies() -> None:
    async with client() as http:
        assert (await http.post("/runs/query", content=b"x" * 1000)).json() == {"body_bytes": 1000}
        declared = await http.post("/runs/query", content=b"x" * 1001)
        assert declared.status_code == 413
        assert declared.json() == {"error": "request body exceeds the limit of 1000 bytes", "status": 413}
        streamed = await http.post("/runs/query", content=chunks(5, 300))
        assert streamed.status_code == 413, "a body without Content-Length is counted as it arrives"
        assert (await http.post("/runs/query", content=chunks(3, 300))).json() == {"body_bytes": 900}


@pytest.mark.anyio
async def test_exempt_operations_with_and_without_the_api_prefix() -> None:
    async with client() as http:
        assert (await http.post("/runs/multipart", content=b"x" * 5000)).json() == {"body_bytes": 5000}
        assert (await http.post("/api/v1/runs/multipart", content=b"x" * 5000)).status_code == 200
        assert (await http.patch("/runs/abc", content=b"x" * 5000)).status_code == 200
        assert (await http.post("/runs/abc", content=b"x" * 5000)).status_code == 413, "exempt by method too"
        assert (await http.post("/api/v1/runs/query", content=b"x" * 5000)).status_code == 413


def test_operations_of_nested_routers() -> None:
    inner = APIRouter()
    inner.add_api_route("/runs/{run_id}", lambda run_id: None, methods=["PATCH"])
    inner.add_api_route("/runs/batch", lambda: None, methods=["POST"])
    outer = APIRouter()
    outer.include_router(inner)
    found = {(regex.pattern, methods) for regex, methods in operations(outer)}
    assert found == {("^/runs/(?P<run_id>[^/]+)$", frozenset({"PATCH"})), ("^/runs/batch$", frozenset({"POST"}))}
