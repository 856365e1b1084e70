"""Spooled records -> stored runs: merge each run's ops onto its current state, derive, offload, insert.

This is the batcher's `flush`. It is idempotent (replaying records gives the same rows), which is what makes
replay after a crash safe. Current states come from a bounded cache of runs that are still open (a started
run whose patch is expected) and otherwise from ClickHouse: one lookup per batch for all ids not cached.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from ingest import derive, fresh, merge, records
from ingest.fresh import FreshBlock, FreshRun
from ingest.rows import Upload, run_row, state_from_row
from schemas import jsonutil
from schemas.projects import DEFAULT_PROJECT_NAME
from schemas.runs import RunOp
from storage import Storage
from storage.runs import RUN_COLUMNS, RunStore, ticks

log = logging.getLogger(__name__)


_MAX_DEPTH = 100  # bound on re-deriving descendants after a dotted order changed
_SESSION, _START = RUN_COLUMNS.index("session_id"), RUN_COLUMNS.index("start_time")
_VERSION, _DELETED = RUN_COLUMNS.index("version"), RUN_COLUMNS.index("is_deleted")


@dataclass(frozen=True, slots=True)
class FlushOptions:
    blob_offload_bytes: int = 20 * 1024
    cache_runs: int = 50_000  # open runs kept in memory for their patch
    upload_threads: int = 8


K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A bounded map that forgets the least recently used entries; only this process's batcher uses it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def drop(self, key: K) -> None:
        self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)


RunKey = tuple[str, str]  # (tenant id, run id) as canonical UUID text
# What the batcher holds of a run: its state, or a presumed-new run's row, whose state is built when read.
Held = dict[str, Any] | FreshRun


@dataclass(slots=True)
class RunWrite:
    """One tenant's runs of a batch, merged into rows, not yet written."""

    tenant: str
    rows: list[list[Any]]
    pending_rows: list[list[Any]]
    uploads: list[Upload]
    finished: dict[str, dict[str, Any]]  # the states written, for the cache
    changed: list[dict[str, Any]]  # stored runs whose dotted order changed: their children must follow
    fresh_rows: list[bytes] = field(default_factory=list)  # of presumed-new runs, packed (`fresh.insert_rows`)
    fresh_runs: dict[str, FreshRun] = field(default_factory=dict)  # their states, for the cache


@dataclass(slots=True)
class _Incoming:
    """One tenant's part of a batch: the ops to merge, each with its record's place in the batch, and the
    presumed-new rows."""

    ops: list[tuple[int, RunOp]]
    blocks: list[FreshBlock]


@dataclass(slots=True)
class Staged:
    """A batch merged into rows, not yet written (`Flusher.stage`)."""

    runs: list[tuple[uuid.UUID, RunWrite]]
    feedback: dict[uuid.UUID, list[dict[str, Any]]]


class Flusher:
    def __init__(self, storage: Storage, options: FlushOptions) -> None:
        self.storage = storage
        self.options = options
        self.runs = RunStore(storage.clickhouse)
        self.cache: Lru[RunKey, Held] = Lru(options.cache_runs)  # open runs, for their patch
        # Parents that children named before the parent itself was stored (OTLP exports children first): when
        # one arrives, those children's dotted orders are derived again. In memory: after a restart such
        # children keep a dotted order rooted at themselves (parent_run_id is still right).
        self.awaited: Lru[RunKey, bool] = Lru(100_000)
        # States of batches staged but not settled yet: the next batch is staged while this one is written, and
        # must merge onto these, which are neither in the cache nor (for certain) in storage yet.
        self.staged: dict[RunKey, Held] = {}
        self._uploads = ThreadPoolExecutor(max_workers=options.upload_threads, thread_name_prefix="blob-upload")

    def close(self) -> None:
        self._uploads.shutdown(wait=True)
        self.runs.close()

    def __call__(self, batch: list[bytes]) -> None:
        """Store a batch at once: stage, write, settle."""
        staged = self.stage(batch)
        try:
            self.write(staged)
        except Exception:
            self.discard(staged)
            raise
        self.settle(staged)

    def stage(self, batch: list[bytes]) -> Staged:
        """Decode a batch and merge it into rows, without writing: the CPU half of a flush, which the batcher
        overlaps with the write of the batch before. Merges onto states of batches staged before it, then the
        cache, then storage."""
        incoming: dict[uuid.UUID, _Incoming] = {}
        feedback_by_tenant: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        for seq, data in enumerate(batch):
            record = records.decode(data)
            part = incoming.get(record.tenant_id) or incoming.setdefault(record.tenant_id, _Incoming([], []))
            part.ops.extend((seq, op) for op in record.ops)
            if record.fresh:
                part.blocks.append(FreshBlock.of(seq, record.fresh))
            feedback_by_tenant[record.tenant_id].extend(record.feedback)
        staged = Staged([], {tenant_id: items for tenant_id, items in feedback_by_tenant.items() if items})
        try:
            for tenant_id, part in incoming.items():
                staged.runs.append((tenant_id, self._stage_incoming(tenant_id, part)))
        except Exception:
            self.discard(staged)  # the tenants staged before the one that failed
            raise
        return staged

    @staticmethod
    def exclusive(staged: Staged) -> bool:
        """Whether settling this batch writes more (the children of runs whose dotted order changed): then the
        next batch must be staged after it is settled, to merge onto those children's new states."""
        return any(write.changed for _, write in staged.runs)

    def write(self, staged: Staged, concurrency: int = 1) -> None:
        """Upload and insert a staged batch: I/O only, so that it can run beside the staging of the next. The
        runs of a large batch are split into up to `concurrency` inserts at once (`RunStore.insert`)."""
        for _, write in staged.runs:
            self._write(write, concurrency)
        for tenant_id, items in staged.feedback.items():
            self.storage.feedback.ingest(tenant_id, items)

    def settle(self, staged: Staged) -> None:
        """After its write: cache the states written, and let descendants follow a dotted order that changed."""
        for tenant_id, write in staged.runs:
            self._settle(write)
            changed = write.changed
            for _depth in range(_MAX_DEPTH):
                if not changed:
                    break
                children = self.runs.children(tenant_id, changed)
                changed = self._store(self._stage_runs(tenant_id, [], rederive=set(children), starts=children))

    def discard(self, staged: Staged) -> None:
        """Forget a staged batch that was not written (its write failed): it is staged again from the spool."""
        for _, write in staged.runs:
            self._unstage(write)

    # -- the run path ------------------------------------------------------------------------------------

    def _states(
        self, tenant_id: uuid.UUID, ids: set[str], starts: dict[str, datetime]
    ) -> dict[str, dict[str, Any] | None]:
        """Current states: of a batch staged but not yet written, else from the cache, else from storage.
        `starts` are the runs' expected start times, which bound the storage lookup (see `RunStore.current`)."""
        states: dict[str, dict[str, Any] | None] = {}
        missing = set()
        tenant = str(tenant_id)
        for run_id in ids:
            cached = self.staged.get((tenant, run_id)) or self.cache.get((tenant, run_id))
            if cached is None:
                missing.add(run_id)
            states[run_id] = cached.state(self.storage.blobs) if isinstance(cached, FreshRun) else cached
        if missing:
            for row in self.runs.current(tenant_id, missing, starts):
                state = state_from_row(row, self.storage.blobs)
                states[state["id"]] = state
                missing.discard(state["id"])
            for run_id, text in self.runs.pending(tenant_id, missing).items():
                states[run_id] = jsonutil.loads(text)
        return states

    def reconcile(self, limit: int = 10_000, min_age: float = 1.0) -> int:
        """Merge pending patches whose post another ingest replica stored meanwhile: when a post and its patch
        reach two replicas in the same flush window, both may look before either writes, and the patch is
        parked as pending although the run exists. Periodic; returns how many were merged."""
        found = self.runs.pending_with_runs(limit, min_age)
        by_tenant: dict[uuid.UUID, list[RunOp]] = defaultdict(list)
        for tenant_id, run_id, text in found:
            self.cache.drop((str(tenant_id), str(run_id)))
            by_tenant[tenant_id].append(merge.absorb(jsonutil.loads(text), str(run_id)))
        for tenant_id, ops in by_tenant.items():
            self._store(self._stage_runs(tenant_id, ops, retire={op.run_id for op in ops}))
        return len(found)

    def promote_orphans(self, limit: int = 1_000, min_age: float = 600.0) -> int:
        """Runs that only ever got a patch (the client's post was lost): after `min_age` seconds without their
        post, a patch that names the run (name, type, start) is stored as the run, so it is not hidden forever.
        A post that still arrives later merges as usual (a post fills what is missing)."""
        by_tenant: dict[uuid.UUID, list[RunOp]] = defaultdict(list)
        for tenant_id, run_id, text in self.runs.pending_older_than(limit, min_age):
            state = jsonutil.loads(text)
            if all(state.get(k) for k in ("name", "run_type", "start_time")):
                self.cache.drop((str(tenant_id), str(run_id)))
                op = merge.absorb(state, str(run_id))
                by_tenant[tenant_id].append(RunOp("post", op.run_id, op.fields, op.attachments))
        for tenant_id, ops in by_tenant.items():
            self._store(self._stage_runs(tenant_id, ops, retire={op.run_id for op in ops}))
        return sum(len(ops) for ops in by_tenant.values())

    def _store(self, write: RunWrite) -> list[dict[str, Any]]:
        """A staged write, written and settled at once; returns the stored runs whose dotted order changed."""
        try:
            self._write(write)
        except Exception:
            self._unstage(write)
            raise
        self._settle(write)
        return write.changed

    def _stage_incoming(self, tenant_id: uuid.UUID, part: _Incoming) -> RunWrite:
        """Stage one tenant's part of a batch: presumed-new rows as built, once the presumption holds for the
        whole batch (see `ingest.fresh`), and everything else merged by `_stage_runs`."""
        tenant = str(tenant_id)
        ops = part.ops
        merged = {op.run_id for _, op in ops}
        per_run = Counter(run_id for block in part.blocks for run_id in block.ids)
        chosen: dict[str, tuple[FreshBlock, int]] = {}
        demoted: list[tuple[FreshBlock, int]] = []
        for block in part.blocks:
            for row, run_id in enumerate(block.ids):
                if (
                    per_run[run_id] > 1
                    or run_id in merged
                    or block.text_bytes[row] > self.options.blob_offload_bytes
                    or self.awaited.get((tenant, run_id))
                ):
                    demoted.append((block, row))
                else:
                    chosen[run_id] = (block, row)
        starts = start_hints([op for _, op in ops])
        starts.update((block.ids[row], block.start(row)) for block in part.blocks for row in range(len(block.ids)))
        known = self._states(tenant_id, merged | set(per_run), starts)
        demoted.extend(chosen.pop(run_id) for run_id in [r for r in chosen if known[r] is not None])
        # A parent merged in this batch may get another dotted order than its child presumes.
        out = merged | {block.ids[row] for block, row in demoted}
        while bad := [run_id for run_id, (block, row) in chosen.items() if fresh.orphaned(block, row, chosen, out)]:
            for run_id in bad:
                demoted.append(chosen.pop(run_id))
                out.add(run_id)
        for block, row in demoted:
            block.keep[row] = False
            ops.append((block.seq, block.op(row)))
        if demoted:
            ops.sort(key=lambda item: item[0])  # stable: a record's ops keep their order
        fresh_runs = self._stage_fresh(tenant_id, chosen)
        try:
            write = self._stage_runs(tenant_id, [op for _, op in ops], starts=starts, known=known, presumed=fresh_runs)
        except Exception:
            self._unstage(RunWrite(tenant, [], [], [], {}, [], fresh_runs=fresh_runs))
            raise
        for block, row in chosen.values():
            parent = block.parent(row)
            if parent is not None and parent not in chosen and parent not in write.finished:
                self.awaited.put((tenant, parent), True)  # its children must follow it later
        write.fresh_runs = fresh_runs
        write.fresh_rows = fresh.insert_rows(part.blocks, tenant, time.time_ns())
        return write

    def _stage_fresh(self, tenant_id: uuid.UUID, chosen: dict[str, tuple[FreshBlock, int]]) -> dict[str, FreshRun]:
        """Resolve the projects and retention of presumed-new runs, and stage their states (built when read: a
        run merged in this batch may name one as its parent)."""
        tenant = str(tenant_id)
        projects: dict[tuple[str | None, str | None], tuple[str, int]] = {}
        runs = {}
        for run_id, (block, row) in chosen.items():
            named = block.sessions[row]
            key = (named[0], named[1])
            if key not in projects:
                session = self._project(tenant_id, *key)
                projects[key] = (str(session), self.storage.retention.days(tenant_id, session)[0])
            block.placed[row] = projects[key]
            runs[run_id] = self.staged[(tenant, run_id)] = block.run(row)
        return runs

    def _stage_runs(
        self,
        tenant_id: uuid.UUID,
        ops: list[RunOp],
        retire: AbstractSet[str] = frozenset(),
        rederive: AbstractSet[str] = frozenset(),
        starts: dict[str, datetime] | None = None,
        known: dict[str, dict[str, Any] | None] | None = None,
        presumed: dict[str, FreshRun] | None = None,
    ) -> RunWrite:
        """Apply `ops` (and re-derive the stored runs in `rederive`) into new versions' rows, and keep the new
        states as staged until written. `starts` are the start times of runs, which bound their lookup in
        storage; reconciling and promoting parked patches look up by id instead, as the run they belong to may
        have been stored under another start time than the patch's. `known` are current states already looked
        up (`_states`) for every run of `ops`; `presumed` are runs of the same batch stored as presumed new, which
        are parents the way the runs of `ops` are."""
        tenant = str(tenant_id)
        touched = {op.run_id for op in ops} | set(rederive)
        if known is None:
            known = self._states(tenant_id, touched, starts or {})
        # Working copies: staged and cached states stay as they are until this batch is written (a failed insert
        # is retried from the same states; derivation below writes into the state it derives).
        states = {k: _working_copy(known[k]) for k in touched}
        before = {run_id: (state or {}).get("dotted_order") for run_id, state in states.items()}
        pending_before = {run_id for run_id, state in states.items() if state is not None and not state[merge.HAS_POST]}
        for op in ops:
            states[op.run_id] = merge.apply(states[op.run_id], op)
        touched = {run_id for run_id in touched if states.get(run_id) is not None}
        parents = self._parents(tenant_id, {run_id: states[run_id] for run_id in touched}, states, rederive)

        version = time.time_ns()
        rows: list[list[Any]] = []
        pending_rows: list[list[Any]] = []
        uploads: list[Upload] = []
        finished: dict[str, dict[str, Any]] = {}
        short_ttl: dict[str, int] = {}  # per project
        changed: list[dict[str, Any]] = []

        def presumed_state(run_id: str) -> dict[str, Any] | None:
            return presumed[run_id].state(self.storage.blobs) if presumed and run_id in presumed else None

        for run_id in _parents_first(touched, states):
            state = states[run_id]
            assert state is not None
            if not state[merge.HAS_POST]:
                key_prefix = f"{tenant}/pending/{run_id}"
                _stage_attachments(state, key_prefix, uploads)
                pending_rows.append([tenant, run_id, jsonutil.dumps_str(state), version, 0])
                finished[run_id] = state
                continue
            if run_id in retire or run_id in pending_before:
                pending_rows.append([tenant, run_id, "", version, 1])  # merged now: retire the pending entry
            if "_session" not in state:
                state["_session"] = str(self._project(tenant_id, state.get("session_id"), state.get("session_name")))
            start = datetime.fromisoformat(state["start_time"])
            parent_id = state.get("parent_run_id")
            parent = (
                (states.get(parent_id) or parents.get(parent_id) or presumed_state(parent_id)) if parent_id else None
            )
            trace_id, dotted, ancestors = derive.ancestry(state, parent, start)
            if parent_id and parent is None:
                self.awaited.put((tenant, parent_id), True)  # its children must follow it later
            if before.get(run_id) not in (None, dotted) or self.awaited.get((tenant, run_id)):
                self.awaited.drop((tenant, run_id))
                changed.append(state)
            state.update(trace_id=trace_id, dotted_order=dotted)
            prefix = f"{tenant}/{state['_session']}/{trace_id}/{run_id}"
            _stage_attachments(state, f"{prefix}/attachments", uploads)
            session = state["_session"]
            if session not in short_ttl:
                short_ttl[session] = self.storage.retention.days(tenant_id, uuid.UUID(session))[0]
            ttl = max(state.get("_ttl", 0), short_ttl[session])
            row = run_row(
                tenant, state, start, ancestors, prefix, uploads, version, ttl, self.options.blob_offload_bytes
            )
            stored_key = state.get("_stored_key")
            new_key = [state["_session"], state["start_time"]]
            if stored_key and stored_key != new_key:
                rows.append(_tombstone(row, stored_key, version - 1))
            state["_stored_key"] = new_key
            rows.append(row)
            finished[run_id] = state

        for run_id, state in finished.items():
            self.staged[(tenant, run_id)] = state
        return RunWrite(tenant, rows, pending_rows, uploads, finished, changed)

    def _write(self, write: RunWrite, concurrency: int = 1) -> None:
        if write.uploads:
            list(
                self._uploads.map(
                    lambda u: self.storage.blobs.put(u[0], u[1], content_type=u[2], compress=u[3]), write.uploads
                )
            )
        self.runs.insert_pending(write.pending_rows)
        self.runs.insert(write.rows, write.fresh_rows, concurrency=concurrency)

    def _settle(self, write: RunWrite) -> None:
        """Written: the states move from staged to the cache (open runs only: a finished run expects no patch)."""
        self._unstage(write)
        for run_id, state in write.finished.items():
            key = (write.tenant, run_id)
            if state.get("end_time") and state[merge.HAS_POST]:
                self.cache.drop(key)
            else:
                self.cache.put(key, state)
        for run_id, run in write.fresh_runs.items():
            if run.ended:
                self.cache.drop((write.tenant, run_id))
            else:
                self.cache.put((write.tenant, run_id), run)

    def _unstage(self, write: RunWrite) -> None:
        """Drop these states from the staged ones, unless a later batch staged a newer state of the run."""
        for run_id, state in [*write.finished.items(), *write.fresh_runs.items()]:
            key = (write.tenant, run_id)
            if self.staged.get(key) is state:
                del self.staged[key]

    def _parents(
        self,
        tenant_id: uuid.UUID,
        touched: dict[str, dict[str, Any] | None],
        states: dict[str, dict[str, Any] | None],
        rederive: AbstractSet[str],
    ) -> dict[str, dict[str, Any]]:
        """States of parents needed to derive a dotted order or trace id (always for runs being re-derived
        because an ancestor changed), when not already at hand."""
        wanted = set()
        starts = {}  # a child's dotted order names its parent's start
        for run_id, state in touched.items():
            parent_id = state.get("parent_run_id") if state else None
            if state is None or not parent_id or states.get(parent_id) is not None:
                continue
            dotted = state.get("dotted_order")
            if run_id in rederive or not dotted or not derive.is_under(dotted, parent_id) or not state.get("trace_id"):
                wanted.add(parent_id)
                if dotted and (start := derive.segment_start(dotted, parent_id)) is not None:
                    starts[parent_id] = start
        if not wanted:
            return {}
        return {k: v for k, v in self._states(tenant_id, wanted, starts).items() if v is not None}

    def _project(self, tenant_id: uuid.UUID, session_id: str | None, session_name: str | None) -> uuid.UUID:
        """`session_id` wins, else `session_name` (created on first use), else `default` (protocol §5.3)."""
        projects = self.storage.projects
        if session_id:
            project_id = uuid.UUID(session_id)
            if projects.cached(tenant_id, project_id) is None:
                return projects.resolve_name(tenant_id, session_name or DEFAULT_PROJECT_NAME)
            return project_id
        return projects.resolve_name(tenant_id, session_name or DEFAULT_PROJECT_NAME)


def start_hints(ops: list[RunOp]) -> dict[str, datetime]:
    """Each run's expected start time, from its ops; a post's wins, as the run's start comes from its post."""
    starts = {}
    for op in sorted(ops, key=lambda op: op.kind == "post"):
        if (start := derive.start_hint(op.fields, op.run_id)) is not None:
            starts[op.run_id] = start
    return starts


def _working_copy(state: dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {**state, merge.REFS: dict(state.get(merge.REFS) or {})}


def _parents_first(ids: set[str], states: dict[str, dict[str, Any] | None]) -> list[str]:
    """`ids` ordered so that a run comes after its parent when both are in the batch: a child's dotted order is
    derived from its parent's, which may itself be derived in this batch."""
    ordered: list[str] = []
    seen: set[str] = set()
    for run_id in ids:
        chain = []
        current: str | None = run_id
        while current is not None and current in ids and current not in seen:
            seen.add(current)
            chain.append(current)
            current = (states.get(current) or {}).get("parent_run_id")
        ordered.extend(reversed(chain))
    return ordered


def _stage_attachments(state: dict[str, Any], prefix: str, uploads: list[Upload]) -> None:
    for name, (mime, data) in (state.pop(merge.NEW_ATTACHMENTS, None) or {}).items():
        key = f"{prefix}/{name}"
        uploads.append((key, data, mime, False))
        state[merge.ATTACHMENTS] = {
            **state[merge.ATTACHMENTS],
            name: {"key": key, "mime_type": mime, "size": len(data)},
        }


def _tombstone(row: list[Any], stored_key: list[str], version: int) -> list[Any]:
    """The row's previous version under its old sort key, deleted: a run whose key changed (a post arriving
    with another start time than a recovered state) must not stay visible twice."""
    old = list(row)
    old[_SESSION], old[_START] = stored_key[0], ticks(datetime.fromisoformat(stored_key[1]))
    old[_VERSION], old[_DELETED] = version, 1
    return old
