"""Run rows: the write side used by the ingest batcher (insert versions, read back current state)."""

from __future__ import annotations

import functools
import itertools
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack

from schemas import jsonutil
from schemas.runs import CANONICAL_UUID, EARLIEST_TIME, LATEST_TIME
from schemas.times import assume_utc
from storage import rowbinary
from storage.clickhouse import ClickHouse

# Each column's RowBinary code (`storage.rowbinary`), in the order of `runs`' columns that inserts write.
RUN_CODES = {
    "tenant_id": "U",
    "session_id": "U",
    "id": "U",
    "trace_id": "U",
    "parent_run_id": "?U",
    "parent_run_ids": "[U",
    "dotted_order": "S",
    "is_root": "b",
    "name": "S",
    "run_type": "S",
    "status": "S",
    "start_time": "T",
    "end_time": "?T",
    "first_token_time": "?T",
    "error": "?S",
    "inputs": "Y",
    "outputs": "?Y",
    "extra": "Y",
    "events": "Y",
    "serialized": "?Y",
    "payload_refs": "M",
    "attachments": "M",
    "tags": "[S",
    "metadata": "M",
    "inputs_kv": "M",
    "outputs_kv": "M",
    "thread_id": "S",
    "reference_example_id": "?U",
    "prompt_tokens": "Q",
    "completion_tokens": "Q",
    "total_tokens": "Q",
    "prompt_cost": "?F",
    "completion_cost": "?F",
    "total_cost": "?F",
    "prompt_token_details": "S",
    "completion_token_details": "S",
    "prompt_cost_details": "S",
    "completion_cost_details": "S",
    "ttl_days": "H",
    "version": "Q",
    "is_deleted": "B",
}
RUN_COLUMNS = tuple(RUN_CODES)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ticks(value: datetime) -> int:
    """A DateTime64(6) value as microseconds since the epoch, as the driver computes them: what rows built outside
    the driver (decode workers, spool records) carry."""
    return math.floor(value.timestamp()) * 1_000_000 + value.microsecond


def from_ticks(micros: int) -> datetime:
    """`ticks` back to an aware UTC datetime. A positional timedelta: its keyword form took 0.72 against 0.50 µs,
    once for every run the batcher stages."""
    return _EPOCH + timedelta(0, 0, micros)


_STATE_COLUMNS = tuple(c for c in RUN_COLUMNS if c not in ("inputs_kv", "outputs_kv", "metadata"))
PENDING_COLUMNS = ("tenant_id", "id", "state", "version", "is_deleted")


_MIN_PART_ROWS = 5_000  # of a split insert: a smaller batch is stored soon enough in one
# Ids per lookup query: a batch's in one (4 queries of 5,000 took 2.5 µs per id of the batcher's thread, one 1.8:
# each query reads the batch's time window again). Their literal, ~37 bytes per id, fits the max_query_size every
# client sets (`storage.clickhouse.SESSION_SETTINGS`).
_IDS_PER_QUERY = 50_000
_ESCAPED_NEWLINE = "\\n"  # between the ids' TSV rows, inside a SQL string literal
_CANONICAL_ROWS = re.compile(f"(?:{CANONICAL_UUID.pattern}{re.escape(_ESCAPED_NEWLINE)})*{CANONICAL_UUID.pattern}")
_WINDOW_MARGIN = timedelta(seconds=1)  # around a start time hint: a dotted order's time may be rounded
_MAX_WINDOWS = 64  # time ranges in one lookup; more are joined across their smallest gaps
_EXCLUDE_ON_INSERT = "exclude_materialize_skip_indexes_on_insert"
_MERGE_BUILT_INDEXES = ("idx_search", "idx_metadata_entries")  # the text indexes (migrations 0010, 0080)


def id_sets(ids: Iterable[str]) -> Iterator[str]:
    """SQL subqueries that yield these canonical UUID texts, for `id IN …`, in chunks that fit one query.
    The ids travel as one string literal of TSV rows, read by the `format` table function: for 5,000 ids that
    took 3.5 ms of the server, splitting a literal by commas 6.2, and a tuple of quoted UUIDs 12.5 (measured);
    the driver's parameter binding escapes every character in Python. Canonical UUID text needs no escaping,
    and anything else is refused."""
    ids = list(ids)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start : start + _IDS_PER_QUERY]
        rows = _ESCAPED_NEWLINE.join(chunk)
        # One match, not one per id: that loop was 6% of the batcher's thread (py-spy), and this takes 0.4-0.8 against
        # 0.8-1.0 µs per id. The length keeps each id one UUID.
        if len(rows) != 38 * len(chunk) - 2 or not _CANONICAL_ROWS.fullmatch(rows):
            bad = next(run_id for run_id in chunk if not CANONICAL_UUID.fullmatch(run_id))
            raise ValueError(f"not a canonical UUID: {bad!r:.80}")
        yield f"(SELECT id FROM format(TSV, 'id UUID', '{rows}'))"


def windows(starts: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Time ranges that cover `starts`, each widened by a margin, overlapping ones joined. A batch's runs
    started within seconds of each other, so this is usually one short range; the rare batch of scattered
    times (an import of old traces) gets its ranges joined across the smallest gaps, at most `_MAX_WINDOWS`."""
    ranges: list[list[datetime]] = []
    for start in sorted(starts):
        if ranges and start - _WINDOW_MARGIN <= ranges[-1][1]:
            ranges[-1][1] = start + _WINDOW_MARGIN
        else:
            ranges.append([start - _WINDOW_MARGIN, start + _WINDOW_MARGIN])
    if len(ranges) > _MAX_WINDOWS:
        gaps = sorted(later[0] - earlier[1] for earlier, later in itertools.pairwise(ranges))
        widest_joined = gaps[len(ranges) - _MAX_WINDOWS - 1]
        joined = [ranges[0]]
        for later in ranges[1:]:
            if later[0] - joined[-1][1] <= widest_joined:
                joined[-1][1] = later[1]
            else:
                joined.append(later)
        ranges = joined
    return [(low, high) for low, high in ranges]


@functools.cache
def schema(columns: tuple[str, ...]) -> str:
    """The RowBinary schema (`storage.rowbinary`) of these columns of `runs`."""
    return "".join(RUN_CODES[column] for column in columns)


def pack_rows(rows: Iterable[Sequence[Any]], columns: tuple[str, ...] = RUN_COLUMNS) -> list[bytes]:
    """Each row's values of these columns in RowBinary (`storage.rowbinary`): rows, and pieces of rows packed
    apart, join into an insert by concatenation. The decode workers pack the rows of runs presumed new this way
    (`ingest.fresh`), without the columns only the batcher knows, and the server process never turns them into
    Python objects."""
    return rowbinary.pack_rows(rows, schema(columns))


def unpack_row(packed: bytes, columns: tuple[str, ...]) -> list[Any]:
    """The values of a row `pack_rows` packed."""
    return rowbinary.unpack_row(packed, schema(columns))


def unpack_msgpack_row(packed: bytes, count: int) -> list[Any]:
    """The `count` values of a row packed as MsgPack, as rows were spooled before they were RowBinary."""
    return msgpack.unpackb(msgpack.Packer().pack_array_header(count) + packed)


def insert_settings(ch: ClickHouse) -> dict[str, str]:
    """Settings of every insert into `runs`: its text indexes are left to merges, where the server has the
    setting (an older one builds them at insert, as before). A merge builds every index of the part it writes,
    so an insert's build was thrown away at the part's first merge, and it was ~30% of the insert thread's time.
    Until that merge a search reads the part whole, which is correct and bounded by a batch
    (`storage.batcher.MAX_BATCH_BYTES`): 49 against 3 ms for a 30,000-row part of OTLP spans. 100,000 OTLP spans
    in 10 inserts: 36-38 against 51-55 µs per row inserting, 93-98 against 112-116 µs of CPU once merged."""
    known = ch.client().query("SELECT 1 FROM system.settings WHERE name = %(name)s", {"name": _EXCLUDE_ON_INSERT})
    return {_EXCLUDE_ON_INSERT: ", ".join(_MERGE_BUILT_INDEXES)} if known.result_rows else {}


class RunStore:
    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch
        self._settings: dict[str, str] | None = None  # `insert_settings`, once `runs` is migrated
        self._inserters: ThreadPoolExecutor | None = None  # for the parts of a split insert, once one is split

    def close(self) -> None:
        if self._inserters is not None:
            self._inserters.shutdown(wait=True)

    def insert(self, rows: Sequence[Sequence[Any]], packed: Sequence[bytes] = (), *, concurrency: int = 1) -> None:
        """Rows in RUN_COLUMNS order, and rows already packed (`pack_rows`, RUN_COLUMNS too), in one insert, or in
        up to `concurrency` inserts at once of at least `_MIN_PART_ROWS` each. ClickHouse builds a part on the
        thread that inserts it, so one insert keeps one core busy: the batcher splits a batch when nothing else
        needs the cores (`Batcher`), since each part also costs a merge. Sent as RowBinary (`pack_rows`)."""
        data = [*pack_rows(rows), *packed]
        count = len(data)
        if not count:
            return
        if self._settings is None:
            self._settings = insert_settings(self._ch)
        parts = max(1, min(concurrency, count // _MIN_PART_ROWS))
        if parts == 1:
            self._insert_packed(data)
            return
        if self._inserters is None:
            self._inserters = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="run-insert")
        step = -(-count // parts)
        chunks = [data[start : start + step] for start in range(0, count, step)]
        others = [self._inserters.submit(self._insert_packed, chunk) for chunk in chunks[1:]]
        try:
            self._insert_packed(chunks[0])
        finally:
            wait(others)  # no part may still be inserting when the batch is retried
        for other in others:
            other.result()

    def _insert_packed(self, rows: list[bytes]) -> None:
        self._ch.client().raw_insert(
            "runs", RUN_COLUMNS, insert_block=b"".join(rows), fmt="RowBinary", settings=self._settings
        )

    def insert_pending(self, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._ch.client().insert("pending_runs", rows, column_names=PENDING_COLUMNS)

    def current(
        self, tenant_id: uuid.UUID, ids: Iterable[str], starts: Mapping[str, datetime] | None = None
    ) -> list[dict[str, Any]]:
        """The latest stored version of each run that exists (payload columns included). `ids` are canonical
        UUID text, as the batcher keys runs. `starts` gives the start time some of them are expected to have (a
        post's own, a patch's or a child's dotted order): those are looked up in `runs_by_start`, a read bounded
        by the batch's time span rather than by all runs kept; the others by id in `run_ids`. A run stored
        under a start time more than a second away from its hint is not found: a run's start time comes from
        its first post and clients resend the same one, so such an op is one that contradicts the stored run."""
        ids = set(ids)
        hinted = sorted(  # a hint outside DateTime64's range (a dotted order's time is not checked) goes by id
            (t, run_id) for run_id, t in (starts or {}).items() if run_id in ids and EARLIEST_TIME <= t <= LATEST_TIME
        )
        located = self._newest(
            "run_ids", ("session_id", "start_time"), tenant_id, ids.difference(run_id for _, run_id in hinted)
        )
        for chunk in range(0, len(hinted), _IDS_PER_QUERY):  # time-ordered chunks: narrow ranges each
            part = hinted[chunk : chunk + _IDS_PER_QUERY]
            located.update(
                self._newest(
                    "runs_by_start",
                    ("session_id", "start_time"),
                    tenant_id,
                    [run_id for _, run_id in part],
                    windows(start for start, _ in part),
                )
            )
        if not located:
            return []
        result = self._ch.client().query(
            f"SELECT {', '.join(_STATE_COLUMNS)} FROM runs FINAL WHERE tenant_id = {{t:UUID}} "
            "AND session_id IN {sessions:Array(UUID)} AND start_time IN {starts:Array(DateTime64(6, 'UTC'))} "
            "AND id IN {ids:Array(UUID)}",
            parameters={
                "t": tenant_id,
                "sessions": list({session for session, _ in located.values()}),
                "starts": list({start for _, start in located.values()}),
                "ids": list(located),
            },
        )
        return [dict(zip(_STATE_COLUMNS, row, strict=True)) for row in result.result_rows]

    def pending(self, tenant_id: uuid.UUID, ids: Iterable[str]) -> dict[str, str]:
        """Parked patch-only states by run id (canonical UUID text). Patches are rarely parked, and the batcher
        asks for every new run of a batch: a probe for any live row of the tenant (2 ms) spares the lookup by id
        (7 ms per 5,000 ids, measured) when there is none. An older live version of a run whose newest one is a
        tombstone only makes the probe say yes."""
        ids = list(ids)
        probe = "SELECT 1 FROM pending_runs WHERE tenant_id = {t:UUID} AND NOT is_deleted LIMIT 1"
        if not ids or not self._ch.client().raw_query(probe, parameters={"t": tenant_id}, fmt="TSV"):
            return {}
        return {run_id: state for run_id, (state,) in self._newest("pending_runs", ("state",), tenant_id, ids).items()}

    def _newest(
        self,
        table: str,
        columns: tuple[str, ...],
        tenant_id: uuid.UUID,
        ids: Iterable[str],
        within: Sequence[tuple[datetime, datetime]] = (),
    ) -> dict[str, Sequence[Any]]:
        """`columns` of the newest version of each of these runs that exists (its newest version does not delete
        it), as ClickHouse writes them in JSON (UUIDs and times as text), from a ReplacingMergeTree whose key
        starts with tenant_id and has id or start_time next; `within` are start time ranges that bound the read.
        The few rows found are grouped, as `RunReader.locate` does: FINAL made these lookups twice as slow.

        Sent as a raw query: `query()` scans the SQL text with five regular expressions in Python, which for the
        5,000 ids of a batcher's lookup took 6.5 of its 9.2 ms (measured); the rows found are few, so parsing
        them here costs nothing."""
        client = self._ch.client()
        picked = ", ".join(f"argMax({column}, version)" for column in columns)
        params: dict[str, Any] = {"t": tenant_id}
        bounds = []
        for index, (low, high) in enumerate(within):
            bounds.append(f"start_time BETWEEN {{a{index}:DateTime64(6, 'UTC')}} AND {{b{index}:DateTime64(6, 'UTC')}}")
            params[f"a{index}"], params[f"b{index}"] = low, high
        bounded = f"AND ({' OR '.join(bounds)}) " if bounds else ""
        found: dict[str, Sequence[Any]] = {}
        for id_set in id_sets(ids):
            text = client.raw_query(
                f"SELECT id, {picked} FROM {table} WHERE tenant_id = {{t:UUID}} {bounded}AND id IN {id_set} "
                "GROUP BY id HAVING NOT argMax(is_deleted, version)",
                parameters=params,
                fmt="JSONCompactEachRow",
            )
            for line in text.splitlines():
                run_id, *values = jsonutil.loads(line)
                found[run_id] = values
        return found

    def pending_with_runs(self, limit: int, min_age: float) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
        """Pending patches at least `min_age` seconds old whose run exists (its post was stored by another
        ingest replica meanwhile)."""
        client = self._ch.client()
        pending = client.query(
            "SELECT tenant_id, id FROM pending_runs FINAL "
            "WHERE updated_at <= now64(3) - toIntervalMillisecond({age:UInt32}) LIMIT {n:UInt32}",
            parameters={"n": limit, "age": int(min_age * 1000)},
        ).result_rows
        if not pending:
            return []
        return client.query(
            "SELECT p.tenant_id, p.id, p.state FROM pending_runs AS p FINAL "
            "WHERE (p.tenant_id, p.id) IN (SELECT tenant_id, id FROM run_ids FINAL "
            "WHERE (tenant_id, id) IN {keys:Array(Tuple(UUID, UUID))})",
            parameters={"keys": pending},
        ).result_rows

    def pending_older_than(self, limit: int, min_age: float) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
        """Pending patches (tenant, id, state) untouched for `min_age` seconds: their post may never come."""
        return (
            self._ch.client()
            .query(
                "SELECT tenant_id, id, state FROM pending_runs FINAL "
                "WHERE updated_at <= now64(3) - toIntervalMillisecond({age:UInt64}) LIMIT {n:UInt32}",
                parameters={"n": limit, "age": int(min_age * 1000)},
            )
            .result_rows
        )

    def children(self, tenant_id: uuid.UUID, parents: list[dict[str, Any]]) -> dict[str, datetime]:
        """The stored children of these runs (given as states: id, trace_id, _session, start_time), id text ->
        start time.
        Reads the parents' projects from their start on (less a clock-skew margin) through the trace_id index."""
        if not parents:
            return {}
        earliest = min(datetime.fromisoformat(p["start_time"]) for p in parents) - timedelta(minutes=5)
        rows = (
            self._ch.client()
            .query(
                "SELECT id, start_time FROM runs FINAL WHERE tenant_id = {t:UUID} "
                "AND session_id IN {sessions:Array(UUID)} AND start_time >= {since:DateTime64(6, 'UTC')} "
                "AND trace_id IN {traces:Array(UUID)} "
                "AND parent_run_id IN {ids:Array(UUID)}",
                parameters={
                    "t": tenant_id,
                    "sessions": list({p["_session"] for p in parents}),
                    "since": earliest,
                    "traces": list({p["trace_id"] for p in parents}),
                    "ids": [p["id"] for p in parents],
                },
            )
            .result_rows
        )
        return {str(run_id): assume_utc(start) for run_id, start in rows}
