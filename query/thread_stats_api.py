"""`GET /api/v2/threads/{thread_id}/stats` (`client.threads.stats`): a thread's aggregates, the selected ones only.

The figures are those of the thread list (`RunReader.threads`) for one thread: turns, start and end times and
latencies from its roots, tokens and costs from every run carrying the thread id, plus the per-category sums of
the token and cost details, which the list does not read. `filter` selects roots, through the v1 search, and the
figures then cover the runs of the selected traces. Feedback stats are those of the same runs, per key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from query.run_reads import CurrentTenant, RunReads, json_response
from query.run_search import RunQuery
from query.serialize import iso
from query.thread_figures import DETAILS, LATENCY_MEMBERS, SUMS, feedback_stats
from query.threads import latency_quantiles, thread_filter

ThreadStatsSelect = Literal[
    "TURNS",
    "FIRST_START_TIME",
    "LAST_START_TIME",
    "LAST_END_TIME",
    "LATENCY_P50",
    "LATENCY_P99",
    "PROMPT_TOKENS",
    "PROMPT_COST",
    "COMPLETION_TOKENS",
    "COMPLETION_COST",
    "TOTAL_TOKENS",
    "TOTAL_COST",
    "PROMPT_TOKEN_DETAILS",
    "COMPLETION_TOKEN_DETAILS",
    "PROMPT_COST_DETAILS",
    "COMPLETION_COST_DETAILS",
    "FEEDBACK_STATS",
]
# Every select but FEEDBACK_STATS, from a `RunReader.threads` row.
_FIGURE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "TURNS": lambda row: row["trace_count"],
    "FIRST_START_TIME": lambda row: iso(row["first_start_time"]),
    "LAST_START_TIME": lambda row: iso(row["last_start_time"]),
    "LAST_END_TIME": lambda row: iso(row["last_end_time"]),
    "LATENCY_P50": lambda row: latency_quantiles(row["latency"])[0],
    "LATENCY_P99": lambda row: latency_quantiles(row["latency"])[1],
    **{name.upper(): (lambda row, name=name: row[name]) for name in SUMS},
    **{name.upper(): (lambda row, name=name: {"raw": row[name]}) for name in DETAILS},
}
# The row of a thread none of whose traces is selected: what summing no run gives.
_NO_TRACES: dict[str, Any] = {
    "trace_count": 0,
    "first_start_time": None,
    "last_start_time": None,
    "last_end_time": None,
    "latency": None,
    **{name: 0 if name.endswith("tokens") else None for name in SUMS},
    **{name: {} for name in DETAILS},
}


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(prefix="/api/v2", tags=["threads v2"])

    @api.get("/threads/{thread_id}/stats", summary="Aggregates of one thread of a project, the selected ones")
    def thread_stats(
        tenant: CurrentTenant,
        thread_id: str,
        selects: Annotated[list[ThreadStatsSelect], Query(min_length=1)],
        session_id: uuid.UUID,
        filter: Annotated[str | None, Query()] = None,
    ) -> Response:
        conditions = "session_id = {ts_session:UUID} AND thread_id = {ts_thread:String}"
        params: dict[str, Any] = {"ts_session": session_id, "ts_thread": thread_id}
        if filter:
            roots = RunQuery(session=[session_id], is_root=True, filter=thread_filter(thread_id, filter=filter))
            built = reads.search.where(tenant.id, roots)
            roots_where, roots_params = built if built is not None else ("0", {})
            conditions += (
                f" AND trace_id IN (SELECT id FROM runs FINAL WHERE tenant_id = {{tenant:UUID}} AND {roots_where})"
            )
            params.update(roots_params)
        answer: dict[str, Any] = {}
        if any(select != "FEEDBACK_STATS" for select in selects):
            details = any(select.endswith("_DETAILS") for select in selects)
            found = reads.reader.threads(
                tenant.id, where=conditions, params=params, having="1", limit=1, previews=False, details=details
            )
            row = found[0] if found else _NO_TRACES
            answer.update({LATENCY_MEMBERS.get(s, s.lower()): _FIGURE[s](row) for s in selects if s in _FIGURE})
        if "FEEDBACK_STATS" in selects:
            answer["feedback_stats"] = feedback_stats(reads, tenant.id, conditions, params)
        return json_response(answer)

    return api
