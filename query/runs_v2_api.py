"""The v2 runs routes of the generated SDK client (`client.runs.query_v2`, `client.runs.retrieve_v2`):
`POST /api/v2/runs/query` and `GET /api/v2/runs/{run_id}`, answered by the v1 read service and reshaped."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from query.run_reads import CurrentTenant, JsonBody, RunReads, json_response
from query.runs_v2_query import RunQueryV2
from query.runs_v2_shape import RunShape, SelectField
from schemas import ApiError
from storage.run_queries import META_COLUMNS
from storage.run_shares import RunShareRepository

_QUERY_BODY = {
    "requestBody": {"content": {"application/json": {"schema": RunQueryV2.model_json_schema()}}, "required": True}
}


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(prefix="/api/v2", tags=["runs v2"])
    shares = RunShareRepository(reads.storage.clickhouse)

    def answer(tenant_id: uuid.UUID, shape: RunShape, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        runs = reads.to_json(tenant_id, rows, payloads=shape.payloads, with_feedback=shape.feedback)
        share_urls = {}
        if shape.shares:  # one lookup per run: selected rarely, and never by default
            for row in rows:
                share = shares.get(tenant_id, row["id"])
                if share is not None:
                    share_urls[str(row["id"])] = f"{shape.base_url}/public/{share.share_token}/run"
        return [shape.run(run, share_urls) for run in runs]

    @api.post(
        "/runs/query",
        summary="Runs of projects in a start-time window, newest first, with the selected fields",
        openapi_extra=_QUERY_BODY,
    )
    def query_runs(request: Request, tenant: CurrentTenant, body: JsonBody = None) -> Response:
        q = RunQueryV2.parse_body(body if body is not None else {})
        shape = RunShape(tuple(q.selects), _base_url(request))
        rows, next_cursor = q.page(reads.reader, tenant.id, shape.payloads)
        return json_response({"items": answer(tenant.id, shape, rows), "next_cursor": next_cursor})

    @api.get("/runs/{run_id}", summary="One run of a project, with the selected fields")
    def retrieve_run(
        request: Request,
        tenant: CurrentTenant,
        run_id: uuid.UUID,
        project_id: uuid.UUID,
        selects: Annotated[list[SelectField] | None, Query()] = None,
        start_time: datetime | None = None,
    ) -> Response:
        """`start_time` is checked but not needed: runs are located by id (the `run_ids` table)."""
        shape = RunShape(tuple(selects or ()), _base_url(request))
        row = reads.get_row(tenant.id, run_id, META_COLUMNS + shape.payloads)
        if row is None or row["session_id"] != project_id:
            raise ApiError(
                404,
                f"run {run_id} not found in project {project_id}",
                detail={"run_id": str(run_id), "project_id": str(project_id)},
            )
        return json_response(answer(tenant.id, shape, [row])[0])

    return api


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
