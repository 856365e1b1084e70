"""The v2 traces routes of the generated SDK client: `POST /api/v2/traces/query` (`client.traces.query`) and
`GET /api/v2/traces/{trace_id}/runs` (`client.traces.list_runs`).

A trace query is a runs query for root runs (`RunQueryV2`, the v1 search underneath), whose items put the root
under `root_run` and, when selected, the trace's totals under `trace_aggregates`. The runs of a trace are read
like v1's trees (`query.trees`): the trace's scope in the sort key, the filter evaluated on each run.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from query.filter import Params
from query.run_reads import CurrentTenant, JsonBody, RunReads, json_response
from query.run_search import UtcTime, compile_argument, parse_filter
from query.runs_v2_api import V2Runs, base_url
from query.runs_v2_query import RunQueryV2
from query.runs_v2_shape import RunShape, SelectField
from query.serialize import iso
from query.v2_requests import FEEDBACK_MODIFIED_AT, NEEDS_A_MODEL, openapi_body, parse_body
from schemas import ApiError
from storage.run_queries import TRACE_CLOCK_SKEW

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_TIME = "DateTime64(6, 'UTC')"

UNSUPPORTED = {**NEEDS_A_MODEL, **FEEDBACK_MODIFIED_AT}
# Selects answered under `trace_aggregates`, as totals over every run of the trace, instead of on the root.
AGGREGATES = ("TOTAL_TOKENS", "TOTAL_COST", "FIRST_TOKEN_TIME")


class TraceQueryV2(BaseModel):
    """The body of `POST /api/v2/traces/query` (`types/trace_query_params.py`)."""

    model_config = ConfigDict(extra="forbid")

    project_id: uuid.UUID
    min_start_time: UtcTime = None
    max_start_time: UtcTime = None
    trace_filter: str | None = None
    tree_filter: str | None = None
    trace_ids: list[uuid.UUID] | None = Field(None, min_length=1)
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None
    selects: list[SelectField] = []

    def roots(self) -> RunQueryV2:
        """The runs query of the traces' roots. A root is its trace's root, so `trace_filter` is the roots' own
        filter, which costs no subquery; it is parsed here so that an error names `trace_filter`."""
        if self.trace_filter:
            parse_filter(self.trace_filter, "trace_filter")
        return RunQueryV2(
            project_ids=[self.project_id],
            min_start_time=self.min_start_time,
            max_start_time=self.max_start_time,
            filter=self.trace_filter,
            tree_filter=self.tree_filter,
            is_root=True,
            ids=self.trace_ids,  # a root's id is its trace's id
            page_size=self.page_size,
            cursor=self.cursor,
        )


def _totals(runs: list[dict[str, Any]], selects: list[SelectField]) -> dict[str, dict[str, Any]]:
    """Per trace id, the selected aggregates over `runs`. Each stored run counts only its own usage (a chain's
    tokens are its LLM calls', not repeated on the chain), so a trace's totals are the sums over its runs."""
    by_trace: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_trace[run["trace_id"]].append(run)
    out = {}
    for trace_id, members in by_trace.items():
        costs = [r["total_cost"] for r in members if r["total_cost"] is not None]
        first_tokens = [r["first_token_time"] for r in members if r["first_token_time"] is not None]
        totals = {
            "TOTAL_TOKENS": sum(r["total_tokens"] for r in members),
            "TOTAL_COST": sum(costs) if costs else None,
            "FIRST_TOKEN_TIME": iso(min(first_tokens)) if first_tokens else None,
        }
        out[str(trace_id)] = {name.lower(): totals[name] for name in AGGREGATES if name in selects}
    return out


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(prefix="/api/v2", tags=["traces v2"])
    runs = V2Runs(reads)

    def aggregates(
        tenant_id: uuid.UUID, project_id: uuid.UUID, roots: list[dict[str, Any]], selects: list[SelectField]
    ) -> dict[str, dict[str, Any]]:
        """The totals of the traces of `roots`, from the narrow columns of all their runs: one read, bounded by the
        project and the earliest root's start (children may start a little before their root)."""
        if not roots:
            return {}
        params = Params("agg")
        where = (
            f"session_id = {params.add(project_id, 'UUID')} "
            f"AND start_time >= {params.add(min(r['start_time'] for r in roots) - TRACE_CLOCK_SKEW, _TIME)} "
            f"AND trace_id IN {params.add([r['id'] for r in roots], 'Array(UUID)')}"
        )
        columns = ("trace_id", "total_tokens", "total_cost", "first_token_time")
        rows = reads.reader.latest(tenant_id, where=where, params=params.values, columns=columns, order_by=None)
        return _totals(rows, selects)

    @api.post(
        "/traces/query",
        summary="Traces of a project in a start-time window, newest first: roots and selected totals",
        openapi_extra=openapi_body(TraceQueryV2),
    )
    def query_traces(request: Request, tenant: CurrentTenant, body: JsonBody = None) -> Response:
        q = parse_body(TraceQueryV2, body if body is not None else {}, UNSUPPORTED)
        shape = RunShape(tuple(s for s in q.selects if s not in AGGREGATES), base_url(request))
        rows, next_cursor = q.roots().page(reads.reader, tenant.id, shape.payloads, max_exclusive=True)
        roots = runs.answer(tenant.id, shape, rows)
        if not any(s in AGGREGATES for s in q.selects):
            return json_response({"items": [{"root_run": root} for root in roots], "next_cursor": next_cursor})
        totals = aggregates(tenant.id, q.project_id, rows, q.selects)
        items = [{"root_run": root, "trace_aggregates": totals[root["id"]]} for root in roots]
        return json_response({"items": items, "next_cursor": next_cursor})

    @api.get("/traces/{trace_id}/runs", summary="The runs of a trace in start-time order, with the selected fields")
    def trace_runs(
        request: Request,
        tenant: CurrentTenant,
        trace_id: uuid.UUID,
        project_id: uuid.UUID,
        filter: Annotated[str | None, Query()] = None,
        min_start_time: Annotated[UtcTime, Query()] = None,
        max_start_time: Annotated[UtcTime, Query()] = None,
        selects: Annotated[list[SelectField] | None, Query()] = None,
    ) -> Response:
        """A trace with no run in the project is a 404; one whose runs all miss the filter or window answers no
        items."""
        if (min_start_time is None) != (max_start_time is None):
            missing = "min_start_time" if min_start_time is None else "max_start_time"
            raise ApiError(
                422, f"{missing} is required together with the other bound", detail={"field": missing, "in": "query"}
            )
        shape = RunShape(tuple(selects or ()), base_url(request))
        found = Params("tr")
        match = compile_argument(filter, "filter", found) if filter else None
        if min_start_time is not None and max_start_time is not None:
            if min_start_time > max_start_time:
                raise ApiError(
                    422, "min_start_time is after max_start_time", detail={"field": "min_start_time", "in": "query"}
                )
            bounds = f"start_time BETWEEN {found.add(min_start_time, _TIME)} AND {found.add(max_start_time, _TIME)}"
            match = f"({match}) AND {bounds}" if match else bounds
        rows = runs.of_trace(tenant.id, trace_id, project_id, shape, match=match, params=found.values)
        if not rows:
            raise ApiError(
                404,
                f"trace {trace_id} not found in project {project_id}",
                detail={"trace_id": str(trace_id), "project_id": str(project_id)},
            )
        matched = [row for row in rows if match is None or row["_match"]]
        return json_response({"items": runs.answer(tenant.id, shape, matched)})

    return api
