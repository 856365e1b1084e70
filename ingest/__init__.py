"""Write service: LangSmith ingest endpoints, OTLP endpoint, decoding, run merge, batching."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from ingest import otlp_api
from ingest.pipeline import Pipeline, PipelineOptions
from ingest.routes import build_router
from ingest.workers import DecodePool
from storage import Storage


@dataclass(frozen=True, slots=True)
class IngestOptions:
    pipeline: PipelineOptions
    max_body_bytes: int = 100 * 1024 * 1024
    decode_workers: int = 2
    worker_setup: Callable[[], None] | None = None  # run in each decode worker as it starts (module level)


class IngestService:
    """Owns the ingest routes and the background pipeline behind them."""

    def __init__(self, storage: Storage, options: IngestOptions) -> None:
        self.storage = storage
        self.options = options
        self.pipeline = Pipeline(storage, options.pipeline)
        self.decoder = DecodePool(options.decode_workers, options.worker_setup)
        self.router = APIRouter()
        self.router.include_router(build_router(self.pipeline, self.decoder, max_body_bytes=options.max_body_bytes))
        self.router.include_router(
            otlp_api.build_router(self.pipeline, self.decoder, max_body_bytes=options.max_body_bytes)
        )

    def start(self) -> None:
        self.decoder.start()
        self.pipeline.start()

    def stop(self) -> None:
        self.decoder.close()
        self.pipeline.stop()

    def health(self) -> dict[str, Any]:
        """Not ready when the spool is 90% full: new writes should go to a replica that can take them."""
        depth = self.pipeline.spool.depth_bytes()
        limit = self.options.pipeline.spool_max_bytes
        batcher = self.pipeline.batcher
        return {
            "ready": depth < 0.9 * limit,
            "spool_bytes": depth,
            "spool_limit_bytes": limit,
            "storage_ok": batcher.healthy,
            "last_error": batcher.last_error,
        }


def build(storage: Storage, options: IngestOptions) -> IngestService:
    return IngestService(storage, options)
