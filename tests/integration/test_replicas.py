"""Several ingest replicas over one ClickHouse: a run's post and patch may reach different replicas.

Embedded chDB allows one process per data directory, so two server processes cannot share one store here.
What differs between replicas is only their in-memory state (the flusher's cache); storage is shared. So
two `Flusher`s — two replicas' merge-and-write paths — run over one real chDB store in this process, in the
interleavings that matter, including the race where both look before either writes.
"""

from __future__ import annotations

import uuid

import pytest

from ingest import records
from ingest.flush import Flusher, FlushOptions
from schemas import DEFAULT_TENANT_ID
from schemas.runs import RunOp
from storage import Storage

T = DEFAULT_TENANT_ID


def post(run_id: uuid.UUID) -> bytes:
    fields = {
        "id": str(run_id),
        "name": "r",
        "run_type": "chain",
        "start_time": "2026-11-01T00:00:00.000000+00:00",
        "inputs": {"q": 1},
        "session_name": "replicas",
    }
    return records.encode(T, [RunOp("post", str(run_id), fields)], [])


def patch(run_id: uuid.UUID) -> bytes:
    fields = {"id": str(run_id), "end_time": "2026-11-01T00:00:01.000000+00:00", "outputs": {"a": 2}}
    return records.encode(T, [RunOp("patch", str(run_id), fields)], [])


def stored(storage: Storage, run_id: uuid.UUID) -> dict[str, object]:
    client = storage.clickhouse.client()
    rows = client.query(
        "SELECT status, inputs, outputs FROM runs FINAL WHERE tenant_id = {t:UUID} AND id = {id:UUID}",
        parameters={"t": T, "id": run_id},
    ).named_results()
    pending = client.query(
        "SELECT count() FROM pending_runs FINAL WHERE tenant_id = {t:UUID} AND id = {id:UUID}",
        parameters={"t": T, "id": run_id},
    ).result_rows[0][0]
    (row,) = list(rows)
    return {**row, "pending": pending}


DONE = {"status": "success", "inputs": '{"q":1}', "outputs": '{"a":2}', "pending": 0}


@pytest.mark.parametrize("cache_runs", [50_000, 0])
@pytest.mark.parametrize("order", ["post-then-patch", "patch-then-post"])
def test_post_and_patch_on_different_replicas(storage: Storage, order: str, cache_runs: int) -> None:
    a = Flusher(storage, FlushOptions(cache_runs=cache_runs))
    b = Flusher(storage, FlushOptions(cache_runs=cache_runs))
    run_id = uuid.uuid4()
    if order == "post-then-patch":
        a([post(run_id)])
        b([patch(run_id)])
    else:
        b([patch(run_id)])
        a([post(run_id)])
    assert stored(storage, run_id) == DONE


def test_race_both_look_before_either_writes(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    a = Flusher(storage, FlushOptions())
    b = Flusher(storage, FlushOptions())
    run_id = uuid.uuid4()
    looked = a.runs.pending

    def look_then_let_b_write(tenant_id: uuid.UUID, ids: object) -> dict[uuid.UUID, str]:
        found = looked(tenant_id, ids)  # A looks: nothing pending yet ...
        b([patch(run_id)])  # ... B looks (no run yet) and parks the patch as pending ...
        return found  # ... then A writes the run without it.

    monkeypatch.setattr(a.runs, "pending", look_then_let_b_write)
    a([post(run_id)])
    monkeypatch.undo()
    raced = stored(storage, run_id)
    assert raced["outputs"] is None and raced["pending"] == 1, "the race happened"
    assert a.reconcile(min_age=0) >= 1
    assert stored(storage, run_id) == DONE, "reconciliation merged the parked patch and retired it"


def test_children_stored_before_their_parents_follow_them(storage: Storage) -> None:
    """OTLP exporters send spans as they end: grandchild, then child, then root, in separate batches and
    without dotted orders. Once the root is stored, every descendant's ancestry is complete."""
    flusher = Flusher(storage, FlushOptions())
    trace, child, grandchild = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def span(run_id: uuid.UUID, parent: uuid.UUID | None, second: int) -> bytes:
        fields = {
            "id": str(run_id),
            "trace_id": str(trace),
            "name": str(second),
            "run_type": "chain",
            "start_time": f"2026-11-01T00:00:0{second}.000000+00:00",
            "end_time": "2026-11-01T00:00:09.000000+00:00",
            "session_name": "late",
        }
        if parent:
            fields["parent_run_id"] = str(parent)
        return records.encode(T, [RunOp("post", str(run_id), fields)], [])

    flusher([span(grandchild, child, 3)])
    flusher([span(child, trace, 2)])
    flusher([span(trace, None, 1)])
    rows = (
        storage.clickhouse.client()
        .query(
            "SELECT id, dotted_order, parent_run_ids FROM runs FINAL "
            "WHERE tenant_id = {t:UUID} AND trace_id = {tr:UUID}",
            parameters={"t": T, "tr": trace},
        )
        .result_rows
    )
    by_id = {row[0]: row for row in rows}
    assert by_id[grandchild][2] == [trace, child]
    root_dotted = by_id[trace][1]
    assert by_id[child][1].startswith(root_dotted + ".")
    assert by_id[grandchild][1].startswith(by_id[child][1] + ".")


def test_a_run_whose_post_never_comes_is_shown_after_a_while(storage: Storage) -> None:
    flusher = Flusher(storage, FlushOptions())
    run_id = uuid.uuid4()
    fields = {
        "id": str(run_id),
        "name": "orphan",
        "run_type": "llm",
        "start_time": "2026-11-01T00:00:00.000000+00:00",
        "end_time": "2026-11-01T00:00:01.000000+00:00",
        "outputs": {"a": 2},
        "session_name": "replicas",
    }
    flusher([records.encode(T, [RunOp("patch", str(run_id), fields)], [])])
    assert flusher.promote_orphans(min_age=3600) == 0, "too recent: its post may still come"
    assert flusher.promote_orphans(min_age=0) == 1
    row = stored(storage, run_id)
    assert (row["status"], row["outputs"], row["pending"]) == ("success", '{"a":2}', 0)
    flusher([post(run_id)])  # the post comes after all: it fills what the patch did not have
    assert stored(storage, run_id)["inputs"] == '{"q":1}'
