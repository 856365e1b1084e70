"""LangSmith ingest endpoints (protocol §4, §6.1, §6.2). Each decodes and validates the whole request, spools
it, and answers 202 once it is durable; nothing is stored from a request that has a bad part."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ingest import decode
from ingest.body import read_body
from ingest.multipart import boundary_of, split_parts
from ingest.pipeline import Pipeline
from schemas import ApiError, Tenant, jsonutil
from schemas.tenancy import current_tenant

CurrentTenant = Annotated[Tenant, Depends(current_tenant)]
_RUN_BODY = {"content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}}


def _accepted(decoded: decode.Decoded) -> JSONResponse:
    return JSONResponse({"accepted": {"runs": len(decoded.ops), "feedback": len(decoded.feedback)}}, status_code=202)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = jsonutil.loads(body)
    except ValueError as exc:
        raise ApiError(422, f"body: invalid JSON: {exc}", detail={"part": "body"}) from None
    if not isinstance(value, dict):
        raise ApiError(422, "body: must be a JSON object", detail={"part": "body"})
    return value


def build_router(pipeline: Pipeline, *, max_body_bytes: int) -> APIRouter:
    router = APIRouter(tags=["ingest"])

    @router.post("/runs/multipart", status_code=202, summary="Ingest runs, attachments and feedback (multipart)")
    async def ingest_multipart(request: Request, tenant: CurrentTenant) -> JSONResponse:
        boundary = boundary_of(request.headers.get("content-type", ""))
        body = await read_body(request, max_bytes=max_body_bytes)
        decoded = await run_in_threadpool(lambda: decode.from_multipart(split_parts(body, boundary)))
        await pipeline.submit(tenant, decoded.ops, decoded.feedback)
        return _accepted(decoded)

    @router.post(
        "/runs/batch",
        status_code=202,
        summary="Ingest posts and patches as JSON",
        openapi_extra={"requestBody": _RUN_BODY},
    )
    async def ingest_batch(request: Request, tenant: CurrentTenant) -> JSONResponse:
        body = await read_body(request, max_bytes=max_body_bytes)
        decoded = await run_in_threadpool(decode.from_batch, body)
        await pipeline.submit(tenant, decoded.ops)
        return _accepted(decoded)

    @router.post("/runs", status_code=202, summary="Create one run", openapi_extra={"requestBody": _RUN_BODY})
    async def create_run(request: Request, tenant: CurrentTenant) -> JSONResponse:
        run = _json_object(await read_body(request, max_bytes=max_body_bytes))
        decoded = decode.Decoded(ops=[decode.from_run("post", run.get("id"), run, "body")])
        await pipeline.submit(tenant, decoded.ops)
        return _accepted(decoded)

    @router.patch(
        "/runs/{run_id}",
        status_code=202,
        summary="Update one run (nulls mean unchanged)",
        openapi_extra={"requestBody": _RUN_BODY},
    )
    async def update_run(run_id: str, request: Request, tenant: CurrentTenant) -> JSONResponse:
        run = _json_object(await read_body(request, max_bytes=max_body_bytes))
        decoded = decode.Decoded(ops=[decode.from_run("patch", decode.path_run_id(run_id), run, "body")])
        await pipeline.submit(tenant, decoded.ops)
        return _accepted(decoded)

    return router
