"""Read service: filter language -> SQL, runs query, run trees, threads, projects, feedback, stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from query import (
    feedback_api,
    projects_api,
    public_v2_api,
    runs_api,
    runs_v2_api,
    sessions_v2_api,
    sharing,
    stats_api,
    thread_aggregate_stats_api,
    thread_shares_api,
    thread_stats_api,
    threads,
    threads_v2_api,
    traces_v2_api,
    trees,
)
from query.run_reads import RunReads
from storage import Storage


@dataclass(frozen=True, slots=True)
class QueryOptions:
    secret_key: bytes = b""  # signs attachment and share URLs
    max_trace_runs: int = 20_000  # runs a read of a whole trace returns at most


class QueryService:
    def __init__(self, storage: Storage, options: QueryOptions) -> None:
        self.storage = storage
        self.options = options
        self.router = APIRouter()
        self.runs = RunReads(storage, options.secret_key, max_trace_runs=options.max_trace_runs)
        for routes in (
            runs_api,
            runs_v2_api,
            traces_v2_api,
            threads_v2_api,
            thread_stats_api,
            thread_aggregate_stats_api,
            thread_shares_api,
            trees,
            threads,
            sharing,
            public_v2_api,
        ):
            self.router.include_router(routes.router(self.runs))
        for api in (projects_api, sessions_v2_api, feedback_api, stats_api):
            self.router.include_router(api.router(storage))

    def start(self) -> None:
        self.storage.retention.start()  # re-queues trace upgrades a restart interrupted

    def stop(self) -> None:
        self.runs.background.shutdown(cancel_futures=True)

    def health(self) -> dict[str, Any]:
        """Ready when ClickHouse answers: a query replica without storage can serve nothing. The blob store is
        reported, not required: most reads never touch it."""
        try:
            self.storage.clickhouse.client().query("SELECT 1")
        except Exception as exc:
            return {"ready": False, "error": repr(exc)}
        try:
            self.storage.blobs.check()
        except Exception as exc:
            return {"ready": True, "blobs_ok": False, "blobs_error": repr(exc)}
        return {"ready": True, "blobs_ok": True}


def build(storage: Storage, options: QueryOptions) -> QueryService:
    return QueryService(storage, options)
