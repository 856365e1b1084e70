"""The auth middleware on a tiny ASGI app: which paths are public, how a credential is found,
what each refusal says. Key storage is `storage.keys` in the integration tests; here a dict stands in for it."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from schemas import DEFAULT_TENANT_ID
from storage.keys import KEY_PREFIX, Grant
from tracehouse.auth import AuthMiddleware
from tracehouse.ratelimit import RateLimiter

A, B = uuid.uuid4(), uuid.uuid4()
KEY_A, KEY_AB = KEY_PREFIX + "a" * 43, KEY_PREFIX + "b" * 43


class Keys:
    def __init__(self) -> None:
        self.grants: dict[str, Grant] = {KEY_A: (A,), KEY_AB: (A, B)}
        self.storage_reads = 0

    def cached(self, key: str) -> Grant | None:
        return None

    def tenants_of(self, key: str) -> Grant:
        self.storage_reads += 1
        return self.grants.get(key, ())


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"tenant": str(request.state.tenant.id)})


def client(keys: Keys | None, limiter: RateLimiter | None = None) -> httpx.AsyncClient:
    inner = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])
    app = AuthMiddleware(inner, lookup=keys, limiter=limiter)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.anyio
async def test_auth_off_everything_is_the_default_tenant() -> None:
    async with client(None) as http:
        response = await http.get("/runs/x", headers={"x-api-key": "anything", "x-tenant-id": str(B)})
    assert response.json()["tenant"] == str(DEFAULT_TENANT_ID)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    [
        "/info",
        "/api/v1/info",
        "/ok",
        "/health",
        "/metrics",
        "/docs",
        "/openapi.json",
        "/feedback/tokens/abc",
        "/api/v1/feedback/tokens/abc",
        "/public/tok/run",
        "/api/v1/public/tok/runs/query",
        "/attachments/t/r/doc",
    ],
)
async def test_public_paths_need_no_key(path: str) -> None:
    async with client(Keys()) as http:
        assert (await http.get(path)).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path", ["/runs/x", "/api/v1/runs/x", "/feedback/tokens", "/feedback/tokens/a/b", "/info/x", "/publicx", "/"]
)
async def test_other_paths_need_a_key(path: str) -> None:
    async with client(Keys()) as http:
        response = await http.get(path)
    assert response.status_code == 401
    assert "x-api-key" in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": KEY_A},
        {"X-API-KEY": KEY_A},
        {"Authorization": f"Bearer {KEY_A}"},
        {"authorization": f"bearer {KEY_A}"},
    ],
)
async def test_credential_forms(headers: dict[str, str]) -> None:
    async with client(Keys()) as http:
        response = await http.get("/runs", headers=headers)
    assert response.status_code == 200 and response.json()["tenant"] == str(A)


@pytest.mark.anyio
async def test_refusals_say_why() -> None:
    keys = Keys()
    reasons = ("missing_key", "invalid_key", "bad_workspace", "workspace_not_granted")
    before = {r: REGISTRY.get_sample_value("tracehouse_auth_refusals_total", {"reason": r}) or 0 for r in reasons}
    async with client(keys) as http:
        empty = await http.get("/runs", headers={"x-api-key": ""})
        assert empty.status_code == 401 and "authentication required" in empty.json()["error"]
        basic = await http.get("/runs", headers={"Authorization": f"Basic {KEY_A}"})
        assert basic.status_code == 401, "only Bearer carries a key"
        wrong = await http.get("/runs", headers={"x-api-key": KEY_PREFIX + "c" * 43})
        assert wrong.status_code == 401 and "invalid or revoked" in wrong.json()["error"]
        foreign = await http.get("/runs", headers={"x-api-key": KEY_A, "x-tenant-id": str(B)})
        assert foreign.status_code == 403 and "x-tenant-id" in foreign.json()["error"]
        bad = await http.get("/runs", headers={"x-api-key": KEY_AB, "x-tenant-id": "acme"})
        assert bad.status_code == 400 and "UUID" in bad.json()["error"]
        chosen = await http.get("/runs", headers={"x-api-key": KEY_AB, "x-tenant-id": str(B)})
        assert chosen.json()["tenant"] == str(B)
        default = await http.get("/runs", headers={"x-api-key": KEY_AB})
        assert default.json()["tenant"] == str(A), "without x-tenant-id a key acts in its first workspace"
    after = {r: REGISTRY.get_sample_value("tracehouse_auth_refusals_total", {"reason": r}) for r in reasons}
    assert {r: after[r] - before[r] for r in reasons} == {
        "missing_key": 2,
        "invalid_key": 1,
        "bad_workspace": 1,
        "workspace_not_granted": 1,
    }


@pytest.mark.anyio
async def test_rate_limit_is_per_tenant_and_spares_public_paths() -> None:
    async with client(Keys(), RateLimiter(rate=0.001, burst=2)) as http:
        statuses = [(await http.get("/runs", headers={"x-api-key": KEY_A})).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = await http.get("/runs", headers={"x-api-key": KEY_A})
        assert int(limited.headers["retry-after"]) >= 1 and limited.json()["status"] == 429
        assert (await http.get("/runs", headers={"x-api-key": KEY_AB, "x-tenant-id": str(B)})).status_code == 200
        assert (await http.get("/ok")).status_code == 200
