"""`POST /otel/v1/traces`: OTLP/HTTP trace export (protobuf or JSON, gzip/deflate/zstd), spans into the same
pipeline as LangSmith runs. The app also serves it under `/api/v1/`, the path self-hosted LangSmith uses."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ingest import otlp, records
from ingest.body import content_encoding, read_raw
from ingest.otlp.worker import decode_spans
from ingest.pipeline import Pipeline
from ingest.workers import DecodePool
from schemas.tenancy import tenant_of

_BODY = {
    "content": {
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object", "additionalProperties": True}},
    }
}


def build_router(
    pipeline: Pipeline, decoder: DecodePool, *, max_body_bytes: int, links: otlp.TraceLinks | None = None
) -> APIRouter:
    router = APIRouter(tags=["otlp"])
    trace_links = links or otlp.TraceLinks()

    @router.post(
        "/otel/v1/traces",
        summary="Ingest spans (OTLP/HTTP ExportTraceServiceRequest)",
        response_class=Response,
        openapi_extra={"requestBody": _BODY},
    )
    async def export_traces(request: Request) -> Response:
        tenant = tenant_of(request)
        encoding = otlp.encoding_of(request.headers.get("content-type"))
        body = await read_raw(request, max_bytes=max_body_bytes)
        project = request.headers.get("langsmith-project", "").strip() or None
        spans = await decoder.run(decode_spans, body, content_encoding(request), encoding, project, max_body_bytes)
        mapped = otlp.link(spans, tenant_id=tenant.id, links=trace_links)  # cheap; the state lives here
        runs = mapped.runs
        try:
            if runs:
                record = records.encode(tenant.id, mapped.ops, [], packed=mapped.packed, fresh=mapped.fresh)
                await pipeline.submit_record(record, runs, source="otlp")
        except BaseException:
            trace_links.restore(mapped.released)
            raise
        message = "; ".join(mapped.notes) if mapped.rejected else ""
        return Response(otlp.encode(encoding, rejected=mapped.rejected, message=message), media_type=encoding.value)

    return router
