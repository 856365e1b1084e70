"""The v2 threads routes of the generated SDK client: `POST /api/v2/threads/query` (`client.threads.query`, which
replaces `list_threads`) and `GET /api/v2/threads/{thread_id}/traces` (`client.threads.list_traces`, which
replaces `read_thread`).

Threads are what v1's threads are (`query.threads`): the runs of a project grouped by `thread_id`, aggregated by
`RunReader.threads`. The filters select root runs through the v1 search, as the v1 SDK's `list_threads` did: a
thread is listed when one of its roots in the window matches. A thread's traces are its roots, read through the
v1 search too, oldest first (the conversation in order).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from query.filter import Params
from query.run_reads import CurrentTenant, JsonBody, RunReads, json_response
from query.run_search import RunQuery
from query.runs_v2_api import V2Runs, base_url
from query.runs_v2_query import StartedBy
from query.runs_v2_shape import RunShape, SelectField, preview
from query.serialize import iso
from query.thread_selection import THREAD_FILTER_REFUSED, ThreadSelection
from query.threads import latency_quantiles, thread_filter, threads_after
from query.v2_requests import (
    NEEDS_A_MODEL,
    Window,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
    openapi_body,
    parse_body,
    resolve_window,
)
from schemas import ApiError, jsonutil
from schemas.runs import EARLIEST_TIME, LATEST_TIME

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

UNSUPPORTED = {**NEEDS_A_MODEL, **THREAD_FILTER_REFUSED}

ThreadTraceSelect = Literal[
    "THREAD_ID",
    "TRACE_ID",
    "OP",
    "PROMPT_TOKENS",
    "COMPLETION_TOKENS",
    "TOTAL_TOKENS",
    "START_TIME",
    "END_TIME",
    "LATENCY",
    "FIRST_TOKEN_TIME",
    "INPUTS_PREVIEW",
    "OUTPUTS_PREVIEW",
    "INPUTS",
    "OUTPUTS",
    "ERROR",
    "PROMPT_COST",
    "COMPLETION_COST",
    "TOTAL_COST",
    "PROMPT_TOKEN_DETAILS",
    "COMPLETION_TOKEN_DETAILS",
    "PROMPT_COST_DETAILS",
    "COMPLETION_COST_DETAILS",
    "NAME",
    "ERROR_PREVIEW",
    "TURN_NUMBER",
]
UNSUPPORTED_SELECTS = {
    "OP": "LangSmith's numeric run-type codes are not published; the runs API returns run_type",
    "TURN_NUMBER": "turn numbers are not computed; traces come oldest first, so a client can count them",
}
# The run select that answers each supported thread-trace select: the one of the same name but for LATENCY.
RUN_SELECT_OF: dict[str, SelectField] = {
    "LATENCY": "LATENCY_SECONDS",
    **{s: s for s in get_args(ThreadTraceSelect) if s not in UNSUPPORTED_SELECTS and s != "LATENCY"},
}


class ThreadQueryV2(ThreadSelection):
    """The body of `POST /api/v2/threads/query` (`types/thread_query_params.py`)."""

    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None


def _encode_after(row: dict[str, Any]) -> str:
    return jsonutil.dumps_str([iso(row["last_start_time"]), row["thread_id"]])


def _decode_after(after: str) -> tuple[datetime, str]:
    try:
        text, thread_id = jsonutil.loads(after)
        last = datetime.fromisoformat(text)
        if last.tzinfo is None or not EARLIEST_TIME <= last <= LATEST_TIME or not isinstance(thread_id, str):
            raise ValueError("not a cursor")
    except (ValueError, TypeError):
        raise invalid_cursor() from None
    return last, thread_id


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(prefix="/api/v2", tags=["threads v2"])
    runs = V2Runs(reads)

    def trace_ends(
        tenant_id: uuid.UUID, q: ThreadQueryV2, window: Window, threads: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Per thread, its first and last trace in the window and the error of its last failing one, which the
        aggregation does not return: one v1 search for the roots of the page's threads, narrow columns only."""
        if not threads:
            return {}
        in_threads = f"in(thread_id, {json.dumps([t['thread_id'] for t in threads], ensure_ascii=False)})"
        roots = RunQuery(
            session=[q.project_id], is_root=True, start_time=window.start, filter=in_threads, select=[], order="asc"
        )
        every = sum(t["trace_count"] for t in threads)
        found = StartedBy(reads.reader, window.end).page(tenant_id, roots.model_copy(update={"limit": every}))
        ends: dict[str, dict[str, Any]] = {}
        for row in found.rows:
            end = ends.setdefault(row["thread_id"], {"first_trace_id": str(row["id"]), "last_error": None})
            end["last_trace_id"] = str(row["id"])
            if row["status"] == "error":
                end["last_error"] = preview(reads.serializer.payload(row, "error"))
        return ends

    def thread(row: dict[str, Any], ends: dict[str, Any]) -> dict[str, Any]:
        """A `types/thread.py` Thread. Feedback stats and token and cost details are not aggregated per thread."""
        p50, p99 = latency_quantiles(row["latency"])
        first = {"inputs": row["first_inputs"], "payload_refs": row["first_refs"], "id": row["thread_id"]}
        last = {"outputs": row["last_outputs"], "payload_refs": row["last_refs"], "id": row["thread_id"]}
        return {
            "thread_id": row["thread_id"],
            "count": row["trace_count"],
            "min_start_time": iso(row["first_start_time"]),
            "max_start_time": iso(row["last_start_time"]),
            "start_time": iso(row["last_start_time"]),
            "first_trace_id": ends.get("first_trace_id"),
            "last_trace_id": ends.get("last_trace_id"),
            "trace_id": ends.get("last_trace_id"),
            "first_inputs": preview(reads.serializer.payload(first, "inputs", raw=True)),
            "last_outputs": preview(reads.serializer.payload(last, "outputs", raw=True)),
            "last_error": ends.get("last_error"),
            "num_errored_turns": row["error_count"],
            "latency_p50": p50,
            "latency_p99": p99,
            "total_tokens": row["total_tokens"],
            "total_cost": row["total_cost"],
            "feedback_stats": None,
            "total_token_details": None,
            "total_cost_details": None,
            "query_metadata": None,
        }

    @api.post(
        "/threads/query",
        summary="Threads of a project active in a start-time window, most recent activity first",
        openapi_extra=openapi_body(ThreadQueryV2),
    )
    def query_threads(tenant: CurrentTenant, body: JsonBody = None) -> Response:
        q = parse_body(ThreadQueryV2, body if body is not None else {}, UNSUPPORTED)
        after, pinned = decode_cursor(q.cursor) if q.cursor else (None, None)
        window = resolve_window(q.min_start_time, q.max_start_time, pinned, datetime.now(UTC), max_exclusive=True)
        where, values = q.runs_where(reads.reader, tenant.id, window, grouped=True)
        after_params = Params("ta")
        having = threads_after(after_params, *_decode_after(after)) if after is not None else "1"
        values = {**values, **after_params.values}
        rows = reads.reader.threads(tenant.id, where=where, params=values, having=having, limit=q.page_size + 1)
        more = len(rows) > q.page_size
        rows = rows[: q.page_size]
        ends = trace_ends(tenant.id, q, window, rows)
        items = [thread(row, ends.get(row["thread_id"], {})) for row in rows]
        next_cursor = encode_cursor(_encode_after(rows[-1]), window) if more else None
        return json_response({"items": items, "next_cursor": next_cursor})

    @api.get("/threads/{thread_id}/traces", summary="A thread's traces (root runs), oldest first")
    def thread_traces(
        request: Request,
        tenant: CurrentTenant,
        thread_id: str,
        project_id: uuid.UUID,
        cursor: Annotated[str | None, Query()] = None,
        filter: Annotated[str | None, Query()] = None,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
        selects: Annotated[list[ThreadTraceSelect] | None, Query()] = None,
        trace_filter: Annotated[str | None, Query()] = None,
        tree_filter: Annotated[str | None, Query()] = None,
    ) -> Response:
        selects = selects or []
        for select in selects:
            if select in UNSUPPORTED_SELECTS:
                raise ApiError(
                    422,
                    f"select {select} is not supported by tracehouse: {UNSUPPORTED_SELECTS[select]}",
                    detail={"field": "selects", "unsupported": True, "select": select},
                )
        shape = RunShape(tuple(RUN_SELECT_OF[s] for s in selects), base_url(request))
        q = RunQuery(
            session=[project_id],
            is_root=True,
            filter=thread_filter(thread_id, filter=filter, trace_filter=trace_filter),  # a root's trace is its own
            tree_filter=tree_filter,
            select=list(shape.payloads),
            limit=page_size,
            cursor=cursor,
            order="asc",
        )
        page = reads.search.page(tenant.id, q)
        items = [
            {"trace_id": run["id"], **{s.lower(): run[RUN_SELECT_OF[s].lower()] for s in selects}}
            for run in runs.answer(tenant.id, shape, page.rows)
        ]
        return json_response({"items": items, "next_cursor": page.next})

    return api
