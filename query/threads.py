"""Threads: the runs of a project grouped by `thread_id` (metadata session_id | conversation_id | thread_id).

`POST /threads/query` lists a project's threads, most recent activity first, with trace and run counts, first and
last start, root latency p50/p99, token and cost totals, the first trace's inputs and the last trace's outputs.
A `filter` surfaces a thread when at least one of its runs matches. `GET /threads/{thread_id}/traces` returns
the thread's root runs oldest first (the conversation in order), paginated like `POST /runs/query`.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from query.filter import Params
from query.run_reads import OPTIONAL_JSON_BODY, CurrentTenant, JsonBody, RunReads, json_response
from query.run_search import MAX_LIMIT, RunQuery, UtcTime, UuidList, compile_argument, parse_filter
from query.serialize import iso
from schemas import ApiError, jsonutil

_TIME = "DateTime64(6, 'UTC')"


class ThreadQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    session: UuidList = None
    session_id: UuidList = None
    filter: str | None = None
    start_time: UtcTime = None
    end_time: UtcTime = None
    limit: int = Field(MAX_LIMIT, ge=1)
    cursor: str | None = None


def _encode_cursor(last_start: datetime, thread_id: str) -> str:
    raw = jsonutil.dumps({"t": iso(last_start), "th": thread_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[datetime, str]:
    try:
        raw = jsonutil.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return datetime.fromisoformat(raw["t"]), str(raw["th"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(
            400, "invalid cursor: pass back a cursor from a previous response", detail={"field": "cursor"}
        ) from None


def threads_after(params: Params, last_start: datetime, thread_id: str) -> str:
    """HAVING for the threads after (last activity, thread id) in the order `RunReader.threads` returns them:
    the keyset both the v1 and the v2 thread cursors page by."""
    t, th = params.add(last_start, _TIME), params.add(thread_id, "String")
    return f"last_start_time < {t} OR (last_start_time = {t} AND thread_id < {th})"


def thread_filter(thread_id: str, **filters: str | None) -> str:
    """The filter expression of a thread's runs that pass every one of `filters` (argument -> text). Each is
    parsed alone first, so that an error names its argument and a position in the text the client sent."""
    conditions = [f"eq(thread_id, {json.dumps(thread_id, ensure_ascii=False)})"]
    for argument, text in filters.items():
        if text:
            parse_filter(text, argument)
            conditions.append(text)
    return conditions[0] if len(conditions) == 1 else f"and({', '.join(conditions)})"


def latency_quantiles(latency: list[float] | None) -> tuple[float | None, float | None]:
    """(p50, p99) of `RunReader`'s quantiles, which are [] when there was no value to take them of."""
    return (latency[0], latency[1]) if latency else (None, None)


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(tags=["threads"])

    @api.post(
        "/threads/query", summary="Threads of projects, most recent activity first", openapi_extra=OPTIONAL_JSON_BODY
    )
    def query_threads(tenant: CurrentTenant, body: JsonBody = None) -> Response:
        try:
            q = ThreadQuery.model_validate({k: v for k, v in (body or {}).items() if v is not None})
        except (ValidationError, AttributeError) as error:
            raise ApiError(422, f"invalid thread query: {error}") from None
        params = Params("t")
        conds = []
        sessions = list(dict.fromkeys([*(q.session or []), *(q.session_id or [])]))
        if sessions:
            conds.append(f"session_id IN {params.add(sessions, 'Array(UUID)')}")
        if q.start_time:
            conds.append(f"start_time >= {params.add(q.start_time, _TIME)}")
        if q.end_time:
            conds.append(f"start_time <= {params.add(q.end_time, _TIME)}")
        if q.filter:
            cond = compile_argument(q.filter, "filter", params)
            conds.append(
                f"thread_id IN (SELECT thread_id FROM runs FINAL WHERE tenant_id = {{tenant:UUID}} "
                f"AND {' AND '.join([*conds, cond])})"
            )
        having = threads_after(params, *_decode_cursor(q.cursor)) if q.cursor else "1"
        limit = min(q.limit, MAX_LIMIT)
        rows = reads.reader.threads(
            tenant.id, where=" AND ".join(conds) or "1", params=params.values, having=having, limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        threads = [_thread_json(reads, row) for row in rows]
        next_cursor = _encode_cursor(rows[-1]["last_start_time"], rows[-1]["thread_id"]) if more else None
        return json_response({"threads": threads, "cursors": {"next": next_cursor}})

    @api.get("/threads/{thread_id}/traces", summary="A thread's root runs, oldest first")
    def thread_traces(
        tenant: CurrentTenant,
        thread_id: str,
        session_id: Annotated[list[uuid.UUID] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1)] = MAX_LIMIT,
        cursor: Annotated[str | None, Query()] = None,
        order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    ) -> Response:
        q = RunQuery(
            session_id=session_id,
            is_root=True,
            filter=thread_filter(thread_id),
            limit=limit,
            cursor=cursor,
            order=order,
        )
        page = reads.search.page(tenant.id, q)
        runs = reads.to_json(tenant.id, page.rows)
        return json_response({"runs": runs, "cursors": {"next": page.next, "prev": page.prev}})

    return api


def _thread_json(reads: RunReads, row: dict[str, Any]) -> dict[str, Any]:
    p50, p99 = latency_quantiles(row.pop("latency"))
    first = {"inputs": row.pop("first_inputs"), "payload_refs": row.pop("first_refs"), "id": row["thread_id"]}
    last = {"outputs": row.pop("last_outputs"), "payload_refs": row.pop("last_refs"), "id": row["thread_id"]}
    return {
        "thread_id": row["thread_id"],
        "session_id": str(row["thread_session_id"]),
        "trace_count": row["trace_count"],
        "run_count": row["run_count"],
        "first_start_time": iso(row["first_start_time"]),
        "last_start_time": iso(row["last_start_time"]),
        "last_end_time": iso(row["last_end_time"]),
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "total_tokens": row["total_tokens"],
        "total_cost": row["total_cost"],
        "error_count": row["error_count"],
        "latency_p50": p50,
        "latency_p99": p99,
        "first_inputs": reads.serializer.payload(first, "inputs"),
        "last_outputs": reads.serializer.payload(last, "outputs"),
    }
