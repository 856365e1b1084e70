"""`client.threads.stats` of the real langsmith SDK (0.15.0) against a server holding a thread whose turns have
known start and end times, token counts, costs, token and cost details and feedback: every figure is checked
against those numbers, with and without a filter, and bad parameters answer 422 in the API's error shape."""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args, get_type_hints

import httpx
import pytest
from langsmith import Client, UnprocessableEntityError
from langsmith.run_trees import RunTree
from langsmith.types import ThreadStats, thread_stats_params

from query.thread_stats_api import ThreadStatsSelect
from schemas import DEFAULT_TENANT_ID
from schemas.projects import project_id_for_name
from tests.support import Server, feedback_oracle, give_feedback, sdk, thread_turn, usage, wait_for

# The wait for the runs reads them with v1's list_runs.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed")
SUFFIX = uuid.uuid4().hex[:8]
PROJECT = f"sdk-v2-thread-stats-{SUFFIX}"
OTHER_PROJECT = f"sdk-v2-thread-stats-other-{SUFFIX}"
PROJECT_ID = str(project_id_for_name(DEFAULT_TENANT_ID, PROJECT))
THREAD = f"stats-{SUFFIX}"
OTHER_THREAD = f"stats-other-{SUFFIX}"
LATENCIES = (1.0, 2.0, 4.0)  # seconds, of the thread's three turns
BEGIN = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
SELECTS: list[ThreadStatsSelect] = list(get_args(ThreadStatsSelect))


@dataclass(frozen=True)
class Traced:
    roots: list[RunTree]  # the thread's turns, oldest first
    models: list[RunTree]  # the model call of each turn
    feedback: list[dict[str, Any]]  # what was given on the thread's runs


@pytest.fixture(scope="module")
def traced(client: Client) -> Traced:
    turns = [
        thread_turn(client, PROJECT, THREAD, BEGIN + timedelta(minutes=i), latency, i + 1)
        for i, latency in enumerate(LATENCIES)
    ]
    roots, models = [root for root, _ in turns], [model for _, model in turns]
    other, _ = thread_turn(client, PROJECT, OTHER_THREAD, BEGIN, 8.0, 7)  # another thread of the project
    # the same thread id in another project
    elsewhere, _ = thread_turn(client, OTHER_PROJECT, THREAD, BEGIN + timedelta(minutes=10), 16.0, 9)
    client.flush()
    wait_for(
        lambda: (
            sum(1 for name in (PROJECT, OTHER_PROJECT) for r in client.list_runs(project_name=name) if r.end_time)
            == 2 * (len(turns) + 2)
        ),
        timeout=60,
        what="every run stored and finished",
    )
    feedback = [
        {"run": roots[0], "key": "quality", "score": 0.5, "comment": "fine"},
        {"run": roots[2], "key": "quality", "score": 1.0},
        {"run": models[1], "key": "quality", "score": 0.0, "comment": "wrong"},
        {"run": models[2], "key": "tone", "value": "polite"},
        {"run": roots[1], "key": "tone", "value": "polite"},
        {"run": roots[1], "key": "tone", "value": "curt"},
        {"run": models[0], "key": "tone", "error": True},
    ]
    outside = [  # feedback on runs outside the thread, which the stats leave out
        {"run": other, "key": "quality", "score": 0.25},
        {"run": elsewhere, "key": "quality", "score": 0.25},
    ]
    give_feedback(client, [*feedback, *outside])
    return Traced(roots, models, feedback)


def stats(server: Server, selects: list[ThreadStatsSelect], **params: Any) -> ThreadStats:
    return sdk(server, lambda c: c.threads.stats(THREAD, selects=selects, session_id=PROJECT_ID, **params))


def test_the_figures_are_the_sums_and_spans_of_the_threads_turns(server: Server, traced: Traced) -> None:
    got = stats(server, [s for s in SELECTS if s != "FEEDBACK_STATS"])
    turns = range(1, len(LATENCIES) + 1)
    assert got.turns == 3
    assert got.first_start_time == traced.roots[0].start_time
    assert got.last_start_time == traced.roots[-1].start_time
    assert got.last_end_time == traced.roots[-1].end_time
    assert got.latency_p50_seconds == statistics.median(LATENCIES)
    assert got.latency_p99_seconds == max(LATENCIES)
    assert (got.prompt_tokens, got.completion_tokens, got.total_tokens) == (60, 30, 90)
    assert got.prompt_cost == pytest.approx(sum(usage(t)["input_cost"] for t in turns))
    assert got.completion_cost == pytest.approx(0.012)
    assert got.total_cost == pytest.approx(0.018)
    assert got.prompt_token_details.raw == {"cache_read": 12, "audio": 0}
    assert got.completion_token_details.raw == {"reasoning": 6}
    assert got.prompt_cost_details.raw == pytest.approx({"cache_read": 0.0006})
    assert got.completion_cost_details.raw == pytest.approx({"reasoning": 0.0012})
    assert got.feedback_stats is None


def test_feedback_stats_are_those_of_the_threads_runs_per_key(server: Server, traced: Traced) -> None:
    got = stats(server, ["FEEDBACK_STATS"]).feedback_stats
    expected = feedback_oracle(traced.feedback)
    assert set(got) == set(expected) == {"quality", "tone"}
    for key, stat in got.items():
        oracle = expected[key]
        assert (stat.n, stat.errors, stat.values) == (oracle["n"], oracle["errors"], oracle["values"])
        assert (stat.avg, stat.min, stat.max) == pytest.approx((oracle["avg"], oracle["min"], oracle["max"]))
        assert stat.stdev == pytest.approx(oracle["stdev"])
        assert sorted(stat.comments) == sorted(oracle["comments"].elements())
        assert stat.contains_thread_feedback is False
    assert (got["quality"].n, got["tone"].n, got["tone"].errors) == (3, 4, 1)
    assert got["tone"].values == {"polite": 2, "curt": 1}


def test_only_the_selected_figures_are_answered(server: Server, traced: Traced) -> None:
    params = {"session_id": PROJECT_ID, "selects": ["TURNS", "LATENCY_P99", "PROMPT_COST_DETAILS"]}
    body = httpx.get(f"{server.url}/api/v2/threads/{THREAD}/stats", params=params).json()
    assert set(body) == {"turns", "latency_p99_seconds", "prompt_cost_details"}
    assert (body["turns"], body["latency_p99_seconds"]) == (3, 4.0)
    assert body["prompt_cost_details"]["raw"] == pytest.approx({"cache_read": 0.0006})


def test_a_filter_narrows_the_turns_aggregated(server: Server, traced: Traced) -> None:
    second = traced.roots[1]
    got = stats(server, SELECTS, filter=f'eq(trace_id, "{second.id}")')
    assert (got.turns, got.total_tokens, got.latency_p50_seconds) == (1, 30, LATENCIES[1])
    assert got.first_start_time == got.last_start_time == second.start_time and got.last_end_time == second.end_time
    assert got.prompt_token_details.raw == {"cache_read": 4, "audio": 0}
    assert got.total_cost == pytest.approx(0.006)
    assert set(got.feedback_stats) == {"quality", "tone"}  # the model call's "quality" and the root's "tone"
    assert (got.feedback_stats["quality"].n, got.feedback_stats["tone"].n) == (1, 2)
    later = stats(server, ["TURNS", "TOTAL_TOKENS"], filter=f'gt(start_time, "{second.start_time.isoformat()}")')
    assert (later.turns, later.total_tokens) == (1, 45)


def test_a_thread_with_no_selected_turn_sums_nothing(server: Server, traced: Traced) -> None:
    got = stats(server, SELECTS, filter='eq(name, "no such run")')
    assert (got.turns, got.total_tokens, got.total_cost, got.first_start_time, got.latency_p50_seconds) == (
        0,
        0,
        None,
        None,
        None,
    )
    assert got.completion_token_details.raw == {} and got.feedback_stats == {}
    unknown = sdk(server, lambda c: c.threads.stats("no-such-thread", selects=["TURNS"], session_id=PROJECT_ID))
    assert unknown.turns == 0


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"session_id": PROJECT_ID}, 422, "selects"),
        ({"selects": "TURNS"}, 422, "session_id"),
        ({"selects": "TURNS", "session_id": "not-a-uuid"}, 422, "session_id"),
        ({"selects": ["TURNS", "COLOUR"], "session_id": PROJECT_ID}, 422, "selects.1"),
        ({"selects": "TURNS", "session_id": PROJECT_ID, "filter": "eq(name"}, 400, "filter"),
    ],
)
def test_bad_parameters_are_a_4xx_naming_the_parameter(
    server: Server, params: dict[str, Any], status: int, field: str
) -> None:
    response = httpx.get(f"{server.url}/api/v2/threads/{THREAD}/stats", params=params)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and error["detail"]["field"] == field, error


def test_the_sdk_raises_for_an_unknown_select(server: Server) -> None:
    with pytest.raises(UnprocessableEntityError, match="selects"):
        stats(server, ["TURNS", "COLOUR"])  # type: ignore[list-item]


def test_the_route_takes_the_sdks_query_parameters(server: Server) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    route = paths["/api/v2/threads/{thread_id}/stats"]["get"]
    declared = {p["name"] for p in route["parameters"] if p["in"] == "query"}
    hints = get_type_hints(thread_stats_params.ThreadStatsParams)
    assert declared == set(hints)
    (sdk_selects,) = get_args(hints["selects"])
    assert list(get_args(sdk_selects)) == SELECTS
