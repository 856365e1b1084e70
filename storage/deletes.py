"""Deleting traces, runs by metadata, and whole projects, with their feedback and blobs.

ClickHouse lightweight deletes (`DELETE FROM … WHERE`) hide rows from every read at once and drop them from
disk at the next merges, which is the contract: invisible now, gone eventually. Blobs are removed by key
prefix (`tenant/project/trace/...`), after the rows, so a crash in between leaves unreferenced blobs (expired
later by retention), never rows pointing at missing blobs.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from schemas import jsonutil
from storage.blobs import BlobStore
from storage.clickhouse import ClickHouse

_CHUNK = 10_000  # ids per statement
_TRACES = 1_000  # traces per deletion
_METADATA_VALUE_CHARS = 256  # runs.metadata values are stored truncated to this many characters


class Deleter:
    def __init__(self, ch: ClickHouse, blobs: BlobStore) -> None:
        self._ch = ch
        self._blobs = blobs

    def traces(self, tenant_id: uuid.UUID, project_id: uuid.UUID, trace_ids: list[uuid.UUID]) -> int:
        """Whole traces of one project, with their feedback, shares and blobs; returns the number of runs."""
        client = self._ch.client()
        params = {"t": tenant_id, "p": project_id, "traces": trace_ids}
        # ids and trace ids never change between versions: no FINAL, one row per run.
        runs = [
            row[0]
            for row in client.query(
                "SELECT id FROM runs WHERE tenant_id = {t:UUID} AND session_id = {p:UUID} "
                "AND trace_id IN {traces:Array(UUID)} LIMIT 1 BY id",
                parameters=params,
            ).result_rows
        ]
        # Feedback of these runs wherever it was stored from, and feedback naming these traces in this project
        # (its run may not have arrived); a trace id of another project deletes nothing there.
        client.command(
            "DELETE FROM feedback WHERE tenant_id = {t:UUID} AND trace_id IN {traces:Array(UUID)} "
            "AND session_id = {p:UUID}",
            parameters=params,
        )
        for start in range(0, len(runs), _CHUNK):
            client.command(
                "DELETE FROM feedback WHERE tenant_id = {t:UUID} AND run_id IN {ids:Array(UUID)}",
                parameters={"t": tenant_id, "ids": runs[start : start + _CHUNK]},
            )
        for table in ("runs", "run_ids", "runs_by_start", "run_shares"):
            client.command(
                f"DELETE FROM {table} WHERE tenant_id = {{t:UUID}} AND session_id = {{p:UUID}} "
                "AND trace_id IN {traces:Array(UUID)}",
                parameters=params,
            )
        for trace_id in trace_ids:
            self._blobs.delete_prefix(f"{tenant_id}/{project_id}/{trace_id}/")
        return len(runs)

    def by_metadata(self, tenant_id: uuid.UUID, metadata: dict[str, Any]) -> int:
        """The traces, across the tenant's projects, of which a run has any of these metadata key/value pairs
        (LangSmith deletes traces by metadata); values compared as stored: strings as-is, others as JSON."""
        conds, params = [], {"t": tenant_id}
        for index, (key, value) in enumerate(metadata.items()):
            conds.append(f"metadata[{{k{index}:String}}] = {{v{index}:String}}")
            text = value if isinstance(value, str) else jsonutil.dumps_str(value)
            params[f"k{index}"], params[f"v{index}"] = str(key), text[:_METADATA_VALUE_CHARS]
        found = (
            self._ch.client()
            .query(
                f"SELECT DISTINCT session_id, trace_id FROM runs FINAL WHERE tenant_id = {{t:UUID}} "
                f"AND ({' OR '.join(conds)})",
                parameters=params,
            )
            .result_rows
        )
        by_project: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for project_id, trace_id in found:
            by_project[project_id].append(trace_id)
        return sum(
            self.traces(tenant_id, project_id, traces[start : start + _TRACES])
            for project_id, traces in by_project.items()
            for start in range(0, len(traces), _TRACES)
        )

    def project(self, tenant_id: uuid.UUID, project_id: uuid.UUID) -> None:
        client = self._ch.client()
        params = {"t": tenant_id, "p": project_id}
        client.command(
            "DELETE FROM feedback WHERE tenant_id = {t:UUID} AND (session_id = {p:UUID} OR run_id IN "
            "(SELECT id FROM run_ids FINAL WHERE tenant_id = {t:UUID} AND session_id = {p:UUID}))",
            parameters=params,
        )
        for table in ("runs", "run_ids", "runs_by_start", "run_shares", "thread_shares"):
            client.command(
                f"DELETE FROM {table} WHERE tenant_id = {{t:UUID}} AND session_id = {{p:UUID}}", parameters=params
            )
        self._blobs.delete_prefix(f"{tenant_id}/{project_id}/")
