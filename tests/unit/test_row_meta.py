"""`runs.row_meta` (storage/row_meta.py): the migration computes the columns the decoder expects, in its order, and
a run read through it equals the run read through its columns, for every kind of value those columns hold."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage import Storage, row_meta
from storage.run_queries import META_COLUMNS, PAYLOAD_COLUMNS, RunReader
from storage.runs import RUN_COLUMNS
from tests.support import run_row

TENANT = uuid.UUID(int=0x7E58)
PROJECT = uuid.UUID(int=0x9003)
START = datetime(2026, 11, 3, 12, 0, 0, 123456, tzinfo=UTC)


def _open(root: Path) -> Storage:
    return Storage.open(f"chdb://{root}/ch", f"file://{root}/blobs")


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    opened = _open(tmp_path)  # one store open at a time: chDB allows one data directory per process
    try:
        yield opened
    finally:
        opened.close()


def test_the_migration_computes_the_columns_the_decoder_reads(storage: Storage) -> None:
    found = storage.clickhouse.client().query(
        "SELECT default_kind, default_expression FROM system.columns "
        "WHERE database = currentDatabase() AND table = 'runs' AND name = 'row_meta'"
    )
    assert found.result_rows == [("MATERIALIZED", row_meta.EXPRESSION)]
    assert set(row_meta.COLUMNS) == set(META_COLUMNS) - {"session_id", "id", "start_time"}


def _runs() -> list[dict[str, Any]]:
    """Runs whose columns between them hold every kind of value: nulls and their absence, extremes, any text."""
    trace = uuid.uuid4()
    child = uuid.uuid4()
    return [
        {"id": trace, "trace_id": trace, "parent": None},
        {
            "id": child,
            "trace_id": trace,
            "parent": trace,
            "name": 'tool \u0000 \u2018quoted\u2019 "x" \\ 🦜 \u2028',
            "run_type": "llm",
            "status": "error",
            "end_time": START + timedelta(seconds=3, microseconds=1),
            "first_token_time": START + timedelta(microseconds=999_999),
            "error": "Traceback:\n\tline 1\r\n\u0000",
            "payload_refs": {"inputs": f"{TENANT}/{PROJECT}/{trace}/{child}/inputs"},
            "attachments": {"a b.png": '{"key":"k","mime_type":"image/png","size":3}'},
            "tags": ["a", "", "é"],
            "thread_id": "thread-1",
            "reference_example_id": uuid.uuid4(),
            "prompt_tokens": 2**64 - 1,
            "completion_tokens": 2**53 + 1,
            "total_tokens": 7,
            "prompt_cost": 0.1,
            "completion_cost": 1e-12,
            "total_cost": 12345.678901234567,
            "prompt_token_details": '{"cache_read":3}',
            "completion_token_details": '{"reasoning":1}',
            "prompt_cost_details": '{"cache_read":0.5}',
            "completion_cost_details": '{"reasoning":0.25}',
        },
        {
            "id": uuid.uuid4(),
            "trace_id": trace,
            "parent": child,
            "parent_run_ids": [trace, child],
            "end_time": datetime(1970, 1, 1, tzinfo=UTC),
            "prompt_cost": 0.0,
            "total_cost": -1.5,
        },
    ]


def _store(storage: Storage) -> list[dict[str, Any]]:
    runs = _runs()
    rows = []
    for offset, run in enumerate(runs):
        values = {k: v for k, v in run.items() if k not in ("id", "trace_id", "parent")}
        start = START + timedelta(milliseconds=offset)
        rows.append(
            run_row(run["id"], run["trace_id"], run["parent"], start, tenant_id=TENANT, session_id=PROJECT, **values)
        )
    storage.clickhouse.client().insert("runs", rows, column_names=list(RUN_COLUMNS))
    return runs


def _assert_reads_agree(storage: Storage, runs: list[dict[str, Any]]) -> None:
    reader = RunReader(storage.clickhouse)
    where = "session_id = {p:UUID}"
    columns = META_COLUMNS + PAYLOAD_COLUMNS
    assert set(row_meta.select(columns)) == {"row_meta", "session_id", "id", "start_time", *PAYLOAD_COLUMNS}
    plain = reader.latest(TENANT, where=where, params={"p": PROJECT}, columns=columns)
    through = reader.latest(TENANT, where=where, params={"p": PROJECT}, columns=columns, scattered=True)
    assert len(plain) == len(runs)
    assert through == plain
    assert {k: type(v) for k, v in through[1].items()} == {k: type(v) for k, v in plain[1].items()}
    assert through[1]["name"] == runs[1]["name"] and through[1]["prompt_tokens"] == 2**64 - 1


def test_runs_read_through_row_meta_equal_runs_read_through_columns(storage: Storage) -> None:
    _assert_reads_agree(storage, _store(storage))


def test_runs_stored_before_the_migration_read_the_same(tmp_path: Path) -> None:
    storage = _open(tmp_path)
    try:
        client = storage.clickhouse.client()
        client.command("ALTER TABLE runs DROP COLUMN row_meta")
        client.command("DELETE FROM schema_migrations WHERE version = 70")
        runs = _store(storage)
    finally:
        storage.close()
    storage = _open(tmp_path)  # applies migration 70 again
    try:
        _assert_reads_agree(storage, runs)
    finally:
        storage.close()
