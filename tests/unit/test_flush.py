"""The batcher's flush against real chDB: batches larger than one lookup query can name."""

from __future__ import annotations

import uuid

import pytest

from ingest import records
from ingest.flush import Flusher, FlushOptions
from schemas.runs import RunOp
from storage import Storage
from storage.runs import RunStore, id_sets

TENANT = uuid.UUID(int=0xF1)
RUNS = 12_000  # more than two lookup chunks


def test_id_sets_chunk_and_refuse_other_text() -> None:
    ids = [str(uuid.uuid4()) for _ in range(12_001)]
    chunks = list(id_sets(ids))
    assert len(chunks) == 3
    assert sum(chunk.count("-") // 4 for chunk in chunks) == len(ids)
    with pytest.raises(ValueError, match="canonical"):
        list(id_sets(["x') OR 1=1 --"]))


def test_lookups_without_final_keep_the_newest_version(storage: Storage) -> None:
    a, b, c = (str(uuid.UUID(int=n)) for n in (1, 2, 3))
    rows = [
        (a, 2, 0, "a2"),
        (a, 1, 0, "a1"),
        (b, 1, 0, "b1"),
        (b, 3, 1, "b3-deleted"),
        (c, 5, 1, "c5"),
        (c, 6, 0, "c6"),
    ]
    for run_id, version, deleted, state in rows:  # one insert each: versions in separate, unmerged parts
        RunStore(storage.clickhouse).insert_pending([[str(TENANT), run_id, state, version, deleted]])
    assert RunStore(storage.clickhouse).pending(TENANT, [a, b, c]) == {a: "a2", c: "c6"}


def test_patches_of_a_large_batch_find_their_posts(storage: Storage) -> None:
    """Every patch looks its run up in ClickHouse (nothing cached: the posts were complete); with 12,000 ids
    in one batch the lookup spans several queries and must still find all of them."""
    flusher = Flusher(storage, FlushOptions())
    try:
        ids = [str(uuid.uuid4()) for _ in range(RUNS)]
        posts = [
            RunOp(
                "post",
                run_id,
                {
                    "id": run_id,
                    "name": "step",
                    "run_type": "tool",
                    "start_time": "2026-11-30T10:00:00.000000+00:00",
                    "end_time": "2026-11-30T10:00:01.000000+00:00",
                    "session_name": "large-batch",
                },
            )
            for run_id in ids
        ]
        flusher([records.encode(TENANT, posts, [])])
        patches = [RunOp("patch", run_id, {"id": run_id, "outputs": {"n": n}}) for n, run_id in enumerate(ids)]
        flusher([records.encode(TENANT, patches, [])])
        rows = (
            storage.clickhouse.client()
            .query(
                "SELECT name, outputs FROM runs FINAL WHERE tenant_id = {t:UUID} AND NOT is_deleted",
                parameters={"t": TENANT},
            )
            .result_rows
        )
        assert len(rows) == RUNS
        assert {name for name, _ in rows} == {"step"}, "a patch whose post was not found would be parked"
        assert sorted(int(outputs[5:-1]) for _, outputs in rows) == list(range(RUNS))
    finally:
        flusher.close()
