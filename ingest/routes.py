"""LangSmith ingest endpoints (protocol §4, §6.1, §6.2). Each decodes and validates the whole request, spools
it, and answers 202 once it is durable; nothing is stored from a request that has a bad part."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ingest import decode, workers
from ingest.body import content_encoding, read_body, read_raw
from ingest.multipart import boundary_of
from ingest.pipeline import Pipeline
from ingest.workers import DecodePool
from schemas import ApiError, jsonutil
from schemas.tenancy import tenant_of

_RUN_BODY = {"content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}}


def _accepted(runs: int, feedback: int = 0) -> JSONResponse:
    return JSONResponse({"accepted": {"runs": runs, "feedback": feedback}}, status_code=202)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = jsonutil.loads(body)
    except ValueError as exc:
        raise ApiError(422, f"body: invalid JSON: {exc}", detail={"part": "body"}) from None
    if not isinstance(value, dict):
        raise ApiError(422, "body: must be a JSON object", detail={"part": "body"})
    return value


def build_router(pipeline: Pipeline, decoder: DecodePool, *, max_body_bytes: int) -> APIRouter:
    router = APIRouter(tags=["ingest"])

    @router.post("/runs/multipart", status_code=202, summary="Ingest runs, attachments and feedback (multipart)")
    async def ingest_multipart(request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        boundary = boundary_of(request.headers.get("content-type", ""))
        body = await read_raw(request, max_bytes=max_body_bytes)
        record, runs, feedback = await decoder.run(
            workers.multipart_record, body, content_encoding(request), boundary, tenant.id, max_body_bytes
        )
        await pipeline.submit_record(record, runs, feedback)
        return _accepted(runs, feedback)

    @router.post(
        "/runs/batch",
        status_code=202,
        summary="Ingest posts and patches as JSON",
        openapi_extra={"requestBody": _RUN_BODY},
    )
    async def ingest_batch(request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        body = await read_raw(request, max_bytes=max_body_bytes)
        record, runs, _ = await decoder.run(
            workers.batch_record, body, content_encoding(request), tenant.id, max_body_bytes
        )
        await pipeline.submit_record(record, runs)
        return _accepted(runs)

    @router.post("/runs", status_code=202, summary="Create one run", openapi_extra={"requestBody": _RUN_BODY})
    async def create_run(request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        run = _json_object(await read_body(request, max_bytes=max_body_bytes))
        op = decode.from_run("post", run.get("id"), run, "body")
        await pipeline.submit(tenant, [op])
        return JSONResponse({"accepted": {"runs": 1, "feedback": 0}, "id": str(op.run_id)}, status_code=202)

    @router.patch(
        "/runs/{run_id}",
        status_code=202,
        summary="Update one run (nulls mean unchanged)",
        openapi_extra={"requestBody": _RUN_BODY},
    )
    async def update_run(run_id: str, request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        run = _json_object(await read_body(request, max_bytes=max_body_bytes))
        await pipeline.submit(tenant, [decode.from_run("patch", decode.path_run_id(run_id), run, "body")])
        return _accepted(1)

    return router
