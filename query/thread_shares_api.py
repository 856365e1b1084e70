"""`POST`/`GET`/`DELETE /api/v2/threads/{thread_id}/share` (`client.threads.share.create`, `retrieve`, `delete`):
the owner's share token of a thread of a project.

Like run shares (`query.runs_v2_api`), creating is idempotent and deleting answers 204 whether or not there was a
share. The SDK's public routes read shared traces, not threads, so nothing reads a thread by its token yet.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from query.run_reads import CurrentTenant, JsonBody, RunReads, json_response
from query.run_search import RunQuery
from query.threads import thread_filter
from query.v2_requests import openapi_body, parse_body
from schemas import ApiError
from storage.thread_shares import ThreadShare, ThreadShareRepository


class ThreadShareCreate(BaseModel):
    """The body of `POST /api/v2/threads/{thread_id}/share` (`types/threads/share_create_params.py`)."""

    model_config = ConfigDict(extra="forbid")

    project_id: uuid.UUID


def router(reads: RunReads) -> APIRouter:
    api = APIRouter(prefix="/api/v2", tags=["threads v2"])
    shares = ThreadShareRepository(reads.storage.clickhouse)

    @api.post(
        "/threads/{thread_id}/share",
        summary="Share a thread of a project; returns its share token",
        openapi_extra=openapi_body(ThreadShareCreate),
    )
    def share_thread(tenant: CurrentTenant, thread_id: str, body: JsonBody = None) -> Response:
        """Creates the thread's share, or returns the one it has. A thread without a trace in the project is a
        404: there would be nothing to share."""
        q = parse_body(ThreadShareCreate, body if body is not None else {}, {})
        share = shares.get(tenant.id, q.project_id, thread_id)
        if share is None:
            traces = RunQuery(session=[q.project_id], is_root=True, filter=thread_filter(thread_id), select=[], limit=1)
            if not reads.search.page(tenant.id, traces).rows:
                raise ApiError(
                    404,
                    f"thread {thread_id} has no trace in project {q.project_id}",
                    detail={"thread_id": thread_id, "project_id": str(q.project_id)},
                )
            share = ThreadShare(tenant.id, q.project_id, thread_id, uuid.uuid4())
            shares.save(share)
        return json_response({"share_token": str(share.share_token)})

    @api.get("/threads/{thread_id}/share", summary="A thread's share token, omitted when it is not shared")
    def read_thread_share(tenant: CurrentTenant, thread_id: str, project_id: uuid.UUID) -> Response:
        share = shares.get(tenant.id, project_id, thread_id)
        return json_response({} if share is None else {"share_token": str(share.share_token)})

    @api.delete("/threads/{thread_id}/share", status_code=204, summary="Stop sharing a thread (idempotent)")
    def unshare_thread(tenant: CurrentTenant, thread_id: str, project_id: uuid.UUID) -> Response:
        share = shares.get(tenant.id, project_id, thread_id)
        if share is not None:
            shares.save(share, deleted=True)
        return Response(status_code=204)

    return api
