"""`client.threads.share` of the real langsmith SDK (0.15.0): the owner shares a thread of a project, reads the
token back and deletes it, against a server holding threads the SDK traced."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langsmith import Client, NotFoundError, traceable, tracing_context
from langsmith.types.threads import share_delete_params, share_retrieve_params

from schemas import DEFAULT_TENANT_ID
from schemas.projects import project_id_for_name
from tests.support import Server, sdk, wait_for

# The wait for the runs reads them with v1's list_runs.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed")
SUFFIX = uuid.uuid4().hex[:8]
PROJECTS = [f"sdk-v2-thread-shares-{SUFFIX}-{k}" for k in range(3)]
PROJECT_IDS = [str(project_id_for_name(DEFAULT_TENANT_ID, name)) for name in PROJECTS]
THREADS = [f"shared-{SUFFIX}-{k}" for k in range(2)]


@pytest.fixture(scope="module")
def traced(client: Client) -> None:
    """Both threads in every project, one turn each."""

    @traceable(run_type="chain", client=client)
    def turn(question: str) -> str:
        return question.upper()

    with tracing_context(enabled=True):
        for project in PROJECTS:
            for thread in THREADS:
                with tracing_context(metadata={"thread_id": thread}, project_name=project):
                    turn(f"hello from {thread}")
    client.flush()
    wait_for(
        lambda: all(len(list(client.list_runs(project_name=p, is_root=True))) == len(THREADS) for p in PROJECTS),
        timeout=60,
        what="every turn stored",
    )


def create(server: Server, thread: str, project_id: str) -> str | None:
    return sdk(server, lambda c: c.threads.share.create(thread, project_id=project_id)).share_token


def retrieve(server: Server, thread: str, project_id: str) -> str | None:
    return sdk(server, lambda c: c.threads.share.retrieve(thread, project_id=project_id)).share_token


def delete(server: Server, thread: str, project_id: str) -> None:
    sdk(server, lambda c: c.threads.share.delete(thread, project_id=project_id))


def test_a_share_is_created_once_read_back_and_deleted(server: Server, traced: None) -> None:
    thread, project = THREADS[0], PROJECT_IDS[0]
    assert retrieve(server, thread, project) is None
    token = create(server, thread, project)
    assert token and uuid.UUID(token)
    assert create(server, thread, project) == token  # idempotent
    assert retrieve(server, thread, project) == token
    delete(server, thread, project)
    assert retrieve(server, thread, project) is None
    delete(server, thread, project)  # idempotent: no share, still a 204
    again = create(server, thread, project)
    assert again and again != token  # a deleted token is never handed out again


def test_a_share_is_of_one_thread_of_one_project(server: Server, traced: None) -> None:
    thread, other_thread = THREADS
    first, second = PROJECT_IDS[1], PROJECT_IDS[2]
    tokens = {create(server, thread, first), create(server, thread, second), create(server, other_thread, first)}
    assert len(tokens) == 3 and None not in tokens
    delete(server, thread, first)
    assert retrieve(server, thread, first) is None
    assert retrieve(server, thread, second) in tokens and retrieve(server, other_thread, first) in tokens


def test_a_thread_without_a_trace_in_the_project_cannot_be_shared(server: Server, traced: None) -> None:
    with pytest.raises(NotFoundError):
        create(server, f"no-such-thread-{SUFFIX}", PROJECT_IDS[0])
    response = httpx.post(f"{server.url}/api/v2/threads/{THREADS[0]}/share", json={"project_id": str(uuid.uuid4())})
    assert response.status_code == 404 and response.json()["detail"]["thread_id"] == THREADS[0]


def test_deleting_a_project_deletes_its_thread_shares(server: Server, client: Client, traced: None) -> None:
    project = PROJECT_IDS[2]
    token = create(server, THREADS[1], project)
    assert token and retrieve(server, THREADS[1], project) == token
    client.delete_project(project_id=project)
    assert retrieve(server, THREADS[1], project) is None


@pytest.mark.parametrize(
    ("method", "body", "params", "field"),
    [
        ("POST", {}, {}, "project_id"),
        ("POST", {"project_id": "not-a-uuid"}, {}, "project_id"),
        ("POST", {"project_id": PROJECT_IDS[0], "session_id": PROJECT_IDS[0]}, {}, "session_id"),
        ("GET", None, {}, "project_id"),
        ("DELETE", None, {"project_id": "not-a-uuid"}, "project_id"),
    ],
)
def test_bad_share_requests_are_a_422_naming_the_field(
    server: Server, method: str, body: dict[str, Any] | None, params: dict[str, str], field: str
) -> None:
    response = httpx.request(method, f"{server.url}/api/v2/threads/{THREADS[0]}/share", json=body, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == field


def test_the_routes_take_the_sdks_query_parameters(server: Server) -> None:
    route = httpx.get(f"{server.url}/openapi.json").json()["paths"]["/api/v2/threads/{thread_id}/share"]
    for method, params in (
        ("get", share_retrieve_params.ShareRetrieveParams),
        ("delete", share_delete_params.ShareDeleteParams),
    ):
        declared = {p["name"] for p in route[method]["parameters"] if p["in"] == "query"}
        assert declared == set(params.__annotations__), method
