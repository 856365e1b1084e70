"""The run lookup tables have no TTL of their own: their rows expire with the longest retention."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from storage import Storage
from storage.runs import PENDING_COLUMNS

TENANT = uuid.UUID(int=0xE1)
DAY_NS = 86_400 * 1_000_000_000


def test_lookup_rows_older_than_the_longest_retention_are_removed(tmp_path: Path) -> None:
    storage = Storage.open(f"chdb://{tmp_path / 'ch'}", f"file://{tmp_path / 'blobs'}", long_ttl_days=30)
    try:
        client = storage.clickhouse.client()
        now = time.time_ns()
        ages = {"expired": now - 40 * DAY_NS, "kept": now - 20 * DAY_NS, "new": now}  # longest: 30 + 7 days
        ids = {name: str(uuid.uuid4()) for name in ages}
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for table in ("run_ids", "runs_by_start"):
            client.insert(
                table,
                [[str(TENANT), ids[name], str(TENANT), start, ids[name], v, 0] for name, v in ages.items()],
                column_names=["tenant_id", "id", "session_id", "start_time", "trace_id", "version", "is_deleted"],
            )
        client.insert(
            "pending_runs",
            [[str(TENANT), ids[name], "{}", version, 0] for name, version in ages.items()],
            column_names=PENDING_COLUMNS,
        )

        def left(table: str) -> set[str]:
            return {str(row[0]) for row in client.query(f"SELECT id FROM {table}").result_rows}

        storage.retention.expire(storage.blobs)
        assert left("run_ids") == left("runs_by_start") == left("pending_runs") == {ids["kept"], ids["new"]}
        client.insert(
            "pending_runs", [[str(TENANT), ids["expired"], "{}", ages["expired"], 0]], column_names=PENDING_COLUMNS
        )
        storage.retention.expire(storage.blobs)
        assert ids["expired"] in left("pending_runs"), "at most hourly"
    finally:
        storage.close()
