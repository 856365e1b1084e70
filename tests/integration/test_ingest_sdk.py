"""The real langsmith SDK traces into a real server process; every stored field is read back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langsmith import Client, traceable
from langsmith.run_helpers import get_current_run_tree
from langsmith.run_trees import RunTree
from langsmith.schemas import Attachment, LangSmithInfo
from langsmith.utils import LangSmithNotFoundError

from tests.support import Server, wait_for


def read(client: Client, run_id: Any, *, status: str = "success", timeout: float = 15) -> Any:
    """Poll until the run is stored with the expected status (ingest is asynchronous after the ack)."""

    def check() -> Any:
        try:
            run = client.read_run(run_id)
        except LangSmithNotFoundError:
            return None
        return run if run.status == status else None

    return wait_for(check, timeout=timeout, what=f"run {run_id} with status {status}")


def project_id(client: Client, name: str) -> uuid.UUID:
    return wait_for(lambda: client.read_project(project_name=name).id, what=f"project {name}")


def test_traceable_nested_generator_error_and_tokens(client: Client) -> None:
    project = f"sdk-{uuid.uuid4().hex[:8]}"
    ids: dict[str, uuid.UUID] = {}

    @traceable(run_type="llm", metadata={"ls_model_name": "m"})
    def llm(prompt: str) -> dict[str, str]:
        run = get_current_run_tree()
        ids["llm"] = run.id
        run.metadata["usage_metadata"] = {
            "input_tokens": 5,
            "output_tokens": 7,
            "total_tokens": 12,
            "input_cost": 0.001,
            "output_cost": 0.002,
            "total_cost": 0.003,
            "input_token_details": {"cache_read": 2},
            "output_token_details": {"reasoning": 3},
        }
        return {"text": prompt.upper()}

    @traceable(run_type="tool")
    def tool(x: str) -> Iterator[str]:
        ids["tool"] = get_current_run_tree().id
        yield llm(x)["text"]
        yield "done"

    @traceable(run_type="chain", tags=["t1"], metadata={"session_id": "thread-1", "customer": {"tier": 2}})
    def agent(question: str) -> list[str]:
        ids["agent"] = get_current_run_tree().id
        return list(tool(question))

    @traceable
    def broken() -> None:
        ids["broken"] = get_current_run_tree().id
        raise ValueError("boom")

    with pytest.MonkeyPatch.context() as env:
        env.setenv("LANGSMITH_TRACING", "true")
        assert agent("hello", langsmith_extra={"client": client, "project_name": project}) == ["HELLO", "done"]
        with pytest.raises(ValueError):
            broken(langsmith_extra={"client": client, "project_name": project})
        client.flush()

    root = read(client, ids["agent"])
    tool_run = read(client, ids["tool"])
    llm_run = read(client, ids["llm"])
    assert root.name == "agent" and root.run_type == "chain" and root.parent_run_id is None
    assert root.inputs == {"question": "hello"} and root.outputs == {"output": ["HELLO", "done"]}
    assert root.tags == ["t1"] and root.trace_id == root.id
    assert root.extra["metadata"]["customer"] == {"tier": 2}
    assert root.extra["runtime"]["sdk"] == "langsmith-py"
    assert root.session_id == project_id(client, project)
    assert tool_run.parent_run_id == root.id and llm_run.parent_run_id == tool_run.id
    assert llm_run.trace_id == root.id
    assert llm_run.dotted_order.startswith(tool_run.dotted_order + ".") and tool_run.dotted_order.startswith(
        root.dotted_order + "."
    )
    assert [str(i) for i in llm_run.parent_run_ids] == [str(root.id), str(tool_run.id)]
    assert (llm_run.prompt_tokens, llm_run.completion_tokens, llm_run.total_tokens) == (5, 7, 12)
    assert float(llm_run.total_cost) == pytest.approx(0.003) and float(llm_run.prompt_cost) == pytest.approx(0.001)
    assert llm_run.prompt_token_details == {"cache_read": 2}
    assert llm_run.completion_token_details == {"reasoning": 3}
    assert llm_run.outputs == {"text": "HELLO"}
    assert root.thread_id == "thread-1" if hasattr(root, "thread_id") else True

    failed = read(client, ids["broken"], status="error")
    assert "ValueError" in failed.error and "boom" in failed.error
    assert failed.end_time is not None


def test_runtree_post_patch_with_end_metadata(client: Client) -> None:
    project = f"rt-{uuid.uuid4().hex[:8]}"
    run = RunTree(name="manual", run_type="chain", inputs={"a": 1}, client=client, project_name=project)
    run.post()
    child = run.create_child(name="child", run_type="retriever", inputs={"q": "x"})
    child.post()
    pending = read(client, run.id, status="pending")
    assert pending.end_time is None and pending.outputs in (None, {})
    child.end(outputs={"documents": []})
    child.patch()
    run.end(outputs={"b": 2}, metadata={"finished": True})
    run.patch()
    client.flush()
    stored = read(client, run.id)
    assert stored.outputs == {"b": 2} and stored.inputs == {"a": 1}
    assert stored.extra["metadata"]["finished"] is True
    assert read(client, child.id).parent_run_id == run.id


def test_attachments_and_large_payloads_round_trip(client: Client) -> None:
    project = f"att-{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4()
    big = {"text": "x" * 100_000}
    now = datetime.now(UTC)
    client.multipart_ingest(
        create=[
            {
                "id": run_id,
                "trace_id": run_id,
                "dotted_order": f"{now:%Y%m%dT%H%M%S%fZ}{run_id}",
                "name": "att",
                "run_type": "chain",
                "start_time": now,
                "end_time": now + timedelta(seconds=1),
                "inputs": big,
                "outputs": {"ok": True},
                "session_name": project,
                "attachments": {
                    "notes": ("text/plain", b"hello attachment"),
                    "img": Attachment("image/png", b"\x89PNG"),
                },
            }
        ],
        update=[],
    )
    run = read(client, run_id)
    assert run.inputs == big, "payloads above the offload threshold come back from the blob store"
    assert set(run.attachments) == {"notes", "img"}
    assert run.attachments["notes"]["reader"].read() == b"hello attachment"
    assert run.attachments["img"]["mime_type"] == "image/png"


def test_multipart_patch_before_post(client: Client) -> None:
    project = f"pbp-{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4()
    now = datetime.now(UTC)
    dotted = f"{now:%Y%m%dT%H%M%S%fZ}{run_id}"
    client.multipart_ingest(
        create=[],
        update=[
            {
                "id": run_id,
                "trace_id": run_id,
                "dotted_order": dotted,
                "end_time": now + timedelta(seconds=2),
                "outputs": {"answer": 42},
                "session_name": project,
            }
        ],
    )
    with pytest.raises(AssertionError):  # a patch alone is not a run yet: readers never see half a run
        read(client, run_id, timeout=1.5)
    client.multipart_ingest(
        create=[
            {
                "id": run_id,
                "trace_id": run_id,
                "dotted_order": dotted,
                "name": "late-post",
                "run_type": "llm",
                "start_time": now,
                "inputs": {"q": 1},
                "session_name": project,
            }
        ],
        update=[],
    )
    run = read(client, run_id)
    assert (run.name, run.inputs, run.outputs) == ("late-post", {"q": 1}, {"answer": 42})


def test_batch_ingest_and_uncompressed_multipart(server: Server) -> None:
    plain = Client(api_url=server.url, api_key="unused", info=LangSmithInfo(version="0.10.100"))
    project = f"batch-{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4()
    now = datetime.now(UTC)
    plain.batch_ingest_runs(
        create=[
            {
                "id": run_id,
                "trace_id": run_id,
                "dotted_order": f"{now:%Y%m%dT%H%M%S%fZ}{run_id}",
                "name": "b",
                "run_type": "tool",
                "start_time": now,
                "inputs": {"i": 1},
                "session_name": project,
            }
        ],
        update=[
            {
                "id": run_id,
                "trace_id": run_id,
                "dotted_order": f"{now:%Y%m%dT%H%M%S%fZ}{run_id}",
                "end_time": now,
                "outputs": {"o": 2},
            }
        ],
    )
    assert read(plain, run_id).outputs == {"o": 2}

    @traceable
    def uncompressed(x: int) -> int:
        return x + 1

    with pytest.MonkeyPatch.context() as env:
        env.setenv("LANGSMITH_TRACING", "true")
        with_id = uncompressed(1, langsmith_extra={"client": plain, "project_name": project, "run_id": uuid.uuid4()})
        assert with_id == 2
        plain.flush()
    runs = wait_for(lambda: list(plain.list_runs(project_name=project, run_type="chain")), what="uncompressed run")
    assert runs[0].outputs == {"output": 2}


def test_no_auto_batch_uses_post_and_patch(server: Server) -> None:
    sync = Client(api_url=server.url, api_key="unused", auto_batch_tracing=False)
    project = f"sync-{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4()
    sync.create_run("sync-run", {"x": 1}, "llm", id=run_id, project_name=project)
    sync.update_run(run_id, outputs={"y": 2}, end_time=datetime.now(UTC))
    run = read(sync, run_id)
    assert (run.inputs, run.outputs, run.run_type) == ({"x": 1}, {"y": 2}, "llm")
    assert run.trace_id == run_id and run.dotted_order.endswith(str(run_id)), "derived by the server"


def test_every_code_point_round_trips(client: Client) -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    run_id = uuid.uuid4()
    client.create_run("unicode", {"text": text, "nul": "a\u0000b"}, "chain", id=run_id, end_time=datetime.now(UTC))
    run = read(client, run_id, timeout=30)
    assert run.inputs["nul"] == "a\u0000b"
    assert run.inputs["text"] == text


def test_bad_part_rejects_whole_request_and_names_it(server: Server) -> None:
    good, bad = uuid.uuid4(), uuid.uuid4()
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="post.{good}"\r\n\r\n'
        f'{{"name":"ok","run_type":"chain"}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="post.{bad}"\r\n\r\n'
        f'{{"name":"bad","run_type":"banana"}}\r\n--{boundary}--\r\n'
    )
    response = httpx.post(
        f"{server.url}/runs/multipart",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == {"part": f"post.{bad}", "field": "run_type"}
    # The good run of the rejected request is never stored: a later valid request is, so poll that one.
    marker = uuid.uuid4()
    ok = httpx.post(f"{server.url}/runs", json={"id": str(marker), "name": "m", "run_type": "chain"})
    assert ok.status_code == 202
    wait_for(lambda: httpx.get(f"{server.url}/runs/{marker}").status_code == 200, what="marker run")
    assert httpx.get(f"{server.url}/runs/{good}").status_code == 404
    too_big = httpx.post(f"{server.url}/runs", content=b"{" + b" " * 10, headers={"Content-Type": "application/json"})
    assert too_big.status_code == 422 and "invalid JSON" in too_big.json()["error"]
