"""The generated v2 API of the real langsmith SDK (0.15.0) for what the deprecated `list_threads`, `read_thread`,
`get_run_url`, `share_run` and `unshare_run` did: `client.threads.query` / `list_traces`, `client.traces.query` /
`list_runs`, `client.runs.get_url` and `client.runs.share`, against a server holding conversations the SDK
traced. Every answer is checked against what the v1 API returns for the same data; pages of small sizes add up
to the v1 answer; refused options and bad input answer 4xx in the API's error shape."""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langsmith import Client, NotFoundError, UnprocessableEntityError, traceable, tracing_context
from langsmith.run_trees import RunTree
from langsmith.types import Thread, Trace, run_get_url_params, thread_list_traces_params, trace_list_runs_params

from query.runs_v2_shape import SELECT_FIELDS
from query.threads_v2_api import RUN_SELECT_OF
from query.v2_requests import Window, encode_cursor
from schemas import DEFAULT_TENANT_ID
from schemas.projects import project_id_for_name
from tests.support import Server, all_pages, sdk, wait_for

# The v1 calls the answers are checked against are the deprecated ones.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed:DeprecationWarning")
SUFFIX = uuid.uuid4().hex[:8]
PROJECT = f"sdk-v2-threads-{SUFFIX}"
PROJECT_ID = str(project_id_for_name(DEFAULT_TENANT_ID, PROJECT))
THREADS = [f"conversation-{SUFFIX}-{k}" for k in range(5)]  # thread k has k + 1 turns
THREAD_KEYS = ("thread_id", "session_id", "conversation_id")  # the metadata keys that name a thread
FAILING_TURN = (3, 1)  # (thread, turn) whose root raises
TOOL_FROM_TURN = 2  # turns from the third on call a tool: threads 2, 3 and 4 have such turns
LONE = 2  # traces outside any thread, of turns that call no tool
USAGE = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
OLD_START = datetime.now(UTC) - timedelta(days=3)


@dataclass(frozen=True)
class Traced:
    turns: dict[str, list[str]]  # thread id -> its root ids, oldest first (the old turn of thread 0 first)
    lone: list[str]
    old: str  # thread 0's first turn, started three days ago: outside the default window


@pytest.fixture(scope="module")
def traced(client: Client) -> Traced:
    @traceable(run_type="llm", client=client, project_name=PROJECT)
    def model(prompt: str) -> dict[str, object]:
        return {"content": prompt.upper(), "usage_metadata": USAGE}

    @traceable(run_type="tool", client=client, project_name=PROJECT)
    def lookup(turn: int) -> int:
        return turn

    @traceable(run_type="chain", client=client, project_name=PROJECT)
    def turn(thread: int, i: int) -> str:
        model(f"thread {thread} turn {i}")
        if i >= TOOL_FROM_TURN:
            lookup(i)
        if (thread, i) == FAILING_TURN:
            raise ValueError(f"turn {i} of thread {thread} failed")
        return f"answer {thread}.{i}"

    old = RunTree(
        name="turn",
        run_type="chain",
        inputs={"thread": 0, "i": -1},
        project_name=PROJECT,
        ls_client=client,
        start_time=OLD_START,
        extra={"metadata": {THREAD_KEYS[0]: THREADS[0]}},
    )
    old.post()
    old.end(outputs={"output": "long ago"}, end_time=OLD_START + timedelta(seconds=1))
    old.patch()
    turns: dict[str, list[str]] = {thread: [] for thread in THREADS}
    turns[THREADS[0]].append(str(old.id))
    runs = 1
    with tracing_context(enabled=True):
        for i in range(len(THREADS)):  # round robin: the threads' turns interleave, the longer threads end last
            for k, thread in enumerate(THREADS[i:], start=i):
                run_id = uuid.uuid4()
                with tracing_context(metadata={THREAD_KEYS[k % 3]: thread}), contextlib.suppress(ValueError):
                    turn(k, i, langsmith_extra={"run_id": run_id})
                turns[thread].append(str(run_id))
                runs += 3 if i >= TOOL_FROM_TURN else 2
        lone = []
        for i in range(LONE):
            run_id = uuid.uuid4()
            turn(-1, i, langsmith_extra={"run_id": run_id})
            lone.append(str(run_id))
            runs += 2
    client.flush()
    wait_for(
        lambda: sum(1 for r in client.list_runs(project_id=PROJECT_ID) if r.end_time) == runs,
        timeout=60,
        what=f"{runs} finished runs",
    )
    return Traced(turns, lone, str(old.id))


def since() -> datetime:
    """v2's default window start, for the v1 calls compared with it."""
    return datetime.now(UTC) - timedelta(days=1)


def post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v2/{path}", json={"project_id": PROJECT_ID, **body})


def get(server: Server, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v2/{path}", params={"project_id": PROJECT_ID, **params})


def v1_run(server: Server, run_id: str) -> dict[str, Any]:
    return httpx.get(f"{server.url}/runs/{run_id}").json()


# Threads


def test_threads_page_by_page_are_v1s_list_threads(server: Server, client: Client, traced: Traced) -> None:
    paged = sdk(server, lambda c: all_pages(c.threads.query(project_id=PROJECT_ID, page_size=2)))
    threads = [thread for page in paged for thread in page]
    assert [len(page) for page in paged] == [2, 2, 1]
    v1 = client.list_threads(project_id=PROJECT_ID)
    assert [t.thread_id for t in threads] == [t["thread_id"] for t in v1] == THREADS[::-1]  # no gaps, no repeats
    for thread, old in zip(threads, v1, strict=True):
        runs = old["runs"]
        assert thread.count == old["count"] == len(runs)
        assert thread.min_start_time == datetime.fromisoformat(old["min_start_time"])
        assert thread.max_start_time == thread.start_time == datetime.fromisoformat(old["max_start_time"])
        assert (thread.first_trace_id, thread.last_trace_id) == (str(runs[0].id), str(runs[-1].id))
        assert thread.trace_id == thread.last_trace_id
    assert threads[-1].count == 1  # the old turn of thread 0 is outside the default window


def test_thread_figures_are_those_of_v1_threads(server: Server, traced: Traced) -> None:
    v2 = post(server, "threads/query", {"page_size": 100}).json()["items"]
    v1 = httpx.post(f"{server.url}/threads/query", json={"session": [PROJECT_ID], "start_time": since().isoformat()})
    for thread, old in zip(v2, v1.json()["threads"], strict=True):
        assert set(thread) == set(Thread.model_fields)
        assert thread["thread_id"] == old["thread_id"] and thread["count"] == old["trace_count"]
        assert thread["total_tokens"] == old["total_tokens"] == 12 * thread["count"]  # one model call a turn
        assert (thread["latency_p50"], thread["latency_p99"]) == (old["latency_p50"], old["latency_p99"])
        assert (thread["total_cost"], thread["num_errored_turns"]) == (old["total_cost"], old["error_count"])
        assert json.loads(thread["first_inputs"]) == old["first_inputs"]
        assert (thread["last_outputs"] and json.loads(thread["last_outputs"])) == old["last_outputs"]
        if thread["thread_id"] == THREADS[FAILING_TURN[0]]:
            assert thread["num_errored_turns"] == 1 and thread["last_error"].startswith("ValueError")
        else:
            assert thread["num_errored_turns"] == 0 and thread["last_error"] is None
        assert all(thread[k] is None for k in ("feedback_stats", "total_token_details", "total_cost_details"))


@pytest.mark.parametrize(
    ("v2_filters", "v1_filters", "threads"),
    [
        ({"filter": 'eq(status, "error")'}, {"filter": 'eq(status, "error")'}, [FAILING_TURN[0]]),
        ({"trace_filter": 'eq(status, "error")'}, {"filter": 'eq(status, "error")'}, [FAILING_TURN[0]]),
        ({"tree_filter": 'eq(name, "lookup")'}, {"tree_filter": 'eq(name, "lookup")'}, [4, 3, 2]),
        (
            {"filter": 'eq(status, "error")', "tree_filter": 'eq(run_type, "llm")'},
            {"filter": 'eq(status, "error")', "tree_filter": 'eq(run_type, "llm")'},
            [FAILING_TURN[0]],
        ),
        (  # one root must match both: the failing turn calls no tool
            {"filter": 'eq(status, "error")', "tree_filter": 'eq(name, "lookup")'},
            {"filter": 'eq(status, "error")', "tree_filter": 'eq(name, "lookup")'},
            [],
        ),
        ({"filter": 'has(tags, "nope")'}, {"filter": 'has(tags, "nope")'}, []),
    ],
)
def test_thread_filters_select_the_threads_of_the_roots_v1_selects(
    server: Server,
    client: Client,
    traced: Traced,
    v2_filters: dict[str, str],
    v1_filters: dict[str, str],
    threads: list[int],
) -> None:
    paged = sdk(server, lambda c: all_pages(c.threads.query(project_id=PROJECT_ID, page_size=1, **v2_filters)))
    found = [thread.thread_id for page in paged for thread in page]
    roots = client.list_runs(project_id=PROJECT_ID, is_root=True, start_time=since(), **v1_filters)
    thread_of = {root: thread for thread, ids in traced.turns.items() for root in ids}
    expected = dict.fromkeys(thread_of[str(run.id)] for run in roots if str(run.id) in thread_of)
    assert found == list(expected) == [THREADS[k] for k in threads]  # most recent activity first, once each


def test_thread_windows_bound_the_activity_counted(server: Server, client: Client, traced: Traced) -> None:
    wide = post(server, "threads/query", {"min_start_time": (OLD_START - timedelta(hours=1)).isoformat()}).json()
    first = {t["thread_id"]: t for t in wide["items"]}[THREADS[0]]
    assert first["count"] == 2 and first["first_trace_id"] == traced.old
    started = client.read_run(traced.old).start_time.replace(tzinfo=UTC)
    hour = timedelta(hours=1)
    after = {"min_start_time": started.isoformat(), "max_start_time": (started + hour).isoformat()}
    assert [t["last_trace_id"] for t in post(server, "threads/query", after).json()["items"]] == [traced.old]
    before = {"min_start_time": (started - hour).isoformat(), "max_start_time": started.isoformat()}
    assert post(server, "threads/query", before).json()["items"] == []  # max_start_time is exclusive


def test_a_threads_traces_page_by_page_are_read_thread(server: Server, client: Client, traced: Traced) -> None:
    for thread in THREADS:
        paged = sdk(
            server,
            lambda c, thread=thread: all_pages(c.threads.list_traces(thread, project_id=PROJECT_ID, page_size=2)),
        )
        ids = [trace.trace_id for page in paged for trace in page]
        v1 = [str(run.id) for run in client.read_thread(thread_id=thread, project_id=PROJECT_ID)]
        assert ids == v1 == traced.turns[thread]  # oldest first, and no window: the old turn of thread 0 too
        assert [len(page) for page in paged[:-1]] == [2] * (len(paged) - 1)


def test_a_threads_traces_filtered_are_read_thread_filtered(server: Server, client: Client, traced: Traced) -> None:
    thread = THREADS[FAILING_TURN[0]]
    for name in ("filter", "trace_filter"):
        items = get(server, f"threads/{thread}/traces", **{name: 'eq(status, "error")'}).json()["items"]
        v1 = client.read_thread(thread_id=thread, project_id=PROJECT_ID, filter='eq(status, "error")')
        assert [t["trace_id"] for t in items] == [str(r.id) for r in v1] == [traced.turns[thread][FAILING_TURN[1]]]
    with_tool = get(server, f"threads/{thread}/traces", tree_filter='eq(name, "lookup")').json()["items"]
    assert [t["trace_id"] for t in with_tool] == traced.turns[thread][TOOL_FROM_TURN:]


def test_thread_trace_selects_are_the_v1_roots_fields(server: Server, traced: Traced) -> None:
    thread = THREADS[FAILING_TURN[0]]
    selects = list(RUN_SELECT_OF)
    items = get(server, f"threads/{thread}/traces", selects=selects, page_size=100).json()["items"]
    assert [t["trace_id"] for t in items] == traced.turns[thread]
    for trace in items:
        root = v1_run(server, trace["trace_id"])
        assert set(trace) == {"trace_id", *(s.lower() for s in selects)}
        same = ("name", "start_time", "end_time", "first_token_time", "error", "inputs", "outputs", "thread_id")
        same += ("prompt_tokens", "completion_tokens", "total_tokens", "prompt_cost", "completion_cost", "total_cost")
        assert {k: trace[k] for k in same} == {k: root[k] for k in same}
        latency = datetime.fromisoformat(root["end_time"]) - datetime.fromisoformat(root["start_time"])
        assert trace["latency"] == latency.total_seconds() and trace["thread_id"] == thread
        assert json.loads(trace["inputs_preview"]) == root["inputs"]
        assert (trace["outputs_preview"] and json.loads(trace["outputs_preview"])) == root["outputs"]
        assert (trace["error_preview"] is None) == (root["error"] is None)
        assert trace["prompt_token_details"] is None and trace["trace_id"] == root["trace_id"]


# Traces


def test_traces_page_by_page_are_v1s_roots(server: Server, client: Client, traced: Traced) -> None:
    paged = sdk(server, lambda c: all_pages(c.traces.query(project_id=PROJECT_ID, page_size=4)))
    ids = [trace.root_run.id for page in paged for trace in page]
    v1 = [str(run.id) for run in client.list_runs(project_id=PROJECT_ID, is_root=True, start_time=since())]
    assert ids == v1 and len(ids) == len(set(ids)) == sum(map(len, traced.turns.values())) - 1 + LONE
    assert [len(page) for page in paged[:-1]] == [4] * (len(paged) - 1)
    assert all(trace.trace_aggregates is None for page in paged for trace in page)  # none selected


def test_trace_aggregates_are_the_sums_over_the_v1_trace(server: Server, client: Client, traced: Traced) -> None:
    selects = ["NAME", "STATUS", "TOTAL_TOKENS", "TOTAL_COST", "FIRST_TOKEN_TIME", "PROMPT_TOKENS"]
    items = post(server, "traces/query", {"selects": selects, "page_size": 100}).json()["items"]
    assert len(items) == sum(map(len, traced.turns.values())) - 1 + LONE
    for item in items:
        root = item["root_run"]
        assert set(item) == set(Trace.model_fields) - {"query_metadata"}
        assert set(root) == {"id", "name", "status", "prompt_tokens"}
        runs = list(client.list_runs(project_id=PROJECT_ID, trace_id=root["id"]))
        tokens = sum(r.total_tokens or 0 for r in runs)
        assert tokens == 12  # one model call a trace
        assert item["trace_aggregates"] == {"total_tokens": tokens, "total_cost": None, "first_token_time": None}
        assert root["prompt_tokens"] == v1_run(server, root["id"])["prompt_tokens"]


@pytest.mark.parametrize(
    ("v2_params", "v1_params"),
    [
        ({"trace_filter": 'eq(status, "error")'}, {"filter": 'eq(status, "error")'}),
        ({"tree_filter": 'eq(name, "lookup")'}, {"tree_filter": 'eq(name, "lookup")'}),
        ({"trace_filter": 'eq(name, "turn")', "tree_filter": 'eq(run_type, "tool")'}, None),
    ],
)
def test_trace_filters_select_what_v1_selects(
    server: Server, client: Client, traced: Traced, v2_params: dict[str, str], v1_params: dict[str, str] | None
) -> None:
    found = sdk(server, lambda c: all_pages(c.traces.query(project_id=PROJECT_ID, page_size=3, **v2_params)))
    ids = [trace.root_run.id for page in found for trace in page]
    if v1_params is None:
        v1_params = {"filter": v2_params["trace_filter"], "tree_filter": v2_params["tree_filter"]}
    v1 = [str(run.id) for run in client.list_runs(project_id=PROJECT_ID, is_root=True, start_time=since(), **v1_params)]
    assert ids and ids == v1


def test_trace_ids_and_the_exclusive_window(server: Server, client: Client, traced: Traced) -> None:
    picked = [traced.lone[0], traced.turns[THREADS[2]][1], traced.old]
    found = [t["root_run"]["id"] for t in post(server, "traces/query", {"trace_ids": picked}).json()["items"]]
    assert found == picked[:2]  # newest first; the old trace is outside the default window
    started = client.read_run(traced.old).start_time.replace(tzinfo=UTC)
    at = {"min_start_time": started.isoformat(), "max_start_time": (started + timedelta(microseconds=1)).isoformat()}
    assert [t["root_run"]["id"] for t in post(server, "traces/query", at).json()["items"]] == [traced.old]
    before = {"min_start_time": (started - timedelta(days=1)).isoformat(), "max_start_time": started.isoformat()}
    assert post(server, "traces/query", before).json()["items"] == []


def test_a_traces_runs_are_v1s_in_start_order(server: Server, client: Client, traced: Traced) -> None:
    trace = traced.turns[THREADS[4]][2]

    async def listed(c: Client) -> list[Any]:
        return (await c.traces.list_runs(trace, project_id=PROJECT_ID, selects=list(SELECT_FIELDS))).items

    runs = sdk(server, listed)
    v1 = list(client.list_runs(project_id=PROJECT_ID, trace_id=trace))[::-1]  # v1 is newest first
    assert [run.id for run in runs] == [str(run.id) for run in v1] and len(runs) == 3
    assert [run.run_type for run in runs] == ["CHAIN", "LLM", "TOOL"] and runs[0].id == trace
    for run, old in zip(runs, v1, strict=True):
        assert (run.inputs, run.outputs, run.name) == (old.inputs, old.outputs, old.name)
        assert run.parent_run_ids == [str(p) for p in old.parent_run_ids or []]
    only_llm = get(server, f"traces/{trace}/runs", filter='eq(run_type, "llm")', selects="NAME").json()["items"]
    assert only_llm == [{"id": runs[1].id, "name": "model"}]
    assert get(server, f"traces/{trace}/runs").json()["items"] == [{"id": run.id} for run in runs]


def test_a_traces_runs_in_a_window(server: Server, traced: Traced) -> None:
    trace = traced.turns[THREADS[4]][2]
    runs = get(server, f"traces/{trace}/runs", selects="START_TIME").json()["items"]
    window = {"min_start_time": runs[1]["start_time"], "max_start_time": runs[2]["start_time"]}  # inclusive
    assert get(server, f"traces/{trace}/runs", **window).json()["items"] == [{"id": r["id"]} for r in runs[1:]]
    later = {"min_start_time": "2299-01-01T00:00:00Z", "max_start_time": "2299-01-02T00:00:00Z"}
    assert get(server, f"traces/{trace}/runs", **later).json() == {"items": []}


def test_a_trace_of_another_project_or_none_is_a_404(server: Server, traced: Traced) -> None:
    async def other_project(c: Client) -> Any:
        return await c.traces.list_runs(traced.lone[0], project_id=str(uuid.uuid4()))

    with pytest.raises(NotFoundError):
        sdk(server, other_project)
    missing = get(server, f"traces/{uuid.uuid4()}/runs")
    assert missing.status_code == 404 and missing.json()["detail"]["project_id"] == PROJECT_ID


# Run URLs and shares


def test_a_run_url_is_its_v1_app_path_on_the_server(server: Server, traced: Traced) -> None:
    trace = traced.lone[0]
    child = v1_run(server, trace)["child_run_ids"][0]

    async def url(c: Client) -> str | None:
        return (await c.runs.get_url(child, project_id=PROJECT_ID, trace_id=trace)).url

    assert sdk(server, url) == server.url + v1_run(server, child)["app_path"]
    wrong_trace = get(server, f"runs/{child}/url", trace_id=traced.lone[1])
    assert wrong_trace.status_code == 404 and wrong_trace.json()["detail"]["trace_id"] == traced.lone[1]
    wrong_project = httpx.get(
        f"{server.url}/api/v2/runs/{child}/url", params={"project_id": str(uuid.uuid4()), "trace_id": trace}
    )
    assert wrong_project.status_code == 404


def test_sharing_a_run_shares_its_trace_through_the_root(server: Server, traced: Traced) -> None:
    trace = traced.lone[1]
    child = v1_run(server, trace)["child_run_ids"][0]

    async def share(c: Client) -> tuple[str | None, str | None]:
        by_child = await c.runs.share.create(child, session_id=PROJECT_ID, trace_id=trace)
        by_root = await c.runs.share.create(trace, session_id=PROJECT_ID, trace_id=trace)
        return by_child.share_token, by_root.share_token

    token, again = sdk(server, share)
    assert token and token == again
    assert httpx.get(f"{server.url}/runs/{trace}/share").json() == {"run_id": trace, "share_token": token}
    assert httpx.get(f"{server.url}/public/{token}/run").json()["id"] == trace
    assert httpx.get(f"{server.url}/public/{token}/run/{child}").json()["id"] == child

    async def unshare(c: Client) -> None:
        await c.runs.share.delete(trace, session_id=PROJECT_ID)
        await c.runs.share.delete(trace, session_id=PROJECT_ID)  # idempotent

    sdk(server, unshare)
    assert httpx.get(f"{server.url}/runs/{trace}/share").json() is None
    assert httpx.get(f"{server.url}/public/{token}/run").status_code == 404


def test_a_v1_share_of_the_root_is_the_one_v2_returns(server: Server, traced: Traced) -> None:
    trace = traced.turns[THREADS[1]][0]
    v1 = httpx.put(f"{server.url}/runs/{trace}/share", json={}).json()["share_token"]
    created = httpx.post(f"{server.url}/api/v2/runs/{trace}/share", json={"session_id": PROJECT_ID, "trace_id": trace})
    assert created.json() == {"share_token": v1}
    other = httpx.request("DELETE", f"{server.url}/api/v2/runs/{trace}/share", json={"session_id": str(uuid.uuid4())})
    assert other.status_code == 204 and httpx.get(f"{server.url}/public/{v1}/run").status_code == 200


def test_sharing_a_run_outside_the_given_trace_or_project_is_a_404(server: Server, traced: Traced) -> None:
    async def wrong_trace(c: Client) -> Any:
        return await c.runs.share.create(traced.lone[0], session_id=PROJECT_ID, trace_id=traced.lone[1])

    with pytest.raises(NotFoundError):
        sdk(server, wrong_trace)
    body = {"session_id": str(uuid.uuid4()), "trace_id": traced.lone[0]}
    assert httpx.post(f"{server.url}/api/v2/runs/{traced.lone[0]}/share", json=body).status_code == 404
    assert httpx.get(f"{server.url}/runs/{traced.lone[0]}/share").json() is None


# Refusals and bad input


@pytest.mark.parametrize(
    ("path", "option", "value"),
    [
        ("threads/query", "ai_search", "long conversations"),
        ("threads/query", "sem_filter", "angry users"),
        ("threads/query", "thread_filter", "gt(turns, 3)"),
        ("traces/query", "ai_search", "slow traces"),
        ("traces/query", "sem_filter", "angry users"),
        ("traces/query", "min_feedback_modified_at", "2026-01-01T00:00:00Z"),
        ("traces/query", "max_feedback_modified_at", "2026-01-01T00:00:00Z"),
    ],
)
def test_options_tracehouse_cannot_honour_are_a_422(server: Server, path: str, option: str, value: str) -> None:
    response = post(server, path, {option: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"] == {"field": option, "unsupported": True}
    assert body["error"].startswith(f"{option} is not supported by tracehouse: "), body


@pytest.mark.parametrize("select", ["OP", "TURN_NUMBER"])
def test_thread_trace_selects_tracehouse_cannot_answer_are_a_422(server: Server, select: str) -> None:
    response = get(server, f"threads/{THREADS[0]}/traces", selects=["NAME", select])
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == {"field": "selects", "unsupported": True, "select": select}


def test_the_sdk_raises_for_a_refused_option(server: Server) -> None:
    async def semantic(c: Client) -> Any:
        return await all_pages(c.threads.query(project_id=PROJECT_ID, sem_filter="angry users"))

    with pytest.raises(UnprocessableEntityError, match="sem_filter is not supported"):
        sdk(server, semantic)


# A well-formed cursor whose position is a time ClickHouse cannot compare with.
FORGED_THREADS_CURSOR = encode_cursor('["0001-01-01T00:00:00+00:00", "x"]', Window(OLD_START, OLD_START))


@pytest.mark.parametrize(
    ("path", "body", "status", "field", "problem"),
    [
        ("threads/query", {"page_size": 0}, 422, "page_size", "greater than or equal to 1"),
        ("threads/query", {"page_size": 101}, 422, "page_size", "less than or equal to 100"),
        ("threads/query", {"project_id": None}, 422, "project_id", "Field required"),
        ("threads/query", {"limit": 5}, 422, "limit", "Extra inputs are not permitted"),
        ("threads/query", {"filter": "eq(name"}, 400, "filter", "position"),
        ("threads/query", {"tree_filter": "nope(1)"}, 400, "tree_filter", "position"),
        ("threads/query", {"cursor": "not-a-cursor"}, 400, "cursor", "pass back a cursor"),
        ("threads/query", {"cursor": FORGED_THREADS_CURSOR}, 400, "cursor", "pass back a cursor"),
        (
            "threads/query",
            {"min_start_time": "2026-01-02T00:00:00Z", "max_start_time": "2026-01-02T00:00:00Z"},
            422,
            "min_start_time",
            "not before",
        ),
        ("traces/query", {"page_size": 101}, 422, "page_size", "less than or equal to 100"),
        ("traces/query", {"project_id": "not-a-uuid"}, 422, "project_id", "valid UUID"),
        ("traces/query", {"project_ids": [PROJECT_ID]}, 422, "project_ids", "Extra inputs are not permitted"),
        ("traces/query", {"trace_ids": []}, 422, "trace_ids", "at least 1 item"),
        ("traces/query", {"selects": ["COLOUR"]}, 422, "selects.0", "'ID'"),
        ("traces/query", {"trace_filter": "eq(name"}, 400, "trace_filter", "position"),
        ("traces/query", {"cursor": "not-a-cursor"}, 400, "cursor", "pass back a cursor"),
        ("traces/query", {"max_start_time": "0001-01-01T00:00:00Z"}, 422, "max_start_time", "between 1900 and 2299"),
    ],
)
def test_bad_bodies_are_a_4xx_naming_the_field(
    server: Server, path: str, body: dict[str, Any], status: int, field: str, problem: str
) -> None:
    response = post(server, path, body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and error["detail"]["field"] == field and problem in error["error"], error


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        (f"threads/{THREADS[0]}/traces", {"page_size": "101"}, 422, "page_size"),
        (f"threads/{THREADS[0]}/traces", {"selects": "COLOUR"}, 422, "selects.0"),
        (f"threads/{THREADS[0]}/traces", {"filter": "eq(name"}, 400, "filter"),
        (f"threads/{THREADS[0]}/traces", {"trace_filter": "eq(name"}, 400, "trace_filter"),
        (f"threads/{THREADS[0]}/traces", {"cursor": "not-a-cursor"}, 400, "cursor"),
        ("traces/{trace}/runs", {"min_start_time": "2026-01-01T00:00:00Z"}, 422, "max_start_time"),
        ("traces/{trace}/runs", {"max_start_time": "2026-01-01T00:00:00Z"}, 422, "min_start_time"),
        (
            "traces/{trace}/runs",
            {"min_start_time": "2026-01-02T00:00:00Z", "max_start_time": "2026-01-01T00:00:00Z"},
            422,
            "min_start_time",
        ),
        ("traces/{trace}/runs", {"filter": "eq(name"}, 400, "filter"),
        ("traces/{trace}/runs", {"selects": "COLOUR"}, 422, "selects.0"),
        ("runs/{trace}/url", {}, 422, "trace_id"),
        ("runs/{trace}/url", {"trace_id": "{trace}", "start_time": "soon"}, 422, "start_time"),
    ],
)
def test_bad_parameters_are_a_4xx_naming_the_parameter(
    server: Server, traced: Traced, path: str, params: dict[str, str], status: int, field: str
) -> None:
    trace = traced.lone[0]
    params = {k: v.format(trace=trace) for k, v in params.items()}
    response = get(server, path.format(trace=trace), **params)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and error["detail"]["field"] == field, error


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("POST", {"session_id": PROJECT_ID}, "trace_id"),
        ("POST", {"session_id": PROJECT_ID, "trace_id": "x"}, "trace_id"),
        ("POST", None, "session_id"),
        ("DELETE", {}, "session_id"),
        ("DELETE", {"session_id": PROJECT_ID, "trace_id": PROJECT_ID}, "trace_id"),
    ],
)
def test_bad_share_bodies_are_a_422(
    server: Server, traced: Traced, method: str, body: dict[str, str] | None, field: str
) -> None:
    response = httpx.request(method, f"{server.url}/api/v2/runs/{traced.lone[0]}/share", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == field


def test_the_routes_take_the_sdks_query_parameters(server: Server) -> None:
    """Each GET route declares exactly the parameters of the SDK method that calls it (`Accept` is a header)."""
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    for path, params in [
        ("/api/v2/threads/{thread_id}/traces", thread_list_traces_params.ThreadListTracesParams),
        ("/api/v2/traces/{trace_id}/runs", trace_list_runs_params.TraceListRunsParams),
        ("/api/v2/runs/{run_id}/url", run_get_url_params.RunGetURLParams),
    ]:
        declared = {p["name"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}
        assert declared == set(params.__annotations__) - {"accept"}, path
