"""Share links (protocol §6.6): `PUT/GET/DELETE /runs/{run_id}/share` for the owner, and public reads by token
(`GET /public/{token}/run`, `GET /public/{token}/run/{run_id}`, `POST /public/{token}/runs/query`).

A share exposes the shared run's whole trace, like LangSmith's public trace view, and nothing else: public reads
are scoped to the share's tenant and trace, and vanish the moment the share is deleted.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from query.run_reads import OPTIONAL_JSON_BODY, CurrentTenant, JsonBody, RunReads, json_response
from query.run_search import RunQuery
from schemas import ApiError
from storage.run_queries import META_COLUMNS, PAYLOAD_COLUMNS
from storage.run_shares import RunShare, RunShareRepository


class SharedTraces:
    """What a share token opens, for the public routes of both API versions: the share, and the runs of its trace
    in its tenant. Anything else, or a deleted share, is a 404, which does not tell a wrong token from a run of
    another trace."""

    def __init__(self, reads: RunReads) -> None:
        self.reads = reads
        self.shares = RunShareRepository(reads.storage.clickhouse)

    def share(self, token: uuid.UUID) -> RunShare:
        share = self.shares.by_token(token)
        if share is None:
            raise ApiError(404, "share link not found")
        return share

    def row(self, share: RunShare, run_id: uuid.UUID, columns: tuple[str, ...]) -> dict[str, Any]:
        row = self.reads.get_row(share.tenant_id, run_id, columns)
        if row is None or row["trace_id"] != share.trace_id:
            raise ApiError(404, f"run {run_id} is not part of this share")
        return row


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(tags=["sharing"])
    traces = SharedTraces(reads)
    shares = traces.shares

    @api.put(
        "/runs/{run_id}/share",
        summary="Share a run publicly; returns the share token",
        openapi_extra=OPTIONAL_JSON_BODY,
    )
    def share_run(tenant: CurrentTenant, run_id: uuid.UUID, body: JsonBody = None) -> Response:
        found = reads.reader.locate(tenant.id, [run_id])
        if not found:
            raise ApiError(404, f"run {run_id} not found", detail={"run_id": str(run_id)})
        existing = shares.get(tenant.id, run_id)
        token_text = (body or {}).get("share_token") if isinstance(body, dict) else None
        try:
            token = uuid.UUID(str(token_text)) if token_text else (existing.share_token if existing else uuid.uuid4())
        except ValueError:
            raise ApiError(422, "share_token must be a UUID", detail={"field": "share_token"}) from None
        share = RunShare(tenant.id, run_id, token, found[0].trace_id, found[0].session_id)
        shares.save(share)
        return json_response({"run_id": str(run_id), "share_token": str(token)})

    @api.get("/runs/{run_id}/share", summary="The run's share link, or null")
    def read_share(tenant: CurrentTenant, run_id: uuid.UUID) -> Response:
        share = shares.get(tenant.id, run_id)
        return json_response(None if share is None else {"run_id": str(run_id), "share_token": str(share.share_token)})

    @api.delete("/runs/{run_id}/share", summary="Stop sharing a run")
    def unshare(tenant: CurrentTenant, run_id: uuid.UUID) -> Response:
        share = shares.get(tenant.id, run_id)
        if share is not None:
            shares.delete([share])
        return json_response({"run_id": str(run_id), "share_token": None})

    def public_run(share: RunShare, run_id: uuid.UUID) -> Response:
        row = traces.row(share, run_id, META_COLUMNS + PAYLOAD_COLUMNS)
        return json_response(reads.to_json(share.tenant_id, [row])[0])

    @api.get("/public/{token}/run", summary="The shared run (no auth)")
    def public_shared_run(token: uuid.UUID) -> Response:
        share = traces.share(token)
        return public_run(share, share.run_id)

    @api.get("/public/{token}/run/{run_id}", summary="A run of the shared trace (no auth)")
    def public_trace_run(token: uuid.UUID, run_id: uuid.UUID) -> Response:
        return public_run(traces.share(token), run_id)

    @api.post(
        "/public/{token}/runs/query", summary="Runs of the shared trace (no auth)", openapi_extra=OPTIONAL_JSON_BODY
    )
    def public_query(token: uuid.UUID, body: JsonBody = None) -> Response:
        share = traces.share(token)
        q = RunQuery.parse_body(body if body is not None else {})
        q = q.model_copy(update={"trace": share.trace_id, "session": [share.session_id], "session_id": None})
        page = reads.search.page(share.tenant_id, q)
        runs = reads.to_json(share.tenant_id, page.rows, payloads=q.payloads)
        return json_response({"runs": runs, "cursors": {"next": page.next, "prev": page.prev}})

    return api
