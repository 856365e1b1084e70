"""The app factory: opens storage, builds the ingest and/or query service, mounts them at `/` and `/api/v1`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

import ingest
import query
from ingest.flush import FlushOptions
from ingest.pipeline import PipelineOptions
from schemas import DEFAULT_TENANT_ID
from storage import Storage
from storage.keys import KeyRepository
from tracehouse import errors
from tracehouse.auth import AuthMiddleware
from tracehouse.body_limit import BodyLimitMiddleware, operations
from tracehouse.metrics import MetricsMiddleware, metrics_endpoint
from tracehouse.ratelimit import RateLimiter
from tracehouse.settings import Service, Settings
from tracehouse.timeouts import RequestTimeoutMiddleware
from tracehouse.tuning import tune_process

log = logging.getLogger("tracehouse")

# >= 0.8.10 enables multipart feedback in the SDK. Below 0.16 the SDK (0.15) logs a warning when its generated v2
# resources are used; tracehouse serves their run, trace and thread reads (docs/v2-api.md) but not the rest of v2
# (datasets, evaluators, sessions...), so it does not claim 0.16. SDK 0.15 chooses v1 or v2 for its own queries by
# /info's instance_flags, not by this version.
API_VERSION = "0.10.100"

# The SDK crashes its tracing thread on a partial batch_ingest_config (protocol §2.2): always send all six keys.
BATCH_INGEST_CONFIG = {
    "use_multipart_endpoint": True,
    "scale_up_qsize_trigger": 1000,
    "scale_up_nthreads_limit": 16,
    "scale_down_nempty_trigger": 4,
    "size_limit": 100,
    "size_limit_bytes": 20 * 1024 * 1024,
}


class Mounted(Protocol):
    router: APIRouter

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """State for the readiness probe; `"ready": False` takes the replica out of load balancing."""
        ...


def info() -> dict[str, Any]:
    return {
        "version": API_VERSION,
        "license_expiration_time": None,
        "batch_ingest_config": BATCH_INGEST_CONFIG,
        "instance_flags": {"zstd_compression_enabled": True},
    }


def _secret_key(settings: Settings) -> bytes:
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.data_dir / "secret_key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def create_app(settings: Settings, service: Service = "all") -> FastAPI:
    storage = Storage.open(
        settings.clickhouse_url,
        settings.blob_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        cluster=settings.clickhouse_cluster,
        short_ttl_days=settings.short_ttl_days,
        long_ttl_days=settings.long_ttl_days,
    )
    storage.projects.ensure_default(DEFAULT_TENANT_ID)
    mounted: list[Mounted] = []
    if service in ("all", "ingest"):
        pipeline = PipelineOptions(
            spool_dir=settings.spool_dir,
            spool_max_bytes=settings.spool_max_bytes,
            flush_interval=settings.flush_interval_ms / 1000,
            flush_busy_interval=max(settings.flush_interval_ms, settings.flush_busy_interval_ms) / 1000,
            flush_max_bytes=settings.flush_max_bytes,
            flush=FlushOptions(
                blob_offload_bytes=settings.blob_offload_bytes,
                cache_runs=settings.merge_cache_runs,
            ),
        )
        mounted.append(
            ingest.build(
                storage,
                ingest.IngestOptions(
                    pipeline=pipeline,
                    max_body_bytes=settings.max_body_bytes,
                    decode_workers=settings.decode_workers,
                    worker_setup=tune_process,
                ),
            )
        )
    if service in ("all", "query"):
        options = query.QueryOptions(secret_key=_secret_key(settings), max_trace_runs=settings.max_trace_runs)
        mounted.append(query.build(storage, options))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for part in mounted:
            part.start()
        log.info("tracehouse %s serving %s on %s", API_VERSION, service, settings.clickhouse_url)
        try:
            yield
        finally:
            for part in reversed(mounted):
                part.stop()
            storage.close()

    app = FastAPI(title="tracehouse", version=API_VERSION, lifespan=lifespan)
    app.state.storage = storage

    meta = APIRouter()
    meta.add_api_route("/info", info, methods=["GET"], summary="Server info read by the LangSmith SDK")
    meta.add_api_route("/ok", lambda: {"ok": True}, methods=["GET"], summary="Liveness probe")

    def health() -> JSONResponse:
        parts = {type(part).__name__: part.health() for part in mounted}
        ready = all(p.get("ready", True) for p in parts.values())
        return JSONResponse({"ok": ready, **parts}, status_code=200 if ready else 503)

    meta.add_api_route("/health", health, methods=["GET"], summary="Readiness probe")
    meta.add_api_route("/metrics", metrics_endpoint, methods=["GET"], summary="Prometheus metrics")
    routers = [meta, *(part.router for part in mounted)]
    for router in routers:
        app.include_router(router)
    for router in routers:
        app.include_router(router, prefix="/api/v1", include_in_schema=False)

    errors.install(app)

    keys = KeyRepository(storage.clickhouse) if settings.auth == "api-key" else None
    limiter = RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst) if settings.rate_limit_rps else None
    # Ingest streams its bodies and bounds them before and after decompression (max_body_bytes).
    streaming = [op for part in mounted if isinstance(part, ingest.IngestService) for op in operations(part.router)]
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_json_body_bytes, exempt=streaming)
    app.add_middleware(AuthMiddleware, lookup=keys, limiter=limiter)
    app.add_middleware(RequestTimeoutMiddleware, seconds=settings.request_timeout_s)
    app.add_middleware(MetricsMiddleware)  # added last, so outermost: rejected requests are counted too
    return app
