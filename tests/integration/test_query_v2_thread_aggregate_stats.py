"""`client.threads.aggregate_stats` of the real langsmith SDK (0.15.0) against a server holding threads whose turns
have known latencies, first tokens, errors, token counts, costs, details and feedback, one turn still running,
one thread three days old, a trace of no thread and the same thread id in another project. Every figure is
checked against an oracle computed from those turns by the documented definitions, for the default window, a
given window and each filter; the counts and sums are checked against the thread list's pages added up; refused
and bad options answer 4xx in the API's error shape."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args, get_type_hints

import httpx
import pytest
from langsmith import Client, UnprocessableEntityError
from langsmith.run_trees import RunTree
from langsmith.types import ThreadAggregateStatsResponse, thread_aggregate_stats_params

from query.thread_aggregate_stats_api import ThreadAggregateSelect
from schemas import DEFAULT_TENANT_ID
from schemas.projects import project_id_for_name
from tests.support import Server, all_pages, feedback_oracle, give_feedback, sdk, thread_turn, usage, wait_for

# The wait for the runs reads them with v1's list_runs.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed")
SUFFIX = uuid.uuid4().hex[:8]
PROJECT = f"sdk-v2-thread-aggregates-{SUFFIX}"
OTHER_PROJECT = f"sdk-v2-thread-aggregates-other-{SUFFIX}"
PROJECT_ID = str(project_id_for_name(DEFAULT_TENANT_ID, PROJECT))
A, B, C = (f"aggregates-{SUFFIX}-{name}" for name in "abc")
NOW = datetime.now(UTC).replace(microsecond=0)
BEGIN = NOW - timedelta(hours=1)
OLD = NOW - timedelta(days=3)  # outside the default window of a day
SELECTS: list[ThreadAggregateSelect] = list(get_args(ThreadAggregateSelect))
FIGURES = [s for s in SELECTS if s != "THREAD_FEEDBACK_STATS"]


@dataclass(frozen=True)
class Turn:
    thread: str
    start: datetime
    n: int  # its model call has usage(n); 0: a root still running, with no model call
    latency: float | None = None  # seconds; None while running
    first_token: float | None = None  # seconds after the start; None: it did not stream
    error: str | None = None


TURNS = [
    Turn(A, BEGIN, 1, 1.0, first_token=0.5),
    Turn(A, BEGIN + timedelta(minutes=1), 2, 2.0),
    Turn(A, BEGIN + timedelta(minutes=2), 3, 4.0, first_token=1.5),
    Turn(B, BEGIN + timedelta(minutes=3), 4, 8.0, first_token=0.25),
    Turn(B, BEGIN + timedelta(minutes=4), 5, 3.0, error="the model refused"),
    Turn(B, BEGIN + timedelta(minutes=5), 0),
    Turn(C, OLD, 6, 16.0, first_token=2.0),
]
RECENT = [t for t in TURNS if t.thread != C]


def quantile(values: list[float], level: float) -> float | None:
    """ClickHouse's quantileExact: the value at position floor(level * n) of the sorted values."""
    return sorted(values)[int(level * len(values))] if values else None


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def oracle(turns: list[Turn]) -> dict[str, Any]:
    """Every figure of `turns` by the definitions of docs/v2-api.md, keyed by the SDK's answer members."""
    models = [usage(t.n) for t in turns if t.n]
    done = [t for t in turns if t.latency is not None]
    streamed = [t.first_token for t in turns if t.first_token is not None]

    def total(key: str) -> Any:
        return sum(m[key] for m in models)

    def by_category(key: str) -> dict[str, float]:
        sums: dict[str, float] = {}
        for m in models:
            for category, value in m[key].items():
                sums[category] = sums.get(category, 0) + value
        return sums

    return {
        "thread_count": len({t.thread for t in turns}),
        "trace_count": len(turns),
        "prompt_tokens": total("input_tokens"),
        "completion_tokens": total("output_tokens"),
        "total_tokens": total("total_tokens"),
        "prompt_cost": total("input_cost") if models else None,
        "completion_cost": total("output_cost") if models else None,
        "total_cost": total("total_cost") if models else None,
        "prompt_token_details": by_category("input_token_details"),
        "completion_token_details": by_category("output_token_details"),
        "prompt_cost_details": by_category("input_cost_details"),
        "completion_cost_details": by_category("output_cost_details"),
        "error_rate": share(sum(bool(t.error) for t in turns), len(turns)),
        "streaming_rate": share(sum(t.first_token is not None for t in done), len(done)),
        "latency_p50_seconds": quantile([t.latency for t in done], 0.5),
        "latency_p99_seconds": quantile([t.latency for t in done], 0.99),
        "first_token_p50_seconds": quantile(streamed, 0.5),
        "first_token_p99_seconds": quantile(streamed, 0.99),
        "median_tokens": quantile([usage(t.n)["total_tokens"] if t.n else 0 for t in turns], 0.5),
    }


@dataclass(frozen=True)
class Traced:
    roots: dict[Turn, RunTree]
    models: dict[Turn, RunTree]  # the model call of every turn but the running one
    feedback: dict[str, list[dict[str, Any]]]  # thread id -> the feedback given on its runs


@pytest.fixture(scope="module")
def traced(client: Client) -> Traced:
    roots: dict[Turn, RunTree] = {}
    models: dict[Turn, RunTree] = {}
    for t in TURNS:
        if t.latency is None:
            roots[t] = RunTree(
                name="turn",
                run_type="chain",
                inputs={"turn": t.n},
                project_name=PROJECT,
                ls_client=client,
                start_time=t.start,
                extra={"metadata": {"thread_id": t.thread}},
            )
            roots[t].post()  # and never ended
        else:
            roots[t], models[t] = thread_turn(
                client, PROJECT, t.thread, t.start, t.latency, t.n, first_token=t.first_token, error=t.error
            )
    lone, _ = thread_turn(client, PROJECT, "", BEGIN, 32.0, 8, error="no thread")  # an empty id names no thread
    elsewhere, _ = thread_turn(client, OTHER_PROJECT, A, BEGIN, 64.0, 9, error="another project's")
    client.flush()
    every, ended = 2 * len(TURNS) - 1 + 2 + 2, 2 * len(TURNS) - 2 + 2 + 2
    wait_for(
        lambda: (
            [
                r.end_time is not None for name in (PROJECT, OTHER_PROJECT) for r in client.list_runs(project_name=name)
            ].count(True)
            == ended
            and sum(1 for name in (PROJECT, OTHER_PROJECT) for _ in client.list_runs(project_name=name)) == every
        ),
        timeout=60,
        what="every run stored, every turn but one finished",
    )
    a1, a2, a3, b1, b2, running, c1 = TURNS
    feedback = {
        A: [
            {"run": roots[a1], "key": "quality", "score": 0.5, "comment": "fine"},
            {"run": models[a3], "key": "quality", "score": 1.0},
            {"run": roots[a2], "key": "tone", "value": "polite"},
        ],
        B: [
            {"run": models[b1], "key": "quality", "score": 0.0, "comment": "wrong"},
            {"run": roots[b2], "key": "tone", "value": "curt"},
            {"run": roots[running], "key": "tone", "error": True},
        ],
        C: [{"run": roots[c1], "key": "quality", "score": 0.75}],
    }
    outside = [  # runs of no thread, or of another project's thread: never counted
        {"run": lone, "key": "quality", "score": 0.25},
        {"run": elsewhere, "key": "quality", "score": 0.25},
    ]
    give_feedback(client, [*(item for items in feedback.values() for item in items), *outside])
    return Traced(roots, models, feedback)


def aggregate(server: Server, select: list[ThreadAggregateSelect], **params: Any) -> ThreadAggregateStatsResponse:
    return sdk(server, lambda c: c.threads.aggregate_stats(project_id=PROJECT_ID, select=select, **params))


def assert_figures(got: ThreadAggregateStatsResponse, turns: list[Turn]) -> None:
    expected = oracle(turns)
    answered = got.model_dump(exclude={"thread_feedback_stats"})
    assert set(answered) == set(expected)
    for member, value in expected.items():
        assert answered[member] == (value if value is None else pytest.approx(value)), member


def test_every_figure_of_the_threads_active_in_the_default_window(server: Server, traced: Traced) -> None:
    got = aggregate(server, FIGURES)
    assert_figures(got, RECENT)
    # The oracle's figures, by hand: threads A and B, their six traces, one failed, three of the five ended streamed.
    assert (got.thread_count, got.trace_count, got.total_tokens) == (2, 6, 225)
    assert (got.error_rate, got.streaming_rate) == pytest.approx((1 / 6, 3 / 5))
    assert (got.latency_p50_seconds, got.latency_p99_seconds) == (3.0, 8.0)  # of 1, 2, 3, 4, 8
    assert (got.first_token_p50_seconds, got.first_token_p99_seconds) == (0.5, 1.5)  # of 0.25, 0.5, 1.5
    assert got.median_tokens == 45  # of 0, 15, 30, 45, 60, 75: the upper middle one
    assert got.prompt_token_details == {"cache_read": 30, "audio": 0}
    assert got.thread_feedback_stats is None


def test_thread_feedback_stats_are_those_of_the_threads_runs_per_key(server: Server, traced: Traced) -> None:
    got = aggregate(server, ["THREAD_FEEDBACK_STATS"]).thread_feedback_stats
    expected = feedback_oracle([*traced.feedback[A], *traced.feedback[B]])
    assert set(got) == set(expected) == {"quality", "tone"}
    for key, stat in got.items():
        oracle_stat = expected[key]
        assert (stat.n, stat.errors, stat.values) == (oracle_stat["n"], oracle_stat["errors"], oracle_stat["values"])
        assert (stat.avg, stat.min, stat.max) == pytest.approx(
            (oracle_stat["avg"], oracle_stat["min"], oracle_stat["max"])
        )
        assert sorted(stat.comments) == sorted(oracle_stat["comments"].elements())
        assert stat.contains_thread_feedback is False
    assert (got["quality"].n, got["tone"].n, got["tone"].errors) == (3, 3, 1)  # neither C's nor the lone run's


def test_the_counts_and_sums_are_the_thread_lists_added_up(server: Server, traced: Traced) -> None:
    got = aggregate(server, ["THREAD_COUNT", "TRACE_COUNT", "TOTAL_TOKENS", "TOTAL_COST", "ERROR_RATE"])
    pages = sdk(server, lambda c: all_pages(c.threads.query(project_id=PROJECT_ID, page_size=1)))
    threads = [thread for page in pages for thread in page]
    assert got.thread_count == len(threads) == 2
    assert got.trace_count == sum(t.count for t in threads)
    assert got.total_tokens == sum(t.total_tokens for t in threads)
    assert got.total_cost == pytest.approx(sum(t.total_cost for t in threads))
    assert got.error_rate * got.trace_count == pytest.approx(sum(t.num_errored_turns for t in threads))


def test_a_given_window_covers_the_threads_active_in_it(server: Server, traced: Traced) -> None:
    assert_figures(aggregate(server, FIGURES, min_start_time=OLD - timedelta(minutes=1)), TURNS)
    a1, a2, a3 = TURNS[:3]
    before_a3 = aggregate(server, FIGURES, min_start_time=BEGIN, max_start_time=a3.start)  # exclusive
    assert_figures(before_a3, [a1, a2])
    assert (before_a3.thread_count, before_a3.trace_count) == (1, 2)
    running = TURNS[5]
    only_running = aggregate(server, FIGURES, min_start_time=running.start)  # a root that has not ended
    assert_figures(only_running, [running])
    assert (only_running.trace_count, only_running.error_rate, only_running.median_tokens) == (1, 0.0, 0)
    assert only_running.streaming_rate is only_running.latency_p50_seconds is only_running.latency_p99_seconds is None
    # The thread list and the one-thread stats read the same quantiles of no ended root: null, not 0.
    pages = sdk(server, lambda c: all_pages(c.threads.query(project_id=PROJECT_ID, min_start_time=running.start)))
    (listed,) = [thread for page in pages for thread in page]
    assert (listed.count, listed.latency_p50, listed.latency_p99) == (1, None, None)
    alone = sdk(
        server,
        lambda c: c.threads.stats(
            listed.thread_id,
            session_id=PROJECT_ID,
            selects=["TURNS", "LATENCY_P50"],
            filter=f'gte(start_time, "{running.start.isoformat()}")',
        ),
    )
    assert (alone.turns, alone.latency_p50_seconds) == (1, None)


SELECTING: list[tuple[str, Callable[[Traced], dict[str, str]], str]] = [
    ("filter on a root", lambda t: {"filter": f'eq(id, "{t.roots[TURNS[1]].id}")'}, A),
    ("trace_filter", lambda t: {"trace_filter": 'eq(status, "error")'}, B),
    ("tree_filter on a model call", lambda t: {"tree_filter": f'eq(id, "{t.models[TURNS[3]].id}")'}, B),
]


@pytest.mark.parametrize(("name", "filters", "thread"), SELECTING, ids=[s[0] for s in SELECTING])
def test_filters_select_threads_and_every_trace_of_a_selected_thread_counts(
    server: Server, traced: Traced, name: str, filters: Callable[[Traced], dict[str, str]], thread: str
) -> None:
    got = aggregate(server, SELECTS, **filters(traced))
    turns = [t for t in RECENT if t.thread == thread]
    assert_figures(got, turns)
    assert (got.thread_count, got.trace_count) == (1, 3)  # one trace matched; the thread's three count
    assert {key: stat.n for key, stat in got.thread_feedback_stats.items()} == {
        key: stat["n"] for key, stat in feedback_oracle(traced.feedback[thread]).items()
    }


def test_no_selected_thread_sums_nothing(server: Server, traced: Traced) -> None:
    got = aggregate(server, SELECTS, trace_filter='eq(name, "no such run")')
    assert_figures(got, [])
    assert (got.thread_count, got.trace_count, got.total_tokens) == (0, 0, 0)
    assert (got.total_cost, got.error_rate) == (None, None)
    assert (got.latency_p50_seconds, got.median_tokens, got.prompt_cost_details) == (None, None, {})
    assert got.thread_feedback_stats == {}


def test_only_the_selected_figures_are_answered(server: Server, traced: Traced) -> None:
    body = {"project_id": PROJECT_ID, "select": ["TRACE_COUNT", "FIRST_TOKEN_P99", "COMPLETION_COST_DETAILS"]}
    answer = httpx.post(f"{server.url}/api/v2/threads/stats", json=body).json()
    assert set(answer) == {"trace_count", "first_token_p99_seconds", "completion_cost_details"}
    assert (answer["trace_count"], answer["first_token_p99_seconds"]) == (6, 1.5)
    assert answer["completion_cost_details"] == pytest.approx({"reasoning": 0.003})


def test_thread_filter_is_refused_naming_it(server: Server) -> None:
    with pytest.raises(UnprocessableEntityError, match="thread_filter is not supported"):
        aggregate(server, ["THREAD_COUNT"], thread_filter="gt(count, 1)")
    body = {"project_id": PROJECT_ID, "select": ["THREAD_COUNT"], "thread_filter": "gt(count, 1)"}
    response = httpx.post(f"{server.url}/api/v2/threads/stats", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == {"field": "thread_filter", "unsupported": True}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"project_id": PROJECT_ID}, 422, "select"),
        ({"project_id": PROJECT_ID, "select": []}, 422, "select"),
        ({"project_id": PROJECT_ID, "select": ["THREAD_COUNT", "COLOUR"]}, 422, "select.1"),
        ({"select": ["THREAD_COUNT"]}, 422, "project_id"),
        ({"project_id": PROJECT_ID, "select": ["THREAD_COUNT"], "page_size": 5}, 422, "page_size"),
        ({"project_id": PROJECT_ID, "select": ["THREAD_COUNT"], "trace_filter": "eq(name"}, 400, "trace_filter"),
        (
            {"project_id": PROJECT_ID, "select": ["THREAD_COUNT"], "min_start_time": NOW.isoformat()},
            422,
            "min_start_time",
        ),
    ],
)
def test_bad_bodies_are_a_4xx_naming_the_member(server: Server, body: dict[str, Any], status: int, field: str) -> None:
    response = httpx.post(f"{server.url}/api/v2/threads/stats", json={"max_start_time": NOW.isoformat(), **body})
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and error["detail"]["field"] == field, error


def test_the_route_takes_the_sdks_body_and_answers_its_members(server: Server) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    schema = paths["/api/v2/threads/stats"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    hints = get_type_hints(thread_aggregate_stats_params.ThreadAggregateStatsParams)
    assert set(schema["properties"]) | {"thread_filter"} == set(hints)
    (sdk_selects,) = get_args(hints["select"])
    assert list(get_args(sdk_selects)) == SELECTS
    body = {"project_id": PROJECT_ID, "select": SELECTS}
    answer = httpx.post(f"{server.url}/api/v2/threads/stats", json=body).json()
    assert set(answer) == set(ThreadAggregateStatsResponse.model_fields)
