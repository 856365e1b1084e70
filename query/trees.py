"""Run trees: a whole trace as nested runs, children in `dotted_order` (which is start order, ties by id).

`GET /traces/{trace_id}` returns the trace, `GET /runs/{run_id}/tree` the subtree under one run. Both take
`include_payloads=false` (structure, names, timings and tokens only) and `filter=` (the runs matching the filter
plus their ancestors, so every match is shown in context).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from query.filter import Params
from query.run_reads import CurrentTenant, RunReads, json_response
from query.run_search import compile_argument
from schemas import ApiError
from storage.run_queries import META_COLUMNS, PAYLOAD_COLUMNS


def build_tree(runs: list[dict[str, Any]], root_id: str | None = None) -> list[dict[str, Any]]:
    """Nest run JSON objects under `child_runs`; returns the top-level runs (the root, or orphans whose parent
    is not among `runs`), all ordered by dotted_order."""
    by_id = {run["id"]: run for run in runs}
    tops: list[dict[str, Any]] = []
    for run in sorted(runs, key=lambda r: r["dotted_order"]):
        run["child_runs"] = []
        run["child_run_ids"] = []
        run["direct_child_run_ids"] = []
    for run in sorted(runs, key=lambda r: r["dotted_order"]):
        parent = by_id.get(run["parent_run_id"]) if run["parent_run_id"] and run["id"] != root_id else None
        if parent is None:
            tops.append(run)
        else:
            parent["child_runs"].append(run)
            parent["direct_child_run_ids"].append(run["id"])
        for ancestor in run["parent_run_ids"]:
            if ancestor in by_id:
                by_id[ancestor]["child_run_ids"].append(run["id"])
    return tops


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(tags=["runs"])

    def trace_runs(
        tenant_id: uuid.UUID,
        trace_id: uuid.UUID,
        include_payloads: bool,
        filter_text: str | None,
        under: uuid.UUID | None = None,
    ) -> list[dict[str, Any]]:
        """The runs of a trace, or (`under`) of the subtree under one of its runs: read alone, so that a subtree
        costs its own runs and stays readable in a trace larger than `max_trace_runs`."""
        where, params = reads.reader.trace_scope(tenant_id, trace_id)
        if under is not None:
            where = f"{where} AND (id = {{under:UUID}} OR has(parent_run_ids, {{under:UUID}}))"
            params = {**params, "under": under}
        columns = META_COLUMNS + (PAYLOAD_COLUMNS if include_payloads else ())
        match = None
        if filter_text:
            fparams = Params("f")
            match = compile_argument(filter_text, "filter", fparams)
            params = {**params, **fparams.values}
        # Unordered: build_tree orders by dotted_order, and ClickHouse sorting the wide rows cost more.
        rows = reads.trace_rows(
            tenant_id, trace_id, where=where, params=params, columns=columns, order_by=None, match=match
        )
        if match is not None:
            keep: set[uuid.UUID] = set()
            for row in rows:
                if row["_match"]:
                    keep.add(row["id"])
                    keep.update(row["parent_run_ids"])
            rows = [row for row in rows if row["id"] in keep]
        return reads.to_json(tenant_id, rows, payloads=PAYLOAD_COLUMNS if include_payloads else ())

    def respond(trace_id: uuid.UUID, runs: list[dict[str, Any]], root_id: str | None) -> Response:
        tops = build_tree(runs, root_id)
        if root_id is not None:
            tops = [t for t in tops if t["id"] == root_id]
        return json_response(
            {"trace_id": str(trace_id), "run_count": len(runs), "root": tops[0] if tops else None, "orphans": tops[1:]}
        )

    @api.get("/traces/{trace_id}", summary="A whole trace as a nested run tree")
    def get_trace(
        tenant: CurrentTenant,
        trace_id: uuid.UUID,
        include_payloads: Annotated[bool, Query()] = True,
        filter: Annotated[str | None, Query()] = None,
    ) -> Response:
        runs = trace_runs(tenant.id, trace_id, include_payloads, filter)
        if not runs and not filter:
            raise ApiError(404, f"trace {trace_id} not found", detail={"trace_id": str(trace_id)})
        return respond(trace_id, runs, None)

    @api.get("/runs/{run_id}/tree", summary="The subtree under one run")
    def get_run_tree(
        tenant: CurrentTenant,
        run_id: uuid.UUID,
        include_payloads: Annotated[bool, Query()] = True,
        filter: Annotated[str | None, Query()] = None,
    ) -> Response:
        found = reads.reader.locate(tenant.id, [run_id])
        if not found:
            raise ApiError(404, f"run {run_id} not found", detail={"run_id": str(run_id)})
        runs = trace_runs(tenant.id, found[0].trace_id, include_payloads, filter, under=run_id)
        return respond(found[0].trace_id, runs, str(run_id))

    return api
