"""The v2 runs routes of the generated SDK client, answered by the v1 read service and reshaped:
`POST /api/v2/runs/query` and `GET /api/v2/runs/{run_id}` (`client.runs.query_v2`, `retrieve_v2`),
`GET /api/v2/runs/{run_id}/url` (`get_url`), and `POST`/`DELETE /api/v2/runs/{id}/share` (`share.create`,
`share.delete`), which keep v1's share links (`query.sharing`) but share a run's trace through its root, and
unshare it whole."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from query.run_reads import CurrentTenant, JsonBody, RunReads, json_response
from query.run_search import UtcTime
from query.runs_v2_query import UNSUPPORTED, RunQueryV2
from query.runs_v2_shape import RunShape, SelectField
from query.v2_requests import openapi_body, parse_body
from schemas import ApiError
from storage.run_queries import META_COLUMNS
from storage.run_shares import RunShare, RunShareRepository


class ShareCreate(BaseModel):
    """The body of `POST /api/v2/runs/{run_id}/share` (`types/runs/share_create_params.py`)."""

    model_config = ConfigDict(extra="forbid")

    session_id: uuid.UUID
    trace_id: uuid.UUID


class ShareDelete(BaseModel):
    """The body of `DELETE /api/v2/runs/{trace_id}/share` (`types/runs/share_delete_params.py`)."""

    model_config = ConfigDict(extra="forbid")

    session_id: uuid.UUID


class V2Runs:
    """Stored rows -> v2 runs, for every v2 route that returns runs: v1's serialisation (payloads back from the
    blob store, signed attachment URLs, feedback stats) reshaped by `RunShape`."""

    def __init__(self, reads: RunReads) -> None:
        self.reads = reads
        self.shares = RunShareRepository(reads.storage.clickhouse)

    def answer(self, tenant_id: uuid.UUID, shape: RunShape, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        runs = self.reads.to_json(tenant_id, rows, payloads=shape.payloads, with_feedback=shape.feedback)
        share_urls = {}
        if shape.shares:  # one lookup per run: selected rarely, and never by default
            for row in rows:
                share = self.shares.get(tenant_id, row["id"])
                if share is not None:
                    share_urls[str(row["id"])] = f"{shape.base_url}/public/{share.share_token}/run"
        return [shape.run(run, share_urls) for run in runs]

    def of_trace(
        self,
        tenant_id: uuid.UUID,
        trace_id: uuid.UUID,
        project_id: uuid.UUID,
        shape: RunShape,
        *,
        match: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Every run of a trace in a project, in start-time order (ties by id), unpaged, as v2 lists a trace (up to
        `max_trace_runs`, see `RunReads.trace_rows`). `match` (with its `params`) is returned per run as `_match`."""
        where, scope = self.reads.reader.trace_scope(tenant_id, trace_id)
        return self.reads.trace_rows(
            tenant_id,
            trace_id,
            where=f"{where} AND session_id = {{trace_project:UUID}}",
            params={**scope, **(params or {}), "trace_project": project_id},
            columns=META_COLUMNS + shape.payloads,
            order_by="start_time, id",
            match=match,
        )


def base_url(request: Request) -> str:
    """The root of the absolute URLs v2 returns (attachments, shares, run URLs): the address the client used."""
    return str(request.base_url).rstrip("/")


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(prefix="/api/v2", tags=["runs v2"])
    runs = V2Runs(reads)

    def located(
        tenant_id: uuid.UUID, run_id: uuid.UUID, project_id: uuid.UUID, columns: tuple[str, ...] = META_COLUMNS
    ) -> dict[str, Any]:
        row = reads.get_row(tenant_id, run_id, columns)
        if row is None or row["session_id"] != project_id:
            raise ApiError(
                404,
                f"run {run_id} not found in project {project_id}",
                detail={"run_id": str(run_id), "project_id": str(project_id)},
            )
        return row

    def in_trace(row: dict[str, Any], trace_id: uuid.UUID) -> None:
        if row["trace_id"] != trace_id:
            raise ApiError(
                404,
                f"run {row['id']} is not part of trace {trace_id}",
                detail={"run_id": str(row["id"]), "trace_id": str(trace_id)},
            )

    @api.post(
        "/runs/query",
        summary="Runs of projects in a start-time window, newest first, with the selected fields",
        openapi_extra=openapi_body(RunQueryV2),
    )
    def query_runs(request: Request, tenant: CurrentTenant, body: JsonBody = None) -> Response:
        q = parse_body(RunQueryV2, body if body is not None else {}, UNSUPPORTED)
        shape = RunShape(tuple(q.selects), base_url(request))
        rows, next_cursor = q.page(reads.reader, tenant.id, shape.payloads)
        return json_response({"items": runs.answer(tenant.id, shape, rows), "next_cursor": next_cursor})

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
        shape = RunShape(tuple(selects or ()), base_url(request))
        row = located(tenant.id, run_id, project_id, META_COLUMNS + shape.payloads)
        return json_response(runs.answer(tenant.id, shape, [row])[0])

    @api.get("/runs/{run_id}/url", summary="The address of a run's page: its app_path on this server")
    def run_url(
        request: Request,
        tenant: CurrentTenant,
        run_id: uuid.UUID,
        project_id: uuid.UUID,
        trace_id: uuid.UUID,
        start_time: Annotated[UtcTime, Query()] = None,
    ) -> Response:
        """The run is looked up, so that a wrong project or trace is a 404 rather than a dead link; `start_time`
        is checked but not needed."""
        row = located(tenant.id, run_id, project_id)
        in_trace(row, trace_id)
        (run,) = reads.to_json(tenant.id, [row], payloads=(), with_feedback=False)
        return json_response({"url": base_url(request) + run["app_path"]})

    @api.post(
        "/runs/{run_id}/share",
        summary="Share a run's trace publicly; returns the share token of its root",
        openapi_extra=openapi_body(ShareCreate),
    )
    def share_run(tenant: CurrentTenant, run_id: uuid.UUID, body: JsonBody = None) -> Response:
        """Creates the root's share, or returns the one it has (also one made with v1's `PUT /runs/{id}/share`),
        so that every run of a trace answers one token."""
        q = parse_body(ShareCreate, body if body is not None else {}, {})
        in_trace(located(tenant.id, run_id, q.session_id), q.trace_id)
        share = runs.shares.get(tenant.id, q.trace_id)
        if share is None:
            share = RunShare(tenant.id, q.trace_id, uuid.uuid4(), q.trace_id, q.session_id)
            runs.shares.save(share)
        return json_response({"share_token": str(share.share_token)})

    @api.delete(
        "/runs/{trace_id}/share",
        status_code=204,
        summary="Stop sharing a trace (idempotent)",
        openapi_extra=openapi_body(ShareDelete),
    )
    def unshare_trace(tenant: CurrentTenant, trace_id: uuid.UUID, body: JsonBody = None) -> Response:
        """Deletes every share of the trace: the root's, and those v1's `PUT /runs/{id}/share` made of its other
        runs. LangSmith shares a trace as a whole, so unsharing it closes every public link into it, not only the
        one that v2 created."""
        q = parse_body(ShareDelete, body if body is not None else {}, {})
        runs.shares.delete(runs.shares.of_trace(tenant.id, trace_id, q.session_id))
        return Response(status_code=204)

    return api
