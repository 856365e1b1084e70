"""The generated v2 runs API of the real langsmith SDK (0.15.0), `client.runs.query_v2` and
`client.runs.retrieve_v2`, against a server holding what the SDK traced: every answer is checked against what the
v1 API returns for the same runs; refused options and bad input answer 4xx in the API's error shape."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from langsmith import Client, NotFoundError, UnprocessableEntityError, traceable, tracing_context
from langsmith.resources.runs import AsyncRunsResource
from langsmith.run_trees import RunTree
from langsmith.schemas import Attachment
from langsmith.types import Run

from query.runs_v2_shape import SELECT_FIELDS
from schemas import DEFAULT_TENANT_ID
from schemas.projects import project_id_for_name
from tests.support import Server, wait_for

# The v1 calls the answers are checked against are the deprecated ones.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed:DeprecationWarning")
T = TypeVar("T")
PROJECT = f"sdk-v2-{uuid.uuid4().hex[:8]}"
PROJECT_ID = project_id_for_name(DEFAULT_TENANT_ID, PROJECT)
TRACES = 40  # 3 runs each: more than one v1 page, so page_size above 100 is seen to be honoured
FAILING = {0, 10, 20, 30}  # traces whose tool raises
DAY = timedelta(days=1)
USAGE = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12, "input_token_details": {"cache_read": 2}}


@dataclass(frozen=True)
class Traced:
    roots: list[str]  # in the order traced
    old: str  # a root that started three days ago, outside the default window
    shared: str
    share_token: str
    with_feedback: str


@pytest.fixture(scope="module")
def traced(client: Client, server: Server) -> Traced:
    @traceable(run_type="llm", client=client, project_name=PROJECT)
    def model(prompt: str) -> dict[str, object]:
        return {"content": prompt.upper(), "usage_metadata": USAGE}

    @traceable(run_type="tool", client=client, project_name=PROJECT)
    def lookup(i: int) -> int:
        if i in FAILING:
            raise ValueError(f"lookup {i} failed")
        return i

    @traceable(run_type="chain", client=client, project_name=PROJECT)
    def turn(i: int, image: Attachment | None = None) -> str:
        model(f"question {i}")
        with contextlib.suppress(ValueError):
            lookup(i)
        return f"answer {i}"

    roots = []
    with tracing_context(enabled=True):
        for i in range(TRACES):
            run_id = uuid.uuid4()
            image = Attachment(mime_type="image/png", data=b"\x89PNG v2") if i == 0 else None
            extra = {"run_id": run_id, "tags": [f"t{i % 4}"], "metadata": {"parity": ("even", "odd")[i % 2]}}
            turn(i, image, langsmith_extra=extra)
            roots.append(str(run_id))
    started = datetime.now(UTC) - timedelta(days=3)
    old = RunTree(
        name="old", run_type="chain", inputs={"i": -1}, project_name=PROJECT, ls_client=client, start_time=started
    )
    old.post()
    old.end(outputs={"output": "long ago"}, end_time=started + timedelta(seconds=1))
    old.patch()
    client.flush()
    every = 3 * TRACES + 1
    wait_for(
        lambda: sum(1 for r in client.list_runs(project_id=PROJECT_ID) if r.end_time) == every,
        timeout=60,
        what=f"{every} finished runs",
    )
    client.create_feedback(roots[1], key="quality", score=1.0, comment="good", trace_id=roots[1], session_id=PROJECT_ID)
    wait_for(lambda: client.read_run(roots[1]).feedback_stats, timeout=30, what="feedback stats")
    share = httpx.put(f"{server.url}/runs/{roots[2]}/share", json={}).json()
    return Traced(roots, str(old.id), roots[2], share["share_token"], roots[1])


def v2(server: Server, call: Callable[[AsyncRunsResource], Awaitable[T]]) -> T:
    """`call` with the SDK's v2 runs resource on an event loop of its own, and a Client of its own: the generated
    client's connections belong to the loop that opened them."""

    async def main() -> T:
        return await call(Client(api_url=server.url, api_key="unused").runs)

    return asyncio.run(main())


def v2_ids(server: Server, **params: Any) -> list[str]:
    async def listed(runs: AsyncRunsResource) -> list[str]:
        return [run.id async for run in runs.query_v2(project_ids=[str(PROJECT_ID)], **params)]

    return v2(server, listed)


def v1_ids(client: Client, **params: Any) -> list[str]:
    """The same runs through the v1 API, with v2's default window (the last day)."""
    since = datetime.now(UTC) - timedelta(days=1)
    return [str(r.id) for r in client.list_runs(project_id=PROJECT_ID, start_time=since, **params)]


def v1_run(server: Server, run_id: str) -> dict[str, Any]:
    return httpx.get(f"{server.url}/runs/{run_id}").json()


def query(server: Server, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v2/runs/query", json={"project_ids": [str(PROJECT_ID)], **body})


def test_paging_with_a_small_page_size_returns_every_run_once_in_v1_order(
    server: Server, client: Client, traced: Traced
) -> None:
    async def pages(runs: AsyncRunsResource) -> list[list[Run]]:
        page = await runs.query_v2(project_ids=[str(PROJECT_ID)], page_size=7)
        found = [page.items]
        while page.has_next_page():
            page = await page.get_next_page()
            found.append(page.items)
        return found

    paged = v2(server, pages)
    ids = [run.id for page in paged for run in page]
    assert len(ids) == len(set(ids)) == 3 * TRACES  # no duplicates, and the old run is outside the window
    assert ids == v1_ids(client)  # no gaps: newest first, ties by id, as v1
    assert [len(page) for page in paged] == [7] * (3 * TRACES // 7) + [3 * TRACES % 7]
    assert v2_ids(server, page_size=1000) == ids
    one_page = query(server, {"page_size": 150}).json()
    assert [r["id"] for r in one_page["items"]] == ids and one_page["next_cursor"] is None


def test_a_cursor_is_deterministic_and_keeps_its_window(server: Server, client: Client, traced: Traced) -> None:
    since = (datetime.now(UTC) - timedelta(days=4)).isoformat()
    first = query(server, {"page_size": 50, "min_start_time": since}).json()
    cursor = first["next_cursor"]
    again = query(server, {"page_size": 50, "cursor": cursor}).json()
    assert again == query(server, {"page_size": 50, "cursor": cursor}).json()
    # The follow-up omits min_start_time: the cursor's window, four days back, still holds the old run.
    rest = [r["id"] for r in again["items"]]
    while again["next_cursor"]:
        again = query(server, {"page_size": 50, "cursor": again["next_cursor"]}).json()
        rest += [r["id"] for r in again["items"]]
    assert [r["id"] for r in first["items"]] + rest == [*v1_ids(client), traced.old]


def test_runs_arriving_while_paging_do_not_shift_the_pages(server: Server, client: Client) -> None:
    project = f"sdk-v2-late-{uuid.uuid4().hex[:8]}"
    project_id = str(project_id_for_name(DEFAULT_TENANT_ID, project))

    @traceable(client=client, project_name=project)
    def step(i: int) -> int:
        return i

    def trace(count: int) -> None:
        with tracing_context(enabled=True):
            for i in range(count):
                step(i)
        client.flush()

    trace(5)
    wait_for(lambda: sum(1 for _ in client.list_runs(project_id=project_id)) == 5, timeout=30, what="5 runs")
    body = {"project_ids": [project_id], "page_size": 2}
    page = httpx.post(f"{server.url}/api/v2/runs/query", json=body).json()
    seen = [r["id"] for r in page["items"]]
    trace(1)
    wait_for(lambda: sum(1 for _ in client.list_runs(project_id=project_id)) == 6, timeout=30, what="a 6th run")
    while page["next_cursor"]:
        page = httpx.post(f"{server.url}/api/v2/runs/query", json={**body, "cursor": page["next_cursor"]}).json()
        seen += [r["id"] for r in page["items"]]
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(
    ("v2_params", "v1_params"),
    [
        ({"is_root": True}, {"is_root": True}),
        ({"is_root": False}, {"is_root": False}),
        ({"run_type": "LLM"}, {"run_type": "llm"}),
        ({"has_error": True}, {"error": True}),
        ({"has_error": False, "is_root": False}, {"error": False, "is_root": False}),
        ({"filter": 'has(tags, "t1")'}, {"filter": 'has(tags, "t1")'}),
        (
            {"filter": 'and(eq(metadata_key, "parity"), eq(metadata_value, "odd"))', "is_root": True},
            {"filter": 'and(eq(metadata_key, "parity"), eq(metadata_value, "odd"))', "is_root": True},
        ),
        (
            {"trace_filter": 'has(tags, "t2")', "run_type": "TOOL"},
            {"trace_filter": 'has(tags, "t2")', "run_type": "tool"},
        ),
        (
            {"tree_filter": 'eq(status, "error")', "is_root": True},
            {"tree_filter": 'eq(status, "error")', "is_root": True},
        ),
    ],
)
def test_filters_select_what_v1_selects(
    server: Server, client: Client, traced: Traced, v2_params: dict[str, Any], v1_params: dict[str, Any]
) -> None:
    found = v2_ids(server, page_size=25, **v2_params)
    assert found and found == v1_ids(client, **v1_params)


def test_trace_id_and_ids(server: Server, client: Client, traced: Traced) -> None:
    trace = v2_ids(server, trace_id=traced.roots[3])
    assert len(trace) == 3 and trace == v1_ids(client, trace_id=traced.roots[3])
    picked = [traced.roots[5], traced.roots[6], traced.old]
    assert v2_ids(server, ids=picked) == [traced.roots[6], traced.roots[5]]  # the old run is outside the window
    assert v2_ids(server, ids=picked, is_root=False) == []


def test_time_bounds_are_inclusive_and_default_to_the_last_day(server: Server, client: Client, traced: Traced) -> None:
    started = client.read_run(traced.old).start_time.replace(tzinfo=UTC)
    assert traced.old not in v2_ids(server)
    assert v2_ids(server, min_start_time=started, max_start_time=started) == [traced.old]
    assert v2_ids(server, min_start_time=started + timedelta(microseconds=1), max_start_time=started + DAY) == []
    assert v2_ids(server, min_start_time=started - DAY, max_start_time=started - timedelta(microseconds=1)) == []
    assert v2_ids(server, min_start_time=started) == [*v1_ids(client), traced.old]
    response = query(server, {"max_start_time": (started + DAY).isoformat()})
    assert response.status_code == 422 and "(by default a day before now)" in response.json()["error"]


def test_selects_return_only_the_fields_asked_for(server: Server, traced: Traced) -> None:
    assert {tuple(r) for r in query(server, {"page_size": 5}).json()["items"]} == {("id",)}
    named = query(server, {"page_size": 5, "selects": ["NAME", "STATUS"]}).json()["items"]
    assert all(set(r) == {"id", "name", "status"} for r in named)
    got = httpx.get(f"{server.url}/api/v2/runs/{traced.old}", params={"project_id": str(PROJECT_ID)}).json()
    assert got == {"id": traced.old}


@pytest.mark.parametrize("via", ["query", "retrieve"])
def test_every_select_matches_the_v1_run(server: Server, traced: Traced, via: str) -> None:
    for run_id in (traced.roots[0], traced.with_feedback, traced.shared):
        for child in [run_id, *v1_run(server, run_id)["child_run_ids"]]:
            _check_against_v1(server, traced, _v2_run(server, child, via), v1_run(server, child))


def _v2_run(server: Server, run_id: str, via: str) -> dict[str, Any]:
    if via == "query":
        found = query(server, {"ids": [run_id], "selects": list(SELECT_FIELDS)}).json()["items"]
        assert len(found) == 1
        return found[0]
    params = {"project_id": str(PROJECT_ID), "selects": list(SELECT_FIELDS)}
    return httpx.get(f"{server.url}/api/v2/runs/{run_id}", params=params).json()


def _check_against_v1(server: Server, traced: Traced, run: dict[str, Any], v1: dict[str, Any]) -> None:
    assert set(run) == {name.lower() for name in SELECT_FIELDS}
    same = ("id", "name", "start_time", "end_time", "first_token_time", "error", "extra", "events", "inputs")
    same += ("outputs", "parent_run_ids", "trace_id", "thread_id", "dotted_order", "is_root", "reference_example_id")
    same += ("total_tokens", "prompt_tokens", "completion_tokens", "total_cost", "prompt_cost", "completion_cost")
    same += ("tags", "app_path")
    assert {k: run[k] for k in same} == {k: v1[k] for k in same}
    assert run["project_id"] == v1["session_id"] == str(PROJECT_ID)
    assert run["manifest"] == v1["serialized"]
    assert run["run_type"] == v1["run_type"].upper() and run["status"] == v1["status"].upper()
    assert run["metadata"] == v1["extra"]["metadata"]
    for details in (
        "prompt_token_details",
        "completion_token_details",
        "prompt_cost_details",
        "completion_cost_details",
    ):
        assert run[details] == (None if v1[details] is None else {"raw": v1[details]})
    latency = datetime.fromisoformat(v1["end_time"]) - datetime.fromisoformat(v1["start_time"])
    assert run["latency_seconds"] == latency.total_seconds()
    for payload in ("inputs", "outputs"):  # small enough to be whole in the preview
        preview = run[f"{payload}_preview"]
        assert (None if preview is None else json.loads(preview)) == v1[payload]
    if v1["error"]:
        assert run["error_preview"] and v1["error"].startswith(run["error_preview"].removesuffix("…"))
    else:
        assert run["error_preview"] is None
    assert run["feedback_stats"] == {
        key: {**{k: v for k, v in stats.items() if k != "comment_count"}, "contains_thread_feedback": False}
        for key, stats in v1["feedback_stats"].items()
    }
    assert set(run["attachments"]) == {key.removeprefix("attachment.") for key in v1["s3_urls"]}
    for name, url in run["attachments"].items():
        assert (
            httpx.get(url).content
            == httpx.get(server.url + v1["s3_urls"][f"attachment.{name}"]["presigned_url"]).content
        )
    if run["id"] == traced.shared:
        assert run["share_url"] == f"{server.url}/public/{traced.share_token}/run"
        assert httpx.get(run["share_url"]).json()["id"] == traced.shared
    else:
        assert run["share_url"] is None
    untracked = ("reference_dataset_id", "price_model_id", "thread_evaluation_time", "is_in_dataset")
    assert all(run[k] is None for k in (*untracked, "last_queued_at", "ls_user_id"))


def test_the_sdk_parses_the_v2_run(server: Server, traced: Traced) -> None:
    async def retrieved(runs: AsyncRunsResource) -> tuple[Run, Run]:
        root = await runs.retrieve_v2(traced.with_feedback, project_id=str(PROJECT_ID), selects=list(SELECT_FIELDS))
        llm = [
            run
            async for run in runs.query_v2(
                project_ids=[str(PROJECT_ID)], trace_id=root.id, run_type="LLM", selects=list(SELECT_FIELDS)
            )
        ]
        return root, llm[0]

    root, llm = v2(server, retrieved)
    assert root.status == "SUCCESS" and root.run_type == "CHAIN" and root.outputs == {"output": "answer 1"}
    assert root.feedback_stats["quality"].avg == 1.0 and root.feedback_stats["quality"].comments == ["good"]
    assert root.metadata["parity"] == "odd" and root.tags == ["t1"] and root.is_root
    assert isinstance(root.start_time, datetime) and root.latency_seconds > 0
    assert llm.parent_run_ids == [root.id] and llm.project_id == str(PROJECT_ID)
    assert (llm.prompt_tokens, llm.completion_tokens, llm.total_tokens) == (5, 7, 12)
    assert llm.prompt_token_details.raw == {"cache_read": 2}


def test_the_sdk_raises_for_a_missing_run_and_a_refused_option(server: Server, traced: Traced) -> None:
    async def missing(runs: AsyncRunsResource) -> Run:
        return await runs.retrieve_v2(str(uuid.uuid4()), project_id=str(PROJECT_ID))

    with pytest.raises(NotFoundError):
        v2(server, missing)

    async def other_project(runs: AsyncRunsResource) -> Run:
        return await runs.retrieve_v2(traced.roots[0], project_id=str(uuid.uuid4()))

    with pytest.raises(NotFoundError):
        v2(server, other_project)

    async def semantic(runs: AsyncRunsResource) -> list[Run]:
        return [run async for run in runs.query_v2(project_ids=[str(PROJECT_ID)], sem_filter="angry users")]

    with pytest.raises(UnprocessableEntityError, match="sem_filter is not supported"):
        v2(server, semantic)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("ai_search", "slow llm calls"),
        ("sem_filter", "angry users"),
        ("include_subtree_usage", True),
        ("min_feedback_modified_at", "2026-01-01T00:00:00Z"),
        ("max_feedback_modified_at", "2026-01-01T00:00:00Z"),
        ("reference_dataset_id", str(uuid.uuid4())),
    ],
)
def test_options_tracehouse_cannot_honour_are_a_422(server: Server, option: str, value: object) -> None:
    response = query(server, {option: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status"] == 422 and body["detail"] == {"field": option, "unsupported": True}
    assert body["error"].startswith(f"{option} is not supported by tracehouse: "), body


def test_include_subtree_usage_false_is_what_is_done_anyway(server: Server, traced: Traced) -> None:
    assert query(server, {"include_subtree_usage": False}).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "field", "problem"),
    [
        ({"page_size": 0}, 422, "page_size", "greater than or equal to 1"),
        ({"page_size": 1001}, 422, "page_size", "less than or equal to 1000"),
        ({"run_type": "llm"}, 422, "run_type", "'TOOL'"),
        ({"selects": ["NAME", "COLOUR"]}, 422, "selects.1", "'ID'"),
        ({"project_ids": ["not-a-uuid"]}, 422, "project_ids.0", "valid UUID"),
        ({"project_ids": []}, 422, "project_ids", "at least 1 item"),
        ({"project_ids": None}, 422, "project_ids", "Field required"),
        ({"ids": []}, 422, "ids", "at least 1 item"),
        ({"limit": 5}, 422, "limit", "Extra inputs are not permitted"),
        ({"min_start_time": "yesterday"}, 422, "min_start_time", "valid datetime"),
        ({"min_start_time": "0001-01-01T00:00:00Z"}, 422, "min_start_time", "between 1900 and 2299"),
        (
            {"min_start_time": "2026-01-02T00:00:00Z", "max_start_time": "2026-01-01T00:00:00Z"},
            422,
            "min_start_time",
            "after",
        ),
        ({"filter": "eq(name"}, 400, "filter", "position"),
        ({"tree_filter": "nope(1)"}, 400, "tree_filter", "position"),
        ({"cursor": "not-a-cursor"}, 400, "cursor", "pass back a cursor"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    server: Server, body: dict[str, Any], status: int, field: str, problem: str
) -> None:
    response = query(server, body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and error["detail"]["field"] == field and problem in error["error"], error


def test_a_body_that_is_not_an_object_is_a_422(server: Server) -> None:
    response = httpx.post(f"{server.url}/api/v2/runs/query", json=[str(PROJECT_ID)])
    assert response.status_code == 422 and response.json()["error"] == "the body must be a JSON object"


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({}, 422, "project_id"),
        ({"project_id": str(PROJECT_ID), "selects": "COLOUR"}, 422, "selects.0"),
        ({"project_id": str(PROJECT_ID), "start_time": "soon"}, 422, "start_time"),
        ({"project_id": str(uuid.uuid4())}, 404, None),
    ],
)
def test_retrieve_errors(
    server: Server, traced: Traced, params: dict[str, str], status: int, field: str | None
) -> None:
    response = httpx.get(f"{server.url}/api/v2/runs/{traced.roots[0]}", params=params)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and error["error"]
    if field is not None:
        assert error["detail"] == {"field": field, "in": "query"}
    else:
        assert error["detail"]["run_id"] == traced.roots[0]
