"""Projects, feedback, presigned tokens, stats, deletes and retention through the real langsmith SDK."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from langsmith import Client
from langsmith.schemas import FeedbackSourceType
from langsmith.utils import LangSmithConflictError, LangSmithNotFoundError

from schemas import DEFAULT_TENANT_ID, jsonutil
from schemas.jsonutil import MAX_NESTING
from storage import Storage
from tests.support import Server, wait_for


def ingest_trace(
    server: Server,
    project: str,
    *,
    llm_tokens: int = 10,
    error: bool = False,
    root: str | None = None,
    user: str = "u1",
    big_inputs: bool = False,
) -> tuple[str, str]:
    """A root chain with one llm child, written through POST /runs/batch; returns (root id, child id).
    `big_inputs` makes the root's inputs large enough to be offloaded to the blob store."""
    root, child = root or str(uuid.uuid4()), str(uuid.uuid4())
    start = datetime.now(UTC)
    end = (start + timedelta(seconds=2)).isoformat()
    usage = {"input_tokens": llm_tokens, "output_tokens": 1, "total_tokens": llm_tokens + 1, "total_cost": 0.5}
    runs = [
        {
            "id": root,
            "name": "root",
            "run_type": "chain",
            "start_time": start.isoformat(),
            "end_time": end,
            "inputs": {"q": "x" * 30_000 if big_inputs else 1},
            "outputs": {"a": 1},
            "session_name": project,
            "extra": {"metadata": {"user": user}},
            **({"error": "boom"} if error else {}),
        },
        {
            "id": child,
            "parent_run_id": root,
            "name": "llm",
            "run_type": "llm",
            "start_time": start.isoformat(),
            "end_time": end,
            "inputs": {},
            "outputs": {},
            "session_name": project,
            "extra": {"metadata": {"usage_metadata": usage}},
        },
    ]
    assert httpx.post(f"{server.url}/runs/batch", json={"post": runs}).status_code == 202
    return root, child


def stored(server: Server, run_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (
            httpx.get(f"{server.url}/runs/{run_id}").json()
            if httpx.get(f"{server.url}/runs/{run_id}").status_code == 200
            else None
        ),
        what=f"run {run_id}",
    )


def test_project_lifecycle(client: Client) -> None:
    name = f"proj-{uuid.uuid4().hex[:8]}"
    created = client.create_project(name, description="first", metadata={"team": "a"})
    assert client.read_project(project_name=name).id == created.id
    read = client.read_project(project_id=created.id)
    assert read.description == "first" and read.metadata == {"team": "a"}
    assert read.tenant_id is not None and read.reference_dataset_id is None
    with pytest.raises(LangSmithConflictError):
        client.create_project(name)
    assert client.create_project(name, upsert=True).id == created.id
    assert [p.id for p in client.list_projects(name_contains=name[5:])] == [created.id]
    assert [p.id for p in client.list_projects(project_ids=[created.id])] == [created.id]
    assert [p.id for p in client.list_projects(metadata={"team": "a"}) if p.id == created.id] == [created.id]
    client.update_project(created.id, description="second")
    updated = client.read_project(project_id=created.id)
    assert (updated.name, updated.description) == (name, "second"), "nulls in PATCH leave fields unchanged"
    assert client.has_project(name)
    client.delete_project(project_id=created.id)
    assert not client.has_project(name)
    with pytest.raises(LangSmithNotFoundError):
        client.read_project(project_id=created.id)


def test_project_stats_and_run_stats(server: Server, client: Client) -> None:
    name = f"stats-{uuid.uuid4().hex[:8]}"
    roots = [ingest_trace(server, name, llm_tokens=10 * (i + 1), error=(i == 0))[0] for i in range(3)]
    for root in roots:
        stored(server, root)
    client.create_feedback(roots[1], "quality", score=0.5)
    client.create_feedback(roots[2], "quality", score=1.0, comment="great")
    client.create_feedback(roots[2], "label", value="good")
    project = wait_for(
        lambda: (p := client.read_project(project_name=name, include_stats=True)).feedback_stats and p,
        what="project stats with feedback",
    )
    assert project.run_count == 6
    assert project.total_tokens == (11 + 21 + 31)
    assert float(project.total_cost) == pytest.approx(1.5)
    assert project.error_rate == pytest.approx(1 / 3)
    assert project.latency_p50.total_seconds() == pytest.approx(2.0, abs=0.01)
    quality = project.feedback_stats["quality"]
    assert quality["n"] == 2 and quality["avg"] == pytest.approx(0.75) and quality["comment_count"] == 1
    assert project.feedback_stats["label"]["values"] == {"good": 1}
    facets = {(f["key"], f["value"]): f["count"] for f in project.run_facets}
    assert facets[("run_type", "llm")] == 3
    stats = client.get_run_stats(project_ids=[project.id], run_type="llm")
    assert stats["run_count"] == 3 and stats["total_tokens"] == 63
    filtered = client.get_run_stats(project_ids=[project.id], filter='eq(name, "root")', error=False)
    assert filtered["run_count"] == 2
    assert filtered["feedback_stats"]["quality"]["n"] == 2
    by_tokens = client.get_run_stats(project_ids=[project.id], filter="gt(total_tokens, 15)")  # named as a total
    assert (by_tokens["run_count"], by_tokens["total_tokens"]) == (2, 52)


def test_feedback_crud_sync_and_batched(server: Server, client: Client) -> None:
    project = f"fb-{uuid.uuid4().hex[:8]}"
    root, _child = ingest_trace(server, project)
    stored(server, root)
    unknown_run = uuid.uuid4()
    early = client.create_feedback(unknown_run, "early", score=1)  # the run does not exist (yet): accepted
    sync = client.create_feedback(
        root,
        "correctness",
        score=0.7,
        comment="ok",
        value="fine",
        feedback_source_type=FeedbackSourceType.API,
        source_info={"a": 1},
    )
    batched = client.create_feedback(root, "batched", score=1, trace_id=root)  # queued as a multipart part
    client.flush()
    found = wait_for(
        lambda: len(got := list(client.list_feedback(run_ids=[root]))) == 2 and got,
        what="both feedbacks of the run",
    )
    assert {f.key for f in found} == {"correctness", "batched"}
    assert {f.id for f in found} == {sync.id, batched.id}
    assert [f.id for f in client.list_feedback(run_ids=[unknown_run])] == [early.id]
    api = list(client.list_feedback(run_ids=[root], feedback_source_type=[FeedbackSourceType.API]))
    assert len(api) == 2
    assert [f.key for f in client.list_feedback(run_ids=[root], feedback_key=["batched"])] == ["batched"]
    read = client.read_feedback(sync.id)
    assert (read.score, read.value, read.comment) == (0.7, "fine", "ok")
    assert read.feedback_source.metadata == {"a": 1}
    client.update_feedback(sync.id, score=0.9, comment=None)
    updated = client.read_feedback(sync.id)
    assert (updated.score, updated.comment, updated.value) == (0.9, None, "fine"), "null clears in PATCH /feedback"
    client.delete_feedback(sync.id)
    with pytest.raises(LangSmithNotFoundError):
        client.read_feedback(sync.id)
    run = stored(server, root)
    assert run["feedback_stats"]["batched"]["n"] == 1
    has_comment = httpx.get(f"{server.url}/feedback", params={"run": root, "has_comment": "True"}).json()
    assert has_comment == []


def test_presigned_tokens(server: Server, client: Client) -> None:
    root, _ = ingest_trace(server, f"tok-{uuid.uuid4().hex[:8]}")
    token = client.create_presigned_feedback_token(root, "thumbs", expiration=timedelta(hours=1))
    assert str(token.url).endswith(str(token.id))
    client.create_feedback_from_token(token.url, score=1, comment="nice")
    expired = client.create_presigned_feedback_token(root, "late", expiration=datetime.now(UTC) - timedelta(seconds=1))
    assert httpx.post(f"{server.url}/feedback/tokens/{expired.id}", json={"score": 1}).status_code == 404
    assert httpx.get(f"{server.url}/feedback/tokens/{token.id}", params={"score": 0}).status_code == 200
    thumbs = list(client.list_feedback(run_ids=[root], feedback_key=["thumbs"]))
    assert sorted(f.score for f in thumbs) == [0, 1]
    assert {f.feedback_source.type for f in thumbs} == {"app"}
    several = client.create_presigned_feedback_tokens(root, ["a", "b"])
    assert len(several) == 2
    listed = httpx.get(f"{server.url}/feedback/tokens", params={"run_id": root}).json()
    assert {t["feedback_key"] for t in listed} >= {"thumbs", "a", "b"}


def test_feedback_stats_over_time_buckets(server: Server, client: Client) -> None:
    project = f"buckets-{uuid.uuid4().hex[:8]}"
    root, _ = ingest_trace(server, project)
    stored(server, root)
    for score in (0, 1, 1):
        client.create_feedback(root, "q", score=score)
    project_id = client.read_project(project_name=project).id
    response = httpx.post(f"{server.url}/feedback/stats", json={"session": [str(project_id)], "bucket": "1h"})
    buckets = response.json()
    assert len(buckets) == 1 and buckets[0]["feedback_stats"]["q"]["n"] == 3
    assert buckets[0]["feedback_stats"]["q"]["avg"] == pytest.approx(2 / 3)
    bad = httpx.post(f"{server.url}/feedback/stats", json={"bucket": "fortnight"})
    assert bad.status_code == 422


def test_deletes_are_visible_at_once(server: Server, client: Client) -> None:
    project, other_project = f"del-{uuid.uuid4().hex[:8]}", f"del-{uuid.uuid4().hex[:8]}"
    gone, gone_child = ingest_trace(server, project, big_inputs=True)
    kept, _ = ingest_trace(server, project)
    elsewhere, _ = ingest_trace(server, other_project)
    for run in (gone, kept, elsewhere):
        stored(server, run)
    for run in (gone, gone_child, elsewhere):
        client.create_feedback(run, "k", score=1)
    project_id = client.read_project(project_name=project).id
    blobs = server.data_dir / "blobs" / str(DEFAULT_TENANT_ID) / str(project_id) / gone
    assert any(p.is_file() for p in blobs.rglob("*")), "the large inputs were offloaded"
    response = httpx.post(
        f"{server.url}/runs/delete", json={"trace_ids": [gone, elsewhere], "session_id": str(project_id)}
    )
    assert response.json() == {"deleted_runs": 2}, "the trace of another project is not this project's to delete"
    for run in (gone, gone_child):
        assert httpx.get(f"{server.url}/runs/{run}").status_code == 404
    assert list(client.list_feedback(run_ids=[gone, gone_child])) == []
    assert not blobs.exists()
    assert httpx.get(f"{server.url}/runs/{kept}").status_code == 200
    assert httpx.get(f"{server.url}/runs/{elsewhere}").status_code == 200
    assert len(list(client.list_feedback(run_ids=[elsewhere]))) == 1
    stats = client.read_project(project_name=project, include_stats=True)
    assert stats.run_count == 2 and not stats.feedback_stats, "stats forget deleted runs and feedback at once"
    too_many = httpx.post(
        f"{server.url}/runs/delete", json={"trace_ids": [str(uuid.uuid4())] * 1001, "session_id": str(project_id)}
    )
    assert too_many.status_code == 422
    assert httpx.post(f"{server.url}/runs/delete", json={"trace_ids": [kept]}).status_code == 422


def test_delete_by_metadata_takes_whole_traces(server: Server) -> None:
    project = f"meta-{uuid.uuid4().hex[:8]}"
    tagged, tagged_child = ingest_trace(server, project, user="u-del")
    untouched, _ = ingest_trace(server, project, user="u-keep")
    for run in (tagged, untouched):
        stored(server, run)
    response = httpx.post(f"{server.url}/runs/delete", json={"metadata": {"user": "u-del", "nothing": 42}})
    assert response.json() == {"deleted_runs": 2}, "the child has no metadata but is part of the trace"
    for run in (tagged, tagged_child):
        assert httpx.get(f"{server.url}/runs/{run}").status_code == 404
    assert httpx.get(f"{server.url}/runs/{untouched}").status_code == 200
    assert httpx.post(f"{server.url}/runs/delete", json={"metadata": {}}).status_code == 422


def test_delete_project_cascades(server: Server, client: Client) -> None:
    project = f"cascade-{uuid.uuid4().hex[:8]}"
    root, child = ingest_trace(server, project, big_inputs=True)
    stored(server, root)
    client.create_feedback(child, "k", score=1)
    project_id = client.read_project(project_name=project).id
    blobs = server.data_dir / "blobs" / str(DEFAULT_TENANT_ID) / str(project_id)
    assert blobs.exists()
    client.delete_project(project_id=project_id)
    assert httpx.get(f"{server.url}/runs/{root}").status_code == 404
    assert httpx.post(f"{server.url}/runs/query", json={"session": [str(project_id)]}).json()["runs"] == []
    assert list(client.list_feedback(run_ids=[child])) == []
    assert not blobs.exists()
    assert not client.has_project(project)


def test_retention_upgrade_on_feedback(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"TRACEHOUSE_SHORT_TTL_DAYS": "7", "TRACEHOUSE_LONG_TTL_DAYS": "90"})
    server.start()
    try:
        sdk = Client(api_url=server.url, api_key="unused")
        early = str(uuid.uuid4())
        sdk.create_feedback(early, "keep", score=1)  # before its trace exists
        upgraded, _ = ingest_trace(server, "retention")
        plain, _ = ingest_trace(server, "retention")
        ingest_trace(server, "retention", root=early)
        for run in (upgraded, plain, early):
            stored(server, run)
        sdk.create_feedback(upgraded, "keep", score=1)
    finally:
        server.stop()
    # The upgrade is applied by a background sweeper, and re-queued from the feedback table on start.
    data = tmp_path / "data"
    storage = Storage.open(f"chdb://{data}/clickhouse", f"file://{data}/blobs", short_ttl_days=7, long_ttl_days=90)
    storage.retention.start()

    def ttl() -> dict[str, tuple[int, int]]:
        rows = (
            storage.clickhouse.client()
            .query("SELECT toString(trace_id), min(ttl_days), max(ttl_days) FROM runs FINAL GROUP BY trace_id")
            .result_rows
        )
        return {trace: (low, high) for trace, low, high in rows}

    try:
        wait_for(lambda: ttl()[upgraded] == (90, 90) and ttl()[early] == (90, 90), what="upgraded traces")
        assert ttl()[plain] == (7, 7), "short-lived by default"
    finally:
        storage.close()


TOKEN = {"run_id": str(uuid.uuid4()), "feedback_key": "k"}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/feedback", {"key": "k", "comment": {"a": 1}}, "comment"),
        ("post", "/feedback", {"key": "k", "score": "high"}, "score"),
        ("post", "/feedback", {"key": "k" * 2000}, "key"),
        (
            "post",
            "/feedback",
            {"key": "k", "feedback_source": {"metadata": [1]}},
            "feedback_source.metadata",
        ),
        ("post", "/feedback", {"key": "k", "feedback_source": {"type": "human"}}, "feedback_source.type"),
        ("post", "/feedback", {"key": "k", "created_at": "2020-13-01"}, "created_at"),
        ("post", "/feedback", {"key": "k", "run_id": "not-a-uuid"}, "run_id"),
        ("post", "/sessions", {"name": "x", "description": 123}, "description"),
        ("post", "/sessions", {"name": "x", "metadata": "text"}, "metadata"),
        ("post", "/sessions", {"name": "x", "short_ttl_days": 0}, "short_ttl_days"),
        ("post", "/sessions", {"name": ""}, "name"),
        (
            "post",
            "/feedback/tokens",
            {**TOKEN, "expires_in": {"days": 1e12}},
            "expires_in",
        ),
        ("post", "/feedback/tokens", {**TOKEN, "feedback_config": [1]}, "feedback_config"),
        ("post", "/feedback/tokens", [TOKEN, {**TOKEN, "feedback_config": "x"}], "feedback_config"),
        ("post", "/feedback/tokens", {**TOKEN, "feedback_key": "k" * 2000}, "feedback_key"),
        ("post", "/feedback/stats", {"bucket": "1h", "start_time": "garbage"}, "start_time"),
        ("post", "/runs/delete", {"metadata": {}}, "metadata"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(server: Server, method: str, path: str, body: Any, field: str) -> None:
    response = httpx.request(method, f"{server.url}{path}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == field


def test_bad_updates_are_422_and_change_nothing(server: Server) -> None:
    project = httpx.post(f"{server.url}/sessions", json={"name": f"bad-{uuid.uuid4().hex[:8]}"}).json()
    for body in ({"name": 5}, {"description": ["x"]}, {"extra": "x"}, {"end_time": "bad"}):
        assert httpx.patch(f"{server.url}/sessions/{project['id']}", json=body).status_code == 422, body
    assert httpx.get(f"{server.url}/sessions/{project['id']}").json() == project
    feedback = httpx.post(f"{server.url}/feedback", json={"run_id": str(uuid.uuid4()), "key": "k", "score": 1}).json()
    for body in ({"comment": {"a": 1}}, {"score": "x"}, {"feedback_config": [1]}):
        assert httpx.patch(f"{server.url}/feedback/{feedback['id']}", json=body).status_code == 422, body
    assert httpx.get(f"{server.url}/feedback/{feedback['id']}").json() == feedback


def test_a_bad_multipart_feedback_part_rejects_its_request(server: Server) -> None:
    run_id, feedback_id = str(uuid.uuid4()), str(uuid.uuid4())
    post = {
        "id": run_id,
        "trace_id": run_id,
        "name": "r",
        "run_type": "chain",
        "start_time": datetime.now(UTC).isoformat(),
    }
    bad = {"id": feedback_id, "run_id": run_id, "trace_id": run_id, "key": "k", "comment": ["not", "text"]}
    files = [
        (f"post.{run_id}", (None, jsonutil.dumps(post), "application/json")),
        (f"feedback.{feedback_id}", (None, jsonutil.dumps(bad), "application/json")),
    ]
    response = httpx.post(f"{server.url}/runs/multipart", files=files)
    assert response.status_code == 422, response.text
    assert "comment" in response.text
    good = {**bad, "comment": "text"}
    files[1] = (f"feedback.{feedback_id}", (None, jsonutil.dumps(good), "application/json"))
    assert httpx.post(f"{server.url}/runs/multipart", files=files).status_code == 202
    stored_feedback = wait_for(lambda: httpx.get(f"{server.url}/feedback/{feedback_id}").json().get("comment"))
    assert stored_feedback == "text"


def nested(levels: int) -> str:
    """JSON text of `levels` nested arrays."""
    return "[" * levels + "]" * levels


DEEP_FEEDBACK = [  # (field named in the error, JSON text of the members that nest too deep)
    ("value", f'"value": {nested(1000)}'),
    ("correction", f'"correction": {nested(MAX_NESTING + 1)}'),
    ("extra", f'"extra": {{"a": {nested(1000)}}}'),
    ("feedback_config", f'"feedback_config": {{"a": {nested(1000)}}}'),
    ("feedback_source", f'"feedback_source": {{"metadata": {{"a": {nested(1000)}}}}}'),
    ("created_at", f'"created_at": {nested(1000)}'),  # str() of it, for the error message, overflowed the stack
]


def feedback_text(feedback_id: str, run_id: str, members: str) -> bytes:
    return f'{{"id": "{feedback_id}", "run_id": "{run_id}", "key": "deep", {members}}}'.encode()


@pytest.mark.parametrize(("field", "members"), DEEP_FEEDBACK)
def test_feedback_nested_too_deep_is_a_422_naming_the_field(server: Server, field: str, members: str) -> None:
    """Such feedback used to be stored and then fail every read of its run's feedback (or, 1,000 levels deep,
    to get FastAPI's bare 400; in a multipart part, to be acknowledged and then refused by storage)."""
    run_id, feedback_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = feedback_text(feedback_id, run_id, members)
    direct = httpx.post(f"{server.url}/feedback", content=body, headers={"content-type": "application/json"})
    assert direct.status_code == 422, direct.text
    assert direct.json() == {
        "error": f"{field} is nested deeper than {MAX_NESTING} levels",
        "status": 422,
        "detail": {"field": field},
    }
    part = f"feedback.{feedback_id}"
    multipart = httpx.post(f"{server.url}/runs/multipart", files=[(part, (None, body, "application/json"))])
    assert multipart.status_code == 422, multipart.text
    assert multipart.json()["detail"] == {"part": part, "field": field}
    assert f"{field} is nested deeper than {MAX_NESTING} levels" in multipart.json()["error"]

    # Nothing was stored: feedback of the same run sent after it is, and is the run's only feedback.
    good = str(uuid.uuid4())
    files = [
        (f"feedback.{good}", (None, jsonutil.dumps({"id": good, "run_id": run_id, "key": "k"}), "application/json"))
    ]
    assert httpx.post(f"{server.url}/runs/multipart", files=files).status_code == 202
    listed = wait_for(lambda: httpx.get(f"{server.url}/feedback", params={"run": run_id}).json(), what="good")
    assert [f["id"] for f in listed] == [good]
    assert httpx.get(f"{server.url}/feedback/{feedback_id}").status_code == 404


def test_feedback_updates_nested_too_deep_are_422_and_change_nothing(server: Server) -> None:
    run_id = str(uuid.uuid4())
    feedback = httpx.post(f"{server.url}/feedback", json={"run_id": run_id, "key": "k", "value": 1}).json()
    for field in ("value", "correction", "extra"):
        body = f'{{"{field}": {nested(1000)}}}'.encode()
        response = httpx.patch(
            f"{server.url}/feedback/{feedback['id']}", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422 and response.json()["detail"] == {"field": field}, response.text
    assert httpx.get(f"{server.url}/feedback/{feedback['id']}").json() == feedback
    token = httpx.post(f"{server.url}/feedback/tokens", json={"run_id": run_id, "feedback_key": "t"}).json()
    with_token = httpx.post(
        f"{server.url}/feedback/tokens/{token['id']}",
        content=f'{{"value": {nested(1000)}}}'.encode(),
        headers={"content-type": "application/json"},
    )
    assert with_token.status_code == 422 and with_token.json()["detail"] == {"field": "value"}, with_token.text
    assert [f["id"] for f in httpx.get(f"{server.url}/feedback", params={"run": run_id}).json()] == [feedback["id"]]


def test_feedback_nested_up_to_the_limit_is_stored_and_read_back(server: Server) -> None:
    run_id = str(uuid.uuid4())
    value = jsonutil.loads(nested(MAX_NESTING))
    created = httpx.post(f"{server.url}/feedback", json={"run_id": run_id, "key": "k", "value": value})
    assert created.status_code == 200, created.text
    assert httpx.get(f"{server.url}/feedback/{created.json()['id']}").json()["value"] == value
    assert httpx.get(f"{server.url}/feedback", params={"run": run_id}).json()[0]["value"] == value


def test_json_bodies_beyond_any_parser_get_the_api_error_shape(server: Server) -> None:
    """Deeper than orjson reads (1,024 levels): the body cannot name a field, but the answer is the API's."""
    body = feedback_text(str(uuid.uuid4()), str(uuid.uuid4()), f'"value": {nested(2000)}')
    for path in ("/feedback", "/runs/query"):
        response = httpx.post(f"{server.url}{path}", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == {"part": "body"} and "invalid JSON" in response.json()["error"]


def json_request(server: Server, method: str, path: str, text: str) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", content=text, headers={"content-type": "application/json"})


def test_projects_nested_too_deep_are_422_naming_the_field_and_store_nothing(server: Server) -> None:
    """They used to be a 500 (orjson cannot write them) and, PATCHed, to leave the project as it was by luck."""
    name = f"deep-{uuid.uuid4().hex[:8]}"
    too_deep = {
        "extra": f'{{"a": {nested(MAX_NESTING)}}}',
        "metadata": f'{{"a": {nested(1000)}}}',
    }
    for field, value in too_deep.items():
        response = json_request(server, "post", "/sessions", f'{{"name": "{name}", "{field}": {value}}}')
        assert response.status_code == 422, response.text
        assert response.json() == {
            "error": f"{field} is nested deeper than {MAX_NESTING} levels",
            "status": 422,
            "detail": {"field": field},
        }
    # `metadata` is stored as extra.metadata, a level deeper than it is sent.
    folded = json_request(server, "post", "/sessions", f'{{"name": "{name}", "metadata": {nested(MAX_NESTING)}}}')
    assert folded.status_code == 422 and folded.json()["detail"] == {"field": "metadata"}, folded.text
    assert httpx.get(f"{server.url}/sessions", params={"name": name}).json() == []

    project = httpx.post(f"{server.url}/sessions", json={"name": name}).json()
    for field, value in too_deep.items():
        response = json_request(server, "patch", f"/sessions/{project['id']}", f'{{"{field}": {value}}}')
        assert response.status_code == 422 and response.json()["detail"] == {"field": field}, response.text
    assert httpx.get(f"{server.url}/sessions/{project['id']}").json() == project
    listed = httpx.get(f"{server.url}/sessions", params={"metadata": f'{{"a": {nested(MAX_NESTING)}}}'})
    assert listed.status_code == 422 and listed.json()["detail"] == {"field": "metadata"}, listed.text


def test_projects_nested_up_to_the_limit_are_stored_and_read_back(server: Server) -> None:
    metadata = {"a": jsonutil.loads(nested(MAX_NESTING - 2))}  # extra.metadata.a: MAX_NESTING levels in extra
    created = httpx.post(f"{server.url}/sessions", json={"name": f"deep-{uuid.uuid4().hex[:8]}", "metadata": metadata})
    assert created.status_code == 201, created.text
    assert httpx.get(f"{server.url}/sessions/{created.json()['id']}").json()["extra"] == {"metadata": metadata}
    found = httpx.get(f"{server.url}/sessions", params={"metadata": jsonutil.dumps_str(metadata)}).json()
    assert [p["id"] for p in found] == [created.json()["id"]]


@pytest.mark.parametrize(
    ("method", "path", "text", "field"),
    [
        ("put", f"/runs/{uuid.uuid4()}/share", f'{{"share_token": {nested(1000)}}}', "share_token"),
        ("post", "/feedback/tokens", f'{{"run_id": {nested(1000)}, "feedback_key": "k"}}', "run_id"),
        ("post", "/feedback/tokens", f'[{{"run_id": "{uuid.uuid4()}", "expires_at": {nested(1000)}}}]', "0.expires_at"),
        ("post", "/feedback/stats", f'{{"bucket": {nested(1000)}}}', "bucket"),
        ("post", "/runs/delete", f'{{"metadata": {{"k": {nested(1000)}}}}}', "metadata"),
        ("post", "/runs/delete", f'{{"session_id": {nested(1000)}, "trace_ids": []}}', "session_id"),
        ("post", "/runs/query", f'{{"filter": {nested(1000)}}}', "filter"),
        ("post", "/threads/query", f'{{"session": {nested(MAX_NESTING + 1)}}}', "session"),
    ],
)
def test_any_json_body_member_nested_too_deep_is_a_422_naming_it(
    server: Server, method: str, path: str, text: str, field: str
) -> None:
    """Checked once for every JSON body: the routes' own checks (str() of a value expected to be text) used to
    overflow the stack on them, a 500."""
    response = json_request(server, method, path, text)
    assert response.status_code == 422, response.text
    assert response.json() == {
        "error": f"{field} is nested deeper than {MAX_NESTING} levels",
        "status": 422,
        "detail": {"field": field},
    }


def test_token_feedback_config_is_checked_when_the_token_is_created(server: Server, client: Client) -> None:
    """A token with a config feedback refuses used to be created, and then every use of it was a 422."""
    run_id = str(uuid.uuid4())
    for config in (f'{{"a": {nested(MAX_NESTING)}}}', "[1]", '"categorical"'):
        text = f'{{"run_id": "{run_id}", "feedback_key": "k", "feedback_config": {config}}}'
        response = json_request(server, "post", "/feedback/tokens", text)
        assert response.status_code == 422 and response.json()["detail"] == {"field": "feedback_config"}, config
    assert httpx.get(f"{server.url}/feedback/tokens", params={"run_id": run_id}).json() == []

    config = {"type": "continuous", "min": 0, "max": 1, "deep": jsonutil.loads(nested(MAX_NESTING - 1))}
    token = client.create_presigned_feedback_token(run_id, "k", feedback_config=config)
    client.create_feedback_from_token(token.url, score=1)
    (stored_feedback,) = httpx.get(f"{server.url}/feedback", params={"run": run_id}).json()
    assert stored_feedback["feedback_config"] == config
