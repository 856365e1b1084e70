"""Deleting traces, runs by metadata, and whole projects, with their feedback and blobs.

ClickHouse lightweight deletes (`DELETE FROM … WHERE`) hide rows from every read at once and drop them from
disk at the next merges, which is the contract: invisible now, gone eventually. Blobs are removed by key
prefix (`tenant/project/trace/...`), after the rows, so a crash in between leaves unreferenced blobs (expired
later by retention), never rows pointing at missing blobs.
"""

from __future__ import annotations

import uuid
from typing import Any

from storage.blobs import BlobStore
from storage.clickhouse import ClickHouse

_CHUNK = 10_000


class Deleter:
    def __init__(self, ch: ClickHouse, blobs: BlobStore) -> None:
        self._ch = ch
        self._blobs = blobs

    def traces(self, tenant_id: uuid.UUID, project_id: uuid.UUID, trace_ids: list[uuid.UUID]) -> int:
        client = self._ch.client()
        params = {"t": tenant_id, "p": project_id, "traces": trace_ids}
        runs = client.query(
            "SELECT id FROM runs FINAL WHERE tenant_id = {t:UUID} AND session_id = {p:UUID} "
            "AND trace_id IN {traces:Array(UUID)}",
            parameters=params,
        ).result_rows
        client.command(
            "DELETE FROM feedback WHERE tenant_id = {t:UUID} AND (trace_id IN {traces:Array(UUID)} "
            "OR run_id IN {runs:Array(UUID)})",
            parameters={**params, "runs": [r[0] for r in runs]},
        )
        for table in ("runs", "run_ids", "run_shares"):
            client.command(
                f"DELETE FROM {table} WHERE tenant_id = {{t:UUID}} AND session_id = {{p:UUID}} "
                "AND trace_id IN {traces:Array(UUID)}",
                parameters=params,
            )
        for trace_id in trace_ids:
            self._blobs.delete_prefix(f"{tenant_id}/{project_id}/{trace_id}")
        return len(runs)

    def by_metadata(self, tenant_id: uuid.UUID, metadata: dict[str, Any]) -> int:
        """Runs having any of these metadata key/value pairs (values compared as stored: strings as-is)."""
        conds, params = [], {"t": tenant_id}
        for index, (key, value) in enumerate(metadata.items()):
            conds.append(f"metadata[{{k{index}:String}}] = {{v{index}:String}}")
            params[f"k{index}"], params[f"v{index}"] = str(key), value if isinstance(value, str) else str(value)
        client = self._ch.client()
        runs = client.query(
            f"SELECT id, session_id, trace_id FROM runs FINAL WHERE tenant_id = {{t:UUID}} AND ({' OR '.join(conds)})",
            parameters=params,
        ).result_rows
        for start in range(0, len(runs), _CHUNK):
            chunk = runs[start : start + _CHUNK]
            ids = {"t": tenant_id, "ids": [r[0] for r in chunk]}
            client.command(
                "DELETE FROM feedback WHERE tenant_id = {t:UUID} AND run_id IN {ids:Array(UUID)}", parameters=ids
            )
            for table, column in (("runs", "id"), ("run_ids", "id"), ("run_shares", "run_id")):
                client.command(
                    f"DELETE FROM {table} WHERE tenant_id = {{t:UUID}} AND {column} IN {{ids:Array(UUID)}}",
                    parameters=ids,
                )
        for run_id, project_id, trace_id in runs:
            self._blobs.delete_prefix(f"{tenant_id}/{project_id}/{trace_id}/{run_id}")
        return len(runs)

    def project(self, tenant_id: uuid.UUID, project_id: uuid.UUID) -> None:
        client = self._ch.client()
        params = {"t": tenant_id, "p": project_id}
        client.command(
            "DELETE FROM feedback WHERE tenant_id = {t:UUID} AND (session_id = {p:UUID} OR run_id IN "
            "(SELECT id FROM run_ids FINAL WHERE tenant_id = {t:UUID} AND session_id = {p:UUID}))",
            parameters=params,
        )
        for table in ("runs", "run_ids", "run_shares"):
            client.command(
                f"DELETE FROM {table} WHERE tenant_id = {{t:UUID}} AND session_id = {{p:UUID}}", parameters=params
            )
        self._blobs.delete_prefix(f"{tenant_id}/{project_id}")
