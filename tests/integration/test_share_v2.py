"""Sharing in the generated v2 API of the real langsmith SDK (0.15.0): `client.runs.share.create` / `delete` and
the public reads of a shared trace, `client.public.runs.retrieve` / `query`, against a server holding traces the
SDK traced. Public runs are checked against the owner's v2 runs of the same trace. What a share does not open (a
wrong token, another trace, a deleted share) answers 404, and unsharing a trace closes every link into it,
including those v1 made of its child runs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, get_args

import httpx
import pytest
from langsmith import Client, NotFoundError, traceable, tracing_context

from query.runs_v2_shape import SELECT_FIELDS, PublicSelectField
from schemas import DEFAULT_TENANT_ID
from schemas.projects import project_id_for_name
from tests.support import Server, sdk, wait_for

# The v1 calls the answers are checked against are the deprecated ones.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed:DeprecationWarning")
PROJECT = f"sdk-v2-share-{uuid.uuid4().hex[:8]}"
PROJECT_ID = str(project_id_for_name(DEFAULT_TENANT_ID, PROJECT))
TRACES = 5
PUBLIC_SELECTS = list(get_args(PublicSelectField))
COMMON_SELECTS = [s for s in PUBLIC_SELECTS if s in SELECT_FIELDS]
USAGE = {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}


@dataclass(frozen=True)
class Trace:
    """A root, its child and the child's child, each with its v1 run."""

    root: str
    child: str
    grandchild: str
    v1: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def traces(client: Client, server: Server) -> list[Trace]:
    @traceable(run_type="llm", client=client, project_name=PROJECT)
    def model(prompt: str) -> dict[str, object]:
        return {"content": prompt.upper(), "usage_metadata": USAGE}

    @traceable(run_type="chain", client=client, project_name=PROJECT)
    def step(prompt: str) -> object:
        return model(prompt)["content"]

    @traceable(run_type="chain", client=client, project_name=PROJECT)
    def turn(i: int) -> object:
        return step(f"question {i}")

    roots = [str(uuid.uuid4()) for _ in range(TRACES)]
    with tracing_context(enabled=True):
        for i, root in enumerate(roots):
            turn(i, langsmith_extra={"run_id": root, "metadata": {"turn": i}})
    client.flush()
    every = 3 * TRACES
    wait_for(
        lambda: sum(1 for r in client.list_runs(project_id=PROJECT_ID) if r.end_time) == every,
        timeout=60,
        what=f"{every} finished runs",
    )
    out = []
    for root in roots:
        child = v1_run(server, root)["child_run_ids"][0]
        grandchild = v1_run(server, child)["child_run_ids"][0]
        out.append(Trace(root, child, grandchild, {r: v1_run(server, r) for r in (root, child, grandchild)}))
    return out


def v1_run(server: Server, run_id: str) -> dict[str, Any]:
    return httpx.get(f"{server.url}/runs/{run_id}").json()


def share(server: Server, run_id: str, trace: Trace) -> str:
    async def create(c: Client) -> str | None:
        return (await c.runs.share.create(run_id, session_id=PROJECT_ID, trace_id=trace.root)).share_token

    token = sdk(server, create)
    assert token
    return token


def public_reads(server: Server, token: str, run_id: str) -> list[int]:
    """The statuses of every public read of `run_id` through `token`: v1's and v2's."""
    return [
        httpx.get(f"{server.url}/public/{token}/run").status_code,
        httpx.get(f"{server.url}/public/{token}/run/{run_id}").status_code,
        httpx.get(f"{server.url}/api/v2/public/{token}/run/{run_id}").status_code,
        httpx.post(f"{server.url}/api/v2/public/{token}/runs/query", json={}).status_code,
    ]


def test_a_public_run_is_the_owners_v2_run_with_the_public_fields(server: Server, traces: list[Trace]) -> None:
    trace = traces[0]
    token = share(server, trace.grandchild, trace)

    async def both(c: Client, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        start = trace.v1[run_id]["start_time"]
        public = await c.public.runs.retrieve(run_id, share_token=token, selects=PUBLIC_SELECTS, start_time=start)
        owned = await c.runs.retrieve_v2(run_id, project_id=PROJECT_ID, selects=COMMON_SELECTS)  # type: ignore[arg-type]
        return public.to_dict(), owned.to_dict()

    for run_id in (trace.root, trace.child, trace.grandchild):
        public, owned = sdk(server, lambda c, run_id=run_id: both(c, run_id))
        assert public == {**owned, "parent_run_id": trace.v1[run_id]["parent_run_id"]}
        assert public["trace_id"] == trace.root and public["total_tokens"] == trace.v1[run_id]["total_tokens"]
    assert public["run_type"] == "LLM" and public["parent_run_id"] == trace.child


def test_the_public_query_is_every_run_of_the_trace_in_start_time_order(server: Server, traces: list[Trace]) -> None:
    trace = traces[1]
    token = share(server, trace.child, trace)

    async def both(c: Client) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        public = await c.public.runs.query(token, selects=PUBLIC_SELECTS)  # type: ignore[arg-type]
        owned = await c.traces.list_runs(trace.root, project_id=PROJECT_ID, selects=COMMON_SELECTS)  # type: ignore[arg-type]
        return [r.to_dict() for r in public.items or []], [r.to_dict() for r in owned.items or []]

    public, owned = sdk(server, both)
    assert [r["id"] for r in public] == [trace.root, trace.child, trace.grandchild]
    assert public == [{**r, "parent_run_id": trace.v1[r["id"]]["parent_run_id"]} for r in owned]
    bare = httpx.post(f"{server.url}/api/v2/public/{token}/runs/query", json={}).json()
    assert bare == {"items": [{"id": r["id"]} for r in public]}


def test_a_share_opens_only_its_trace(server: Server, traces: list[Trace]) -> None:
    trace, other = traces[2], traces[3]
    token = share(server, trace.root, trace)

    async def outside(c: Client) -> Any:
        start = other.v1[other.child]["start_time"]
        return await c.public.runs.retrieve(other.child, share_token=token, selects=["NAME"], start_time=start)

    with pytest.raises(NotFoundError):
        sdk(server, outside)
    assert httpx.get(f"{server.url}/api/v2/public/{token}/run/{trace.child}").json() == {"id": trace.child}
    assert httpx.get(f"{server.url}/api/v2/public/{token}/run/{uuid.uuid4()}").status_code == 404
    unknown = uuid.uuid4()
    assert httpx.get(f"{server.url}/api/v2/public/{unknown}/run/{trace.child}").status_code == 404
    missing = httpx.post(f"{server.url}/api/v2/public/{unknown}/runs/query", json={})
    assert missing.status_code == 404 and missing.json()["error"] == "share link not found"


def test_unsharing_a_trace_closes_every_link_into_it(server: Server, traces: list[Trace]) -> None:
    """Also the shares v1 made of its child runs; the shares of other traces stay."""
    trace, other = traces[3], traces[4]
    token = share(server, trace.root, trace)
    by_v1 = {
        run_id: httpx.put(f"{server.url}/runs/{run_id}/share", json={}).json()["share_token"]
        for run_id in (trace.child, trace.grandchild)
    }
    kept = httpx.put(f"{server.url}/runs/{other.child}/share", json={}).json()["share_token"]
    links = [(token, trace.child), *((t, run_id) for run_id, t in by_v1.items())]
    assert all(public_reads(server, t, run_id) == [200] * 4 for t, run_id in links)

    wrong_project = {"session_id": str(uuid.uuid4())}
    assert (
        httpx.request("DELETE", f"{server.url}/api/v2/runs/{trace.root}/share", json=wrong_project).status_code == 204
    )
    assert all(public_reads(server, t, run_id) == [200] * 4 for t, run_id in links)

    async def unshare(c: Client) -> None:
        await c.runs.share.delete(trace.root, session_id=PROJECT_ID)
        await c.runs.share.delete(trace.root, session_id=PROJECT_ID)  # idempotent

    sdk(server, unshare)
    assert [public_reads(server, t, run_id) for t, run_id in links] == [[404] * 4] * len(links)
    assert all(httpx.get(f"{server.url}/runs/{r}/share").json() is None for r in (trace.root, *by_v1))
    assert public_reads(server, kept, other.child) == [200] * 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"selects": ["INPUTS"]}, "selects.0"),  # whole payloads are the owner's
        ({"selects": ["NAME"], "cursor": "x"}, "cursor"),
        ({"selects": "NAME"}, "selects"),
    ],
)
def test_bad_public_query_bodies_are_a_422(
    server: Server, traces: list[Trace], body: dict[str, Any], field: str
) -> None:
    token = share(server, traces[0].root, traces[0])
    response = httpx.post(f"{server.url}/api/v2/public/{token}/runs/query", json=body)
    assert response.status_code == 422 and response.json()["detail"]["field"] == field


@pytest.mark.parametrize(
    ("params", "field"),
    [({"selects": "SHARE_URL"}, "selects.0"), ({"selects": "NAME", "start_time": "soon"}, "start_time")],
)
def test_bad_public_retrieve_parameters_are_a_422(
    server: Server, traces: list[Trace], params: dict[str, str], field: str
) -> None:
    token = share(server, traces[0].root, traces[0])
    response = httpx.get(f"{server.url}/api/v2/public/{token}/run/{traces[0].child}", params=params)
    assert response.status_code == 422 and response.json()["detail"] == {"field": field, "in": "query"}
