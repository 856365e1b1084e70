"""The v2 public routes of the generated SDK client: `GET /api/v2/public/{share_token}/run/{run_id}` and
`POST /api/v2/public/{share_token}/runs/query` (`client.public.runs.retrieve`, `query`).

They read what v1's `/public/{token}/…` routes read (`query.sharing`): the runs of the shared trace, in the share's
tenant, with no key, and nothing once the share is deleted. The runs have the v2 shape, limited to the fields the
SDK lists as public (`PublicSelectField`).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict

from query.run_reads import JsonBody, RunReads, json_response
from query.run_search import UtcTime
from query.runs_v2_api import V2Runs
from query.runs_v2_shape import PublicSelectField, RunShape
from query.sharing import SharedTraces
from query.v2_requests import openapi_body, parse_body
from storage.run_queries import META_COLUMNS


class PublicRunQuery(BaseModel):
    """The body of `POST /api/v2/public/{share_token}/runs/query` (`types/public/run_query_params.py`)."""

    model_config = ConfigDict(extra="forbid")

    selects: list[PublicSelectField] = []


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(prefix="/api/v2/public", tags=["public v2"])
    runs = V2Runs(reads)
    traces = SharedTraces(reads)

    @api.get("/{share_token}/run/{run_id}", summary="A run of the shared trace, with the selected fields (no auth)")
    def retrieve_shared_run(
        share_token: uuid.UUID,
        run_id: uuid.UUID,
        selects: Annotated[list[PublicSelectField] | None, Query()] = None,
        start_time: Annotated[UtcTime, Query()] = None,
    ) -> Response:
        """`start_time` is checked but not needed, as in the owner's retrieve: runs are located by id."""
        share = traces.share(share_token)
        shape = RunShape(tuple(selects or ()))
        row = traces.row(share, run_id, META_COLUMNS + shape.payloads)
        return json_response(runs.answer(share.tenant_id, shape, [row])[0])

    @api.post(
        "/{share_token}/runs/query",
        summary="Every run of the shared trace in start-time order, with the selected fields (no auth)",
        openapi_extra=openapi_body(PublicRunQuery),
    )
    def query_shared_runs(share_token: uuid.UUID, body: JsonBody = None) -> Response:
        """Unpaged, as the SDK's response has no cursor: the share token alone names the trace."""
        share = traces.share(share_token)
        q = parse_body(PublicRunQuery, body if body is not None else {}, {})
        shape = RunShape(tuple(q.selects))
        rows = runs.of_trace(share.tenant_id, share.trace_id, share.session_id, shape)
        return json_response({"items": runs.answer(share.tenant_id, shape, rows)})

    return api
