"""The real langsmith SDK (0.15.0) reading back what it traced: list_runs, read_run (with child runs and
attachments), list_threads/read_thread, sharing; plus the tree and thread endpoints over the same traces."""

from __future__ import annotations

import contextlib
import uuid

import httpx
import pytest
from langsmith import Client, traceable, tracing_context
from langsmith.run_trees import RunTree
from langsmith.schemas import Attachment

from schemas import DEFAULT_TENANT_ID
from schemas.projects import project_id_for_name
from tests.support import Server, wait_for

PROJECT = f"sdk-query-{uuid.uuid4().hex[:8]}"
PROJECT_ID = project_id_for_name(DEFAULT_TENANT_ID, PROJECT)


@pytest.fixture(scope="module")
def traced(client: Client) -> dict[str, uuid.UUID]:
    """Two conversations (threads) of small traces, one with an attachment and an error in a child."""

    @traceable(run_type="llm", client=client, project_name=PROJECT)
    def model(prompt: str) -> dict[str, object]:
        return {"content": prompt.upper()}

    @traceable(run_type="tool", client=client, project_name=PROJECT)
    def broken(x: int) -> int:
        raise ValueError("tool failed")

    @traceable(run_type="chain", client=client, project_name=PROJECT)
    def turn(question: str, image: Attachment | None = None) -> str:
        model(question)
        with contextlib.suppress(ValueError):
            broken(1)
        return "answer to " + question

    roots: dict[str, uuid.UUID] = {}
    with tracing_context(enabled=True):
        for i, (conversation, question) in enumerate([("c1", "hello"), ("c2", "bonjour"), ("c1", "again")]):
            run_id = uuid.uuid4()
            image = Attachment(mime_type="image/png", data=b"\x89PNG fake bytes") if i == 0 else None
            turn(
                question,
                image,
                langsmith_extra={
                    "run_id": run_id,
                    "metadata": {"conversation_id": conversation},
                    "tags": [f"turn-{i}"],
                },
            )
            roots[question] = run_id
    client.flush()
    for run_id in roots.values():
        wait_for(lambda rid=run_id: client.read_run(rid).status == "success", timeout=30, what=f"run {run_id}")
    return roots


def test_list_runs_with_filters(client: Client, traced: dict[str, uuid.UUID]) -> None:
    roots = list(client.list_runs(project_id=PROJECT_ID, is_root=True))
    assert {r.id for r in roots} == set(traced.values())
    assert [r.start_time for r in roots] == sorted((r.start_time for r in roots), reverse=True)
    llms = list(client.list_runs(project_id=PROJECT_ID, run_type="llm"))
    assert len(llms) == 3 and all(r.parent_run_id in traced.values() for r in llms)
    errors = list(client.list_runs(project_id=PROJECT_ID, error=True))
    assert len(errors) == 3 and all(r.error and "tool failed" in r.error for r in errors)
    c1 = list(
        client.list_runs(
            project_id=PROJECT_ID,
            is_root=True,
            filter='and(eq(metadata_key, "conversation_id"), eq(metadata_value, "c1"))',
        )
    )
    assert {r.id for r in c1} == {traced["hello"], traced["again"]}
    assert (
        next(iter(client.list_runs(project_id=PROJECT_ID, is_root=True, filter='has(tags, "turn-1")'))).id
        == traced["bonjour"]
    )
    found = list(client.list_runs(project_id=PROJECT_ID, filter='search("bonjour")', is_root=True))
    assert [r.id for r in found] == [traced["bonjour"]]
    paged = list(client.list_runs(project_id=PROJECT_ID, limit=7))
    assert len(paged) == 7  # the SDK stops after `limit` items while paging with cursors


def test_read_run_with_child_runs_matches_the_tree_endpoint(
    client: Client, traced: dict[str, uuid.UUID], server: Server
) -> None:
    run = client.read_run(traced["hello"], load_child_runs=True)
    assert run.name == "turn" and run.outputs == {"output": "answer to hello"}
    assert [c.name for c in run.child_runs] == ["model", "broken"]
    assert run.child_runs[0].outputs == {"content": "HELLO"}
    tree = httpx.get(f"{server.url}/traces/{traced['hello']}").json()
    assert tree["run_count"] == 3
    assert [c["id"] for c in tree["root"]["child_runs"]] == [str(c.id) for c in run.child_runs]
    lean = httpx.get(f"{server.url}/traces/{traced['hello']}", params={"include_payloads": "false"}).json()
    assert "inputs" not in lean["root"] and lean["root"]["child_runs"][1]["status"] == "error"
    only_errors = httpx.get(f"{server.url}/traces/{traced['hello']}", params={"filter": 'eq(status, "error")'}).json()
    assert only_errors["run_count"] == 2  # the failing tool plus its ancestor
    assert [c["name"] for c in only_errors["root"]["child_runs"]] == ["broken"]
    whole = httpx.get(f"{server.url}/runs/{traced['hello']}/tree").json()  # the root's subtree is the trace
    assert whole["run_count"] == 3 and whole["root"]["child_runs"] == tree["root"]["child_runs"]
    model = run.child_runs[0].id
    under = httpx.get(f"{server.url}/runs/{model}/tree").json()
    assert (under["run_count"], under["root"]["id"], under["orphans"]) == (1, str(model), [])
    errors_under = httpx.get(f"{server.url}/runs/{model}/tree", params={"filter": 'eq(status, "error")'}).json()
    assert (errors_under["run_count"], errors_under["root"]) == (0, None)  # the failing tool is not under it
    full = httpx.get(f"{server.url}/runs/{traced['hello']}").json()
    assert full["direct_child_run_ids"] == [str(c.id) for c in run.child_runs]
    assert full["app_path"].startswith(f"/o/{DEFAULT_TENANT_ID}/projects/p/{PROJECT_ID}/r/{traced['hello']}")


def test_attachment_is_downloadable_without_auth_via_a_signed_url(
    client: Client, traced: dict[str, uuid.UUID], server: Server
) -> None:
    run = client.read_run(traced["hello"])
    assert run.attachments["image"]["reader"].read() == b"\x89PNG fake bytes"
    url = run.attachments["image"]["presigned_url"]
    assert httpx.get(server.url + url).status_code == 200
    assert httpx.get(server.url + url.replace("sig=", "sig=0")).status_code == 403


def test_threads(client: Client, traced: dict[str, uuid.UUID], server: Server) -> None:
    threads = client.list_threads(project_id=PROJECT_ID)
    assert {t["thread_id"]: t["count"] for t in threads} == {"c1": 2, "c2": 1}
    turns = list(client.read_thread(thread_id="c1", project_id=PROJECT_ID))
    assert [r.id for r in turns] == [traced["hello"], traced["again"]]
    listed = httpx.post(f"{server.url}/threads/query", json={"session": [str(PROJECT_ID)]}).json()["threads"]
    assert [t["thread_id"] for t in listed] == ["c1", "c2"]  # most recent activity first
    c1 = listed[0]
    assert c1["trace_count"] == 2 and c1["first_inputs"]["question"] == "hello"
    assert c1["last_outputs"] == {"output": "answer to again"}
    traces = httpx.get(f"{server.url}/threads/c1/traces", params={"session_id": str(PROJECT_ID)}).json()["runs"]
    assert [r["id"] for r in traces] == [str(traced["hello"]), str(traced["again"])]


def test_sharing(client: Client, traced: dict[str, uuid.UUID], server: Server) -> None:
    run_id = traced["bonjour"]
    assert not client.run_is_shared(run_id)
    url = client.share_run(run_id)
    token = url.rstrip("/").split("/")[-2]
    assert client.read_run_shared_link(run_id) == url
    public = httpx.get(f"{server.url}/public/{token}/run")
    assert public.status_code == 200 and public.json()["id"] == str(run_id)
    child = next(iter(client.list_runs(project_id=PROJECT_ID, trace_id=run_id, is_root=False)))
    assert httpx.get(f"{server.url}/public/{token}/run/{child.id}").status_code == 200
    assert httpx.get(f"{server.url}/public/{token}/run/{traced['hello']}").status_code == 404  # other trace
    client.unshare_run(run_id)
    assert httpx.get(f"{server.url}/public/{token}/run").status_code == 404
    assert not client.run_is_shared(run_id)


def test_manual_run_tree_reads_back(client: Client) -> None:
    tree = RunTree(name="manual", run_type="chain", inputs={"q": "x"}, project_name=PROJECT, ls_client=client)
    tree.post()
    tree.end(outputs={"a": 1})
    tree.patch()
    client.flush()
    wait_for(lambda: client.read_run(tree.id).status == "success", timeout=30, what="manual run")
    assert client.read_run(tree.id).outputs == {"a": 1}
