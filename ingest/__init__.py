"""Write service: LangSmith ingest endpoints, OTLP endpoint, decoding, run merge, batching."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter

from storage import Storage


@dataclass(frozen=True, slots=True)
class IngestOptions:
    max_body_bytes: int = 100 * 1024 * 1024
    blob_offload_bytes: int = 20 * 1024


class IngestService:
    """Owns the ingest routes and the background pipeline behind them."""

    def __init__(self, storage: Storage, options: IngestOptions) -> None:
        self.storage = storage
        self.options = options
        self.router = APIRouter()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def build(storage: Storage, options: IngestOptions) -> IngestService:
    return IngestService(storage, options)
