"""Posts presumed new (`ingest.fresh`) against real chDB: rows built by the decode worker are the rows the batcher
would have merged and derived, and every way the presumption fails falls back to merging."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import pytest

from ingest import decode, fresh, records
from ingest.derive import segment
from ingest.flush import Flusher, FlushOptions
from ingest.fresh import FreshRun
from ingest.workers import spool_record
from schemas.runs import RunOp
from storage import Storage
from storage.runs import unpack_row

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
# Every column but the tenant, the version and the insert time; payload texts parsed, as their bytes may differ.
COLUMNS = (
    "session_id, id, trace_id, parent_run_id, parent_run_ids, dotted_order, is_root, name, run_type, status, "
    "start_time, end_time, first_token_time, error, JSONExtractRaw(inputs), JSONExtractRaw(outputs), "
    "JSONExtractRaw(extra), JSONExtractRaw(events), serialized, payload_refs, attachments, tags, metadata, "
    "inputs_kv, outputs_kv, thread_id, reference_example_id, prompt_tokens, completion_tokens, total_tokens, "
    "prompt_cost, completion_cost, total_cost, prompt_token_details, ttl_days, is_deleted"
)


def post(run_id: str, parent: dict[str, Any] | None = None, **fields: Any) -> RunOp:
    """An SDK-shaped post: dotted order and trace id given, started `offset` seconds after T0."""
    start = T0 + timedelta(seconds=fields.pop("offset", 0))
    dotted = segment(start, run_id)
    body = {
        "id": run_id,
        "name": "step",
        "run_type": "chain",
        "start_time": start.isoformat(),
        "session_name": "fresh",
        "trace_id": parent["trace_id"] if parent else run_id,
        "dotted_order": f"{parent['dotted_order']}.{dotted}" if parent else dotted,
        **({"parent_run_id": parent["id"]} if parent else {}),
        **fields,
    }
    return decode.from_run("post", run_id, body, "test")


def patch(run_id: str, **fields: Any) -> RunOp:
    return decode.from_run("patch", run_id, fields, "test")


def request(tenant: uuid.UUID, *ops: RunOp, presume: bool = True) -> bytes:
    """A spool record as a decode worker makes it, or (`presume=False`) with every op merged by the batcher."""
    if presume:
        return spool_record(tenant, decode.Decoded(ops=list(ops)))[0]
    return records.encode(tenant, list(ops), [])


def stored(storage: Storage, tenant: uuid.UUID) -> dict[str, tuple[Any, ...]]:
    rows = (
        storage.clickhouse.client()
        .query(f"SELECT {COLUMNS} FROM runs FINAL WHERE tenant_id = {{t:UUID}} ORDER BY id", parameters={"t": tenant})
        .result_rows
    )
    return {str(row[1]): row for row in rows}


def trace(root_id: str) -> list[RunOp]:
    """A finished trace as the SDK posts it in one request: every field the row derives something from."""
    root = post(
        root_id,
        end_time=(T0 + timedelta(seconds=3)).isoformat(),
        inputs={"question": "why?", "n": 3, "nested": {"deep": [1, {"x": None}]}},
        outputs={"answer": "because"},
        extra={"metadata": {"thread_id": "t-1", "user": "ann", "n": 2}, "runtime": {"sdk": "py"}},
        tags=["a", "b"],
        reference_example_id=str(uuid.uuid4()),
        serialized={"name": "agent"},
    )
    parent = root.fields
    llm_id = str(uuid.uuid4())
    llm = post(
        llm_id,
        parent,
        offset=1,
        run_type="llm",
        end_time=(T0 + timedelta(seconds=2)).isoformat(),
        outputs={"generations": [{"text": "hi"}], "usage_metadata": {"input_tokens": 5, "output_tokens": 7}},
        extra={"metadata": {"usage_metadata": {"input_tokens": 10, "output_tokens": 20, "input_cost": 0.5}}},
        events=[{"name": "start"}, {"name": "new_token", "time": (T0 + timedelta(seconds=1.5)).isoformat()}],
    )
    failed = post(
        str(uuid.uuid4()), llm.fields, offset=1.2, error="boom", end_time=(T0 + timedelta(seconds=2)).isoformat()
    )
    running = post(str(uuid.uuid4()), parent, offset=2.5, inputs={"q": 'ü \u2028 "quoted"'})
    return [root, llm, failed, running]


@pytest.fixture
def flusher(storage: Storage) -> Iterator[Flusher]:
    opened = Flusher(storage, FlushOptions())
    yield opened
    opened.close()


def test_rows_built_in_the_worker_are_the_rows_the_batcher_builds(storage: Storage, flusher: Flusher) -> None:
    presumed, merged = uuid.uuid4(), uuid.uuid4()
    root_id = str(uuid.uuid4())
    ops = trace(root_id)
    record = request(presumed, *ops)
    assert records.decode(record).ops == [], "every post of the trace is presumed new"
    flusher([record])
    flusher([request(merged, *ops, presume=False)])
    by_worker, by_batcher = stored(storage, presumed), stored(storage, merged)
    assert len(by_worker) == 4
    assert {k: v[1:] for k, v in by_worker.items()} == {k: v[1:] for k, v in by_batcher.items()}, "but project"
    llm = by_worker[ops[1].run_id]
    assert (llm[27], llm[28], llm[29], llm[30]) == (10, 20, 30, 0.5), "usage from extra.metadata wins"
    assert llm[12] is not None, "first token time from the events"
    assert by_worker[root_id][25] == "t-1"


@pytest.mark.parametrize("form", ["msgpack", "columns"])
def test_rows_spooled_before_they_were_rowbinary_are_stored_the_same(
    storage: Storage, flusher: Flusher, form: str
) -> None:
    """A spool written by an earlier version is replayed by this one: rows as MsgPack, and before that as lists
    of COLUMNS."""
    packed, earlier_id = uuid.uuid4(), uuid.uuid4()
    ops = trace(str(uuid.uuid4()))
    flusher([request(packed, *ops)])
    found = records.decode(request(earlier_id, *ops)).fresh
    assert found is not None
    rows = [unpack_row(row, fresh.COLUMNS) for row in found.pop("rowbinary")]
    if form == "msgpack":
        header = len(msgpack.Packer().pack_array_header(len(fresh.COLUMNS)))
        earlier = {**found, "rows": [msgpack.packb(row)[header:] for row in rows]}
    else:
        columns = [list(column) for column in zip(*rows, strict=True)]
        earlier = {"columns": columns, "sessions": found["sessions"], "text_bytes": found["text_bytes"]}
    flusher([records.encode(earlier_id, [], [], fresh=records.pack_fresh(earlier))])
    by_packed, by_earlier = stored(storage, packed), stored(storage, earlier_id)
    assert len(by_earlier) == 4
    assert {k: v[1:] for k, v in by_earlier.items()} == {k: v[1:] for k, v in by_packed.items()}, "but project"


def test_text_utf8_cannot_carry_is_stored_as_the_batcher_stores_it(storage: Storage, flusher: Flusher) -> None:
    presumed, merged = uuid.uuid4(), uuid.uuid4()
    run_id = str(uuid.uuid4())
    op = post(run_id, name="a\ud800b", tags=["t\udfff"])
    record = request(presumed, op)
    assert records.decode(record).ops == [], "its row was built and packed by the worker"
    flusher([record])
    flusher([request(merged, op, presume=False)])
    by_worker, by_batcher = stored(storage, presumed)[run_id], stored(storage, merged)[run_id]
    assert (by_worker[7], by_worker[21]) == ("a\ufffdb", ["t\ufffd"]), "a lone surrogate becomes U+FFFD"
    assert by_worker[1:] == by_batcher[1:]


def test_a_patch_in_the_same_batch_or_a_later_one_merges_onto_a_presumed_post(
    storage: Storage, flusher: Flusher
) -> None:
    tenant = uuid.uuid4()
    same, later = str(uuid.uuid4()), str(uuid.uuid4())
    end = (T0 + timedelta(seconds=5)).isoformat()
    flusher(
        [
            request(tenant, post(same, inputs={"q": 1}), post(later, inputs={"q": 2}, offset=1)),
            request(tenant, patch(same, end_time=end, outputs={"a": 1})),
        ]
    )
    cached = flusher.cache.get((str(tenant), later))
    assert isinstance(cached, FreshRun), "an open run is cached for its patch"
    assert cached.state(storage.blobs)["inputs"] == {"q": 2}, "its own row, read back when its patch comes"
    flusher([request(tenant, patch(later, end_time=end, outputs={"a": 2}))])
    rows = stored(storage, tenant)
    for run_id, value in ((same, 1), (later, 2)):
        assert rows[run_id][9] == "success"
        assert (rows[run_id][14], rows[run_id][15]) == (f'{{"q":{value}}}', f'{{"a":{value}}}')


def test_a_post_sent_twice_or_after_its_patch_is_merged(storage: Storage, flusher: Flusher) -> None:
    tenant = uuid.uuid4()
    twice, patched_first = str(uuid.uuid4()), str(uuid.uuid4())
    end = (T0 + timedelta(seconds=5)).isoformat()
    flusher([request(tenant, patch(patched_first, end_time=end, outputs={"a": 1}))])
    assert stored(storage, tenant) == {}, "a patch alone is parked"
    flusher(
        [
            request(tenant, post(twice, inputs={"q": 1})),
            request(tenant, post(twice, inputs={"q": 2}, end_time=end), post(patched_first, inputs={"q": 3})),
        ]
    )
    rows = stored(storage, tenant)
    assert rows[twice][14] == '{"q":1}', "a post fills only what is missing"
    assert rows[twice][9] == "success"
    assert (rows[patched_first][14], rows[patched_first][15]) == ('{"q":3}', '{"a":1}')
    flusher([request(tenant, post(twice, inputs={"q": 4}))])  # stored in an earlier batch: found by lookup
    assert stored(storage, tenant)[twice][14] == '{"q":1}'
    bare = str(uuid.uuid4())
    flusher([request(tenant, post(bare))])  # open: cached as presumed new
    flusher([request(tenant, post(bare, inputs={"q": 5}))])
    assert stored(storage, tenant)[bare][14] == '{"q":5}', "what the first post lacked, a second one fills"


def test_a_child_whose_dotted_order_its_parent_contradicts_is_derived_again(storage: Storage, flusher: Flusher) -> None:
    tenant = uuid.uuid4()
    parent = post(str(uuid.uuid4()))
    claimed = {**parent.fields, "dotted_order": segment(T0 - timedelta(days=1), parent.run_id)}
    child = post(str(uuid.uuid4()), claimed, offset=1)
    flusher([request(tenant, parent, child)])
    rows = stored(storage, tenant)
    expected = f"{parent.fields['dotted_order']}.{segment(T0 + timedelta(seconds=1), child.run_id)}"
    assert rows[child.run_id][5] == expected


def test_a_payload_above_the_offload_size_goes_to_the_blob_store(storage: Storage) -> None:
    tenant = uuid.uuid4()
    flusher = Flusher(storage, FlushOptions(blob_offload_bytes=1024))
    try:
        run = post(str(uuid.uuid4()), inputs={"text": "x" * 2000}, end_time=(T0 + timedelta(seconds=1)).isoformat())
        flusher([request(tenant, run)])
        row = stored(storage, tenant)[run.run_id]
        assert row[14] == "" and "inputs" in row[19], "offloaded: the row names the blob"
    finally:
        flusher.close()


@pytest.mark.parametrize("presume", [True, False])
def test_token_counts_no_column_can_hold_are_left_out_not_failing_the_batch(
    storage: Storage, flusher: Flusher, presume: bool
) -> None:
    """JSON numbers are unbounded: a count above UInt64's range failed the insert of its whole batch (the batcher
    then found the record poison and quarantined it, its runs not stored), and a cost beyond a float's range failed
    the request."""
    tenant, run_id = uuid.uuid4(), str(uuid.uuid4())
    usage = {"input_tokens": 1e30, "output_tokens": 2**64, "total_tokens": 2**63, "input_cost": 10**400}
    op = post(run_id, run_type="llm", extra={"metadata": {"usage_metadata": {**usage, "output_cost": 1e30}}})
    flusher([request(tenant, op, presume=presume)])
    row = stored(storage, tenant)[run_id]
    assert row[27:32] == (0, 0, 0, None, 1e30)


@pytest.mark.parametrize("presume", [True, False])
@pytest.mark.parametrize("time", ["9999-12-31T23:59:59-00:01", "1800-01-01T00:00:00", "0001-01-01T00:00:00+00:01"])
def test_a_first_token_time_outside_the_stored_range_is_left_out(
    storage: Storage, flusher: Flusher, presume: bool, time: str
) -> None:
    """Event times are not run fields, so validation lets any ISO time through; ClickHouse stores DateTime64 ticks
    beyond its range as they are, and reading them back failed."""
    tenant, run_id = uuid.uuid4(), str(uuid.uuid4())
    op = post(run_id, run_type="llm", events=[{"name": "new_token", "time": time}])
    flusher([request(tenant, op, presume=presume)])
    assert stored(storage, tenant)[run_id][12] is None


@pytest.mark.parametrize("presume", [True, False])
@pytest.mark.parametrize("metadata", [[1, 2], "text", 3])
def test_extra_metadata_that_is_not_an_object_derives_nothing(
    storage: Storage, flusher: Flusher, presume: bool, metadata: Any
) -> None:
    """Validation checks that `extra` is an object, not what it holds; a list as its metadata failed the request
    (AttributeError deriving the thread id), or the batch that merged it."""
    tenant, run_id = uuid.uuid4(), str(uuid.uuid4())
    op = post(run_id, run_type="llm", extra={"metadata": metadata})
    flusher([request(tenant, op, presume=presume)])
    row = stored(storage, tenant)[run_id]
    assert (row[22], row[25], row[27]) == ({}, "", 0)
