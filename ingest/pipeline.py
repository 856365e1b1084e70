"""The write pipeline: accepted ops are spooled durably (the ack), then batched into storage in the
background. Every wire format (multipart, batch JSON, single runs, OTLP) enters through `submit`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest import records
from ingest.flush import Flusher, FlushOptions
from schemas import Tenant
from schemas.runs import RunOp
from storage import Storage, metrics
from storage.batcher import MAX_BATCH_BYTES, Batcher
from storage.spool import Spool


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    spool_dir: Path
    spool_max_bytes: int = 1024 * 1024 * 1024
    flush_interval: float = 0.25
    flush_busy_interval: float = 1.0
    flush_max_bytes: int = MAX_BATCH_BYTES
    flush: FlushOptions = field(default_factory=FlushOptions)


class Pipeline:
    def __init__(self, storage: Storage, options: PipelineOptions) -> None:
        self.storage = storage
        self.spool = Spool(options.spool_dir, max_bytes=options.spool_max_bytes)
        self.flusher = Flusher(storage, options.flush)
        self.batcher = Batcher(
            self.spool,
            self.flusher,
            interval=options.flush_interval,
            busy_interval=options.flush_busy_interval,
            max_bytes=options.flush_max_bytes,
            maintenance=self._maintenance,
        )

    def _maintenance(self) -> None:
        """On the batcher's thread, every few seconds: merge parked patches, store runs whose post never came,
        and expire old blobs and lookup rows (hourly)."""
        self.flusher.reconcile()
        self.flusher.promote_orphans()
        self.storage.retention.expire(self.storage.blobs)

    def start(self) -> None:
        self.batcher.start()

    def stop(self) -> None:
        """Graceful: stop taking writes, flush what is spooled, close. What cannot be flushed stays spooled."""
        self.batcher.stop(drain=True)
        self.spool.close()
        self.flusher.close()

    async def submit(
        self,
        tenant: Tenant,
        ops: list[RunOp],
        feedback: list[dict[str, Any]] | None = None,
        *,
        source: str = "langsmith",
    ) -> None:
        """Returns once the ops are durable; raises ApiError 429/503 (with Retry-After) under overload."""
        if ops or feedback:
            record = records.encode(tenant.id, ops, feedback or [])
            await self.submit_record(record, len(ops), len(feedback or []), source=source)

    async def submit_record(self, record: bytes, runs: int, feedback: int = 0, *, source: str = "langsmith") -> None:
        """`submit` for a record already encoded (by a decode worker), with its counts for the metrics."""
        await self.spool.append(record)
        metrics.RUNS_ACCEPTED.labels(source).inc(runs)
        metrics.FEEDBACK_ACCEPTED.inc(feedback)
