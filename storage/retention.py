"""Retention: runs expire `ttl_days` after they were written (ClickHouse TTL on `runs`), short-lived by
default and long-lived once their trace gets feedback; blobs expire with the longest retention.

The upgrade is a ClickHouse mutation of `ttl_days` on the trace's stored rows, not a re-insert: the ingest
batcher is the only writer of run versions, and a re-insert from here could overwrite a newer version.
The batcher keeps a stored run's `ttl_days` when it writes a later version of it.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

from storage.blobs import BlobStore
from storage.clickhouse import ClickHouse
from storage.projects import ProjectRepository


class Retention:
    def __init__(self, ch: ClickHouse, projects: ProjectRepository, *, short_days: int, long_days: int) -> None:
        self._ch = ch
        self.projects = projects
        self.short_days = short_days
        self.long_days = long_days
        self._next_blob_sweep = 0.0

    def days(self, tenant_id: uuid.UUID, project_id: uuid.UUID) -> tuple[int, int]:
        """(short, long) retention of a project: its own settings, else the server's."""
        project = self.projects.cached(tenant_id, project_id)
        short = (project.short_ttl_days if project else None) or self.short_days
        long = (project.long_ttl_days if project else None) or self.long_days
        return short, max(short, long)

    def expire_blobs(self, blobs: BlobStore, *, every_seconds: float = 3600.0) -> int:
        """At most hourly: remove blobs older than the longest retention any project has, plus a week's
        margin. Blobs are written once per payload, so a blob that old belongs to no run still kept (a run
        rewritten with an unchanged payload more than that long after it was offloaded is the exception)."""
        now = time.monotonic()
        if now < self._next_blob_sweep:
            return 0
        self._next_blob_sweep = now + every_seconds
        longest = self._ch.client().query("SELECT max(ifNull(long_ttl_days, 0)) FROM projects FINAL").result_rows
        days = max(self.long_days, longest[0][0] or 0) + 7
        return blobs.delete_older_than(days * 86400)

    def upgrade(self, tenant_id: uuid.UUID, trace_ids: list[uuid.UUID], run_ids: list[uuid.UUID]) -> None:
        """Keep these traces (and the traces of these runs) for their project's long-lived period."""
        client = self._ch.client()
        located = client.query(
            "SELECT id, trace_id, session_id FROM run_ids FINAL WHERE tenant_id = {t:UUID} AND id IN {ids:Array(UUID)}",
            parameters={"t": tenant_id, "ids": list({*trace_ids, *run_ids})},
        ).result_rows
        by_project: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        for run_id, trace_id, session_id in located:
            if run_id in trace_ids or run_id in run_ids:
                by_project[session_id].add(trace_id)
        for project_id, traces in by_project.items():
            _, long = self.days(tenant_id, project_id)
            client.command(
                "ALTER TABLE runs UPDATE ttl_days = {long:UInt16} WHERE tenant_id = {t:UUID} "
                "AND session_id = {p:UUID} AND trace_id IN {traces:Array(UUID)} AND ttl_days < {long:UInt16}",
                parameters={"t": tenant_id, "p": project_id, "traces": list(traces), "long": long},
            )
