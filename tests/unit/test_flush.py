"""The batcher's flush against real chDB: batches larger than one lookup query can name."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import derive, records
from ingest.flush import Flusher, FlushOptions, start_hints
from query.filter.compiler import SEARCH_SQL
from schemas import jsonutil
from schemas.runs import EARLIEST_TIME, LATEST_TIME, RunOp
from storage import Storage
from storage import runs as storage_runs
from storage.runs import RUN_COLUMNS, RunStore, id_sets, windows
from tests.support import run_row

TENANT = uuid.UUID(int=0xF1)
RUNS = 12_000  # more than two lookup chunks of 5,000
START = "2026-11-30T10:00:00.000000+00:00"


def stored(storage: Storage, tenant: uuid.UUID, columns: str) -> list[tuple[Any, ...]]:
    """`columns` of the tenant's runs as readers see them (FINAL), deleted versions included: none is expected."""
    return (
        storage.clickhouse.client()
        .query(f"SELECT {columns} FROM runs FINAL WHERE tenant_id = {{t:UUID}}", parameters={"t": tenant})
        .result_rows
    )


def test_id_sets_chunk_and_refuse_other_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_runs, "_IDS_PER_QUERY", 5_000)
    ids = [str(uuid.uuid4()) for _ in range(12_001)]
    chunks = list(id_sets(ids))
    assert len(chunks) == 3
    assert sum(chunk.count("-") // 4 for chunk in chunks) == len(ids)
    for bad in ("x') OR 1=1 --", f"{ids[0]}\\n{ids[1]}", ids[0].upper()):
        with pytest.raises(ValueError, match="canonical"):
            list(id_sets([ids[2], bad]))


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
    assert RunStore(storage.clickhouse).pending(uuid.UUID(int=99), [a, b, c]) == {}, "another tenant parked none"
    RunStore(storage.clickhouse).insert_pending([[str(TENANT), run_id, "gone", 9, 1] for run_id in (a, c)])
    assert RunStore(storage.clickhouse).pending(TENANT, [a, b, c]) == {}, "every live version has a newer tombstone"


def test_rows_go_in_as_written_times_before_1970_and_text_utf8_cannot_carry_included(storage: Storage) -> None:
    """Inserts are RowBinary (`storage.runs.pack_rows`): times are signed ticks, text is made storable."""
    tenant, run_id = str(uuid.uuid4()), str(uuid.uuid4())
    start, end = datetime(1905, 3, 4, 5, 6, 7, 123456, tzinfo=UTC), datetime(1905, 3, 4, 5, 6, 8, tzinfo=UTC)
    row = run_row(run_id, run_id, None, start, tenant_id=tenant, session_id=tenant, end_time=end, name="a\ud800")
    RunStore(storage.clickhouse).insert([row])
    assert stored(storage, uuid.UUID(tenant), "start_time, end_time, name") == [
        (start.replace(tzinfo=None), end.replace(tzinfo=None), "a\ufffd")
    ]


def test_a_large_insert_is_split_into_concurrent_parts(storage: Storage) -> None:
    """With `concurrency`, rows go in that many inserts at once (a part each), each of at least 5,000 rows."""
    tenant = str(uuid.uuid4())
    start = datetime(2026, 1, 2, tzinfo=UTC)
    ids = [str(uuid.uuid4()) for _ in range(14_000)]
    rows = [run_row(i, i, None, start, tenant_id=tenant, session_id=tenant) for i in ids]  # type: ignore[arg-type]
    client = storage.clickhouse.client()

    def parts(of: list[str]) -> int:
        """Parts holding these runs: merges are stopped, so each insert's part stays apart."""
        query = "SELECT uniqExact(_part) FROM runs WHERE tenant_id = {t:UUID} AND id IN {ids:Array(String)}"
        return client.query(query, parameters={"t": tenant, "ids": of}).result_rows[0][0]

    store = RunStore(storage.clickhouse)
    client.command("SYSTEM STOP MERGES runs")
    try:
        store.insert(rows[:4_000], concurrency=2)
        store.insert(rows[4_000:], concurrency=3)
        assert parts(ids[:4_000]) == 1, "too few rows to split"
        assert parts(ids[4_000:]) == 2, "10,000 rows: two parts of 5,000, not three"
    finally:
        client.command("SYSTEM START MERGES runs")
        store.close()
    stored = client.query("SELECT id FROM runs WHERE tenant_id = {t:UUID}", parameters={"t": tenant}).result_rows
    assert sorted(str(row[0]) for row in stored) == sorted(ids)


def test_text_indexes_are_built_by_merges_not_inserts(storage: Storage) -> None:
    """An insert leaves out the text indexes, and a search still finds its runs, before the first merge of
    their part (by reading it whole) and after it (by the index the merge built)."""
    tenant = str(uuid.uuid4())
    start = datetime(2025, 3, 4, tzinfo=UTC)  # a month of its own: one partition to merge
    ids = [str(uuid.uuid4()) for _ in range(4)]
    rows = [run_row(i, i, None, start, tenant_id=tenant, session_id=tenant, name="quokka zebra") for i in ids]  # type: ignore[arg-type]
    client = storage.clickhouse.client()

    def index_bytes(run_id: str) -> int:
        query = (
            "SELECT secondary_indices_uncompressed_bytes FROM system.parts WHERE active AND table = 'runs' "
            "AND name = (SELECT any(_part) FROM runs WHERE tenant_id = {t:UUID} AND id = {id:String})"
        )
        return client.query(query, parameters={"t": tenant, "id": run_id}).result_rows[0][0]

    def found() -> int:
        query = f"SELECT count() FROM runs WHERE tenant_id = {{t:UUID}} AND hasAllTokens({SEARCH_SQL}, ['quokka'])"
        return client.query(query, parameters={"t": tenant}).result_rows[0][0]

    store = RunStore(storage.clickhouse)
    client.command("SYSTEM STOP MERGES runs")
    try:
        store.insert(rows[:2])
        client.insert("runs", rows[2:], column_names=RUN_COLUMNS)  # indexes built
        assert index_bytes(ids[0]) < index_bytes(ids[2])
        assert found() == 4
    finally:
        client.command("SYSTEM START MERGES runs")
        store.close()
    client.command("OPTIMIZE TABLE runs PARTITION 202503 FINAL")
    assert index_bytes(ids[0]) == index_bytes(ids[2])  # one part now
    assert found() == 4


def test_lookups_return_texts_exactly(storage: Storage) -> None:
    """The lookups read ClickHouse's JSON output: a parked state comes back byte for byte, whatever it holds."""
    state = jsonutil.dumps_str({"q": 'a "quote", \\ / tab\t line\n nul\u0000 é \ud83d\ude00', "n": [1.5, None]})
    run_id = str(uuid.UUID(int=7))
    RunStore(storage.clickhouse).insert_pending([[str(TENANT), run_id, state, 1, 0]])
    assert RunStore(storage.clickhouse).pending(TENANT, [run_id]) == {run_id: state}


@pytest.mark.parametrize("hint", ["none", "start_time", "dotted_order"])
def test_patches_of_a_large_batch_find_their_posts(
    storage: Storage, hint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every patch looks its run up in ClickHouse (nothing cached: the posts were complete); with 12,000 ids
    in one batch, at 5,000 per query, the lookup spans several queries and must still find all of them, by id (a
    patch that names no start) or by start time (from the patch's start_time or from its dotted order)."""
    monkeypatch.setattr(storage_runs, "_IDS_PER_QUERY", 5_000)
    tenant = uuid.uuid4()
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
                    "start_time": START,
                    "end_time": "2026-11-30T10:00:01.000000+00:00",
                    "session_name": "large-batch",
                },
            )
            for run_id in ids
        ]
        flusher([records.encode(tenant, posts, [])])
        named = {
            "none": lambda run_id: {},
            "start_time": lambda run_id: {"start_time": START},
            "dotted_order": lambda run_id: {"dotted_order": f"20261130T100000000000Z{run_id}"},
        }[hint]
        patches = [
            RunOp("patch", run_id, {"id": run_id, "outputs": {"n": n}, **named(run_id)}) for n, run_id in enumerate(ids)
        ]
        flusher([records.encode(tenant, patches, [])])
        rows = stored(storage, tenant, "name, outputs")
        assert len(rows) == RUNS
        assert RunStore(storage.clickhouse).pending(tenant, ids) == {}, "a patch whose post was not found is parked"
        assert sorted(int(outputs[5:-1]) for _, outputs in rows) == list(range(RUNS))
    finally:
        flusher.close()


def test_a_batch_of_close_start_times_is_one_window() -> None:
    base = datetime(2026, 11, 30, 10, tzinfo=UTC)
    starts = [base + timedelta(milliseconds=n) for n in range(5_000)]
    assert windows(reversed(starts)) == [(base - timedelta(seconds=1), starts[-1] + timedelta(seconds=1))]


def test_scattered_start_times_are_joined_across_the_smallest_gaps() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [base + timedelta(days=n, seconds=n * n) for n in range(200)] + [base + timedelta(seconds=10)]
    found = windows(starts)
    assert 1 < len(found) <= 64
    assert all(low < high for low, high in found) and found == sorted(found)
    assert all(high < later for (_, high), (later, _) in itertools.pairwise(found)), "disjoint"
    for start in starts:
        assert any(low + timedelta(seconds=1) <= start <= high - timedelta(seconds=1) for low, high in found)


def test_a_dotted_order_time_outside_the_stored_range_is_looked_up_by_id(storage: Storage) -> None:
    """Ingest checks start times but not the times in a dotted order: a hint from one must not reach a query
    parameter ClickHouse cannot parse (that failed the batch), and the patch still finds its run."""
    tenant, run_id = uuid.uuid4(), str(uuid.uuid4())
    post = RunOp("post", run_id, {"id": run_id, "name": "x", "run_type": "chain", "start_time": START})
    dotted = f"00010101T000000000000Z{run_id}"
    patch = RunOp("patch", run_id, {"id": run_id, "outputs": {"ok": True}, "dotted_order": dotted})
    flusher = Flusher(storage, FlushOptions(cache_runs=0))  # the patch must find the post in storage
    try:
        for op in (post, patch):
            flusher([records.encode(tenant, [op], [])])
        rows = stored(storage, tenant, "name, outputs")
        assert rows == [("x", '{"ok":true}')]
    finally:
        flusher.close()


@given(st.datetimes(min_value=EARLIEST_TIME.replace(tzinfo=None), max_value=LATEST_TIME.replace(tzinfo=None)))
def test_segments_are_the_dotted_order_format(start: datetime) -> None:
    run_id = str(uuid.UUID(int=9))
    assert derive.segment(start, run_id) == f"{start:%Y%m%dT%H%M%S%fZ}{run_id}"
    assert derive.segment_start(derive.segment(start, run_id), run_id) == start.replace(tzinfo=UTC)


def test_start_hints() -> None:
    run_id, parent = str(uuid.UUID(int=7)), str(uuid.UUID(int=8))
    dotted = f"20261130T100000123456Z{parent}.20261130T100001000001Z{run_id}"
    at = datetime(2026, 11, 30, 10, 0, 1, 1, tzinfo=UTC)
    assert derive.start_hint({"start_time": "2026-11-30T10:00:01.000001"}, run_id) == at, "naive is UTC"
    assert derive.start_hint({"dotted_order": dotted}, run_id) == at
    assert derive.segment_start(dotted, parent) == datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)
    assert derive.start_hint({"start_time": "yesterday", "dotted_order": "x"}, run_id) is None
    assert derive.segment_start(f"20261399T100000123456Z{run_id}", run_id) is None
    post, patch = (
        RunOp(kind, run_id, {"start_time": t})
        for kind, t in [("post", "2026-01-01T00:00:00+00:00"), ("patch", "2026-02-01T00:00:00+00:00")]
    )
    assert start_hints([post, patch]) == start_hints([patch, post]) == {run_id: datetime(2026, 1, 1, tzinfo=UTC)}


def test_a_batch_staged_while_the_one_before_is_unwritten_merges_onto_it(storage: Storage) -> None:
    """The batcher stages a batch while the one before is being written: a patch in the second batch must
    find its run's post in the first (not in storage yet, and no longer cached once the post finished it)."""
    tenant, run_id = uuid.uuid4(), str(uuid.uuid4())
    post = RunOp(
        "post",
        run_id,
        {"id": run_id, "name": "step", "run_type": "tool", "start_time": START, "end_time": START, "tags": ["a"]},
    )
    patch = RunOp("patch", run_id, {"id": run_id, "outputs": {"answer": 42}, "start_time": START})
    flusher = Flusher(storage, FlushOptions())
    try:
        first = flusher.stage([records.encode(tenant, [post], [])])
        second = flusher.stage([records.encode(tenant, [patch], [])])
        for staged in (first, second):
            assert not flusher.exclusive(staged)
            flusher.write(staged)
            flusher.settle(staged)
        assert flusher.staged == {}
        rows = stored(storage, tenant, "name, tags, outputs")
        assert rows == [("step", ["a"], '{"answer":42}')]
        assert RunStore(storage.clickhouse).pending(tenant, [run_id]) == {}
    finally:
        flusher.close()


def test_a_record_spooled_before_ops_were_packed_singly_still_stores(storage: Storage) -> None:
    """A spool written by the previous version is replayed after an upgrade: three elements, ops inline."""
    tenant, run_id = uuid.uuid4(), str(uuid.uuid4())
    fields = {"id": run_id, "name": "old", "run_type": "tool", "start_time": START, "session_name": "upgrade"}
    old = msgpack.packb([str(tenant), [["post", run_id, fields, {}]], []])
    flusher = Flusher(storage, FlushOptions())
    try:
        flusher([old])
    finally:
        flusher.close()
    assert stored(storage, tenant, "toString(id), name") == [(run_id, "old")]
