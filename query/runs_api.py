"""Run read routes: `POST /runs/query`, `GET /runs/{run_id}` and the signed attachment download."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from query.run_reads import OPTIONAL_JSON_BODY, CurrentTenant, FeedbackPrefetch, JsonBody, RunReads, json_response
from query.run_search import RunQuery
from query.signing import attachment_path
from schemas import ApiError, jsonutil
from storage.blobs import BlobNotFound
from storage.run_queries import TRACE_CLOCK_SKEW


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(tags=["runs"])

    @api.post(
        "/runs/query",
        summary="Runs matching arguments and filters, newest first, keyset-paginated",
        openapi_extra=OPTIONAL_JSON_BODY,
    )
    def query_runs(tenant: CurrentTenant, body: JsonBody = None) -> Response:
        q = RunQuery.parse_body(body if body is not None else {})
        with_feedback = q.select is None or "feedback_stats" in q.select
        prefetch = FeedbackPrefetch(reads, tenant.id) if with_feedback else None
        page = reads.search.page(tenant.id, q, on_candidates=prefetch.start if prefetch is not None else None)
        runs = reads.to_json(
            tenant.id, page.rows, payloads=q.payloads, with_feedback=with_feedback, prefetched=prefetch
        )
        return json_response({"runs": runs, "cursors": {"next": page.next, "prev": page.prev}})

    @api.get("/runs/{run_id}", summary="One run with payloads, children, feedback stats and attachment URLs")
    def read_run(tenant: CurrentTenant, run_id: uuid.UUID) -> Response:
        row = reads.get_row(tenant.id, run_id)
        if row is None:
            raise ApiError(404, f"run {run_id} not found", detail={"run_id": str(run_id)})
        run = reads.to_json(tenant.id, [row])[0]
        children = reads.reader.latest(
            tenant.id,
            where="session_id = {s:UUID} AND start_time >= {t:DateTime64(6, 'UTC')} AND trace_id = {trace:UUID} "
            "AND has(parent_run_ids, {id:UUID})",
            params={
                "s": row["session_id"],
                "t": row["start_time"] - TRACE_CLOCK_SKEW,
                "trace": row["trace_id"],
                "id": run_id,
            },
            columns=("id", "parent_run_id", "dotted_order"),
            order_by="dotted_order, id",
        )
        run["child_run_ids"] = [str(c["id"]) for c in children]
        run["direct_child_run_ids"] = [str(c["id"]) for c in children if c["parent_run_id"] == run_id]
        return json_response(run)

    @api.get("/attachments/{tenant_id}/{run_id}/{name}", summary="Download an attachment (signed URL, no auth)")
    def download_attachment(tenant_id: uuid.UUID, run_id: uuid.UUID, name: str, expires: int, sig: str) -> Response:
        if not reads.signer.verify(attachment_path(tenant_id, run_id, name), expires, sig):
            raise ApiError(403, "attachment URL is invalid or has expired: read the run again for a fresh one")
        row = reads.get_row(tenant_id, run_id, ("id", "attachments"))
        meta_text = (row or {}).get("attachments", {}).get(name)
        if not meta_text:
            raise ApiError(404, f"run {run_id} has no attachment {name!r}")
        meta = jsonutil.loads(meta_text)
        try:
            data = reads.storage.blobs.get(meta["key"])
        except BlobNotFound:
            raise ApiError(404, f"attachment {name!r} of run {run_id} is missing from the blob store") from None
        return Response(data, media_type=meta.get("mime_type") or "application/octet-stream")

    return api
