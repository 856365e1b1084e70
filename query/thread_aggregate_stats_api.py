"""`POST /api/v2/threads/stats` (`client.threads.aggregate_stats`): figures over a project's threads, the selected
ones only.

The threads are those the thread list (`POST /api/v2/threads/query`) pages through for the same window and
filters (`query.thread_selection`), and the figures cover their runs in the window, so that the counts and sums
here are those of the list's pages added up. A trace is a root among those runs; trace figures are computed per
trace in ClickHouse (`RunReader.thread_totals`) and then over the traces:

* THREAD_COUNT: the threads. TRACE_COUNT: their traces.
* PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS and the three costs: sums over every run; a cost is null when
  no run has one. The four *_DETAILS: per category, the sum over every run.
* ERROR_RATE: the share of traces whose root failed (status error), the thread list's errored turns; null
  without traces. A trace whose root succeeded despite a failed child did not fail as a turn of the thread.
* STREAMING_RATE: the share of completed traces (the root has ended) in which a run received a first token.
* LATENCY_P50/P99: exact quantiles of the completed traces' root latencies (end - start), in seconds.
* FIRST_TOKEN_P50/P99: exact quantiles, over the traces with a first token, of the time from the root's start to
  the earliest first token of the trace's runs, in seconds.
* MEDIAN_TOKENS: the exact median of the traces' total tokens (summed over each trace's runs).
* THREAD_FEEDBACK_STATS: the feedback of every run, per key. tracehouse keeps feedback of runs, not of threads,
  so `contains_thread_feedback` is false.

The quantiles are ClickHouse's exact ones (`quantileExact`): the value at position floor(level * n) of the n
sorted values, so that the median of an even count is the upper of the two middle values, and always a value
that occurred (MEDIAN_TOKENS is a whole number of tokens, as the SDK types it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import Field

from query.run_reads import CurrentTenant, JsonBody, RunReads, json_response
from query.thread_figures import DETAILS, LATENCY_MEMBERS, SUMS, feedback_stats
from query.thread_selection import THREAD_FILTER_REFUSED, ThreadSelection
from query.threads import latency_quantiles
from query.v2_requests import openapi_body, parse_body, resolve_window

ThreadAggregateSelect = Literal[
    "THREAD_COUNT",
    "TRACE_COUNT",
    "TOTAL_TOKENS",
    "TOTAL_COST",
    "ERROR_RATE",
    "STREAMING_RATE",
    "LATENCY_P50",
    "LATENCY_P99",
    "MEDIAN_TOKENS",
    "FIRST_TOKEN_P50",
    "FIRST_TOKEN_P99",
    "PROMPT_TOKENS",
    "COMPLETION_TOKENS",
    "PROMPT_COST",
    "COMPLETION_COST",
    "PROMPT_TOKEN_DETAILS",
    "COMPLETION_TOKEN_DETAILS",
    "PROMPT_COST_DETAILS",
    "COMPLETION_COST_DETAILS",
    "THREAD_FEEDBACK_STATS",
]
# The members of `types/thread_aggregate_stats_response.py` not named as their select is.
_MEMBER_OF = {
    **LATENCY_MEMBERS,
    "FIRST_TOKEN_P50": "first_token_p50_seconds",
    "FIRST_TOKEN_P99": "first_token_p99_seconds",
}
# Every select but THREAD_FEEDBACK_STATS, from a `RunReader.thread_totals` row.
_FIGURE: dict[str, Callable[[dict[str, Any]], Any]] = {
    **{
        name.upper(): (lambda row, name=name: row[name])
        for name in ("thread_count", "trace_count", "error_rate", "streaming_rate", "median_tokens", *SUMS, *DETAILS)
    },
    "LATENCY_P50": lambda row: latency_quantiles(row["latency"])[0],
    "LATENCY_P99": lambda row: latency_quantiles(row["latency"])[1],
    "FIRST_TOKEN_P50": lambda row: latency_quantiles(row["first_token"])[0],
    "FIRST_TOKEN_P99": lambda row: latency_quantiles(row["first_token"])[1],
}


class ThreadAggregateStats(ThreadSelection):
    """The body of `POST /api/v2/threads/stats` (`types/thread_aggregate_stats_params.py`)."""

    select: list[ThreadAggregateSelect] = Field(min_length=1)


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(prefix="/api/v2", tags=["threads v2"])

    @api.post(
        "/threads/stats",
        summary="Figures over a project's threads active in a start-time window, the selected ones",
        openapi_extra=openapi_body(ThreadAggregateStats),
    )
    def aggregate_stats(tenant: CurrentTenant, body: JsonBody = None) -> Response:
        q = parse_body(ThreadAggregateStats, body if body is not None else {}, THREAD_FILTER_REFUSED)
        window = resolve_window(q.min_start_time, q.max_start_time, None, datetime.now(UTC), max_exclusive=True)
        where, params = q.runs_where(reads.reader, tenant.id, window)
        answer: dict[str, Any] = {}
        if any(select in _FIGURE for select in q.select):
            details = any(select.endswith("_DETAILS") for select in q.select)
            row = reads.reader.thread_totals(tenant.id, where=where, params=params, details=details)
            answer.update({_MEMBER_OF.get(s, s.lower()): _FIGURE[s](row) for s in q.select if s in _FIGURE})
        if "THREAD_FEEDBACK_STATS" in q.select:
            answer["thread_feedback_stats"] = feedback_stats(reads, tenant.id, where, params)
        return json_response(answer)

    return api
