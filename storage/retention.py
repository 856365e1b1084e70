"""Retention: runs expire `ttl_days` after they were written (ClickHouse TTL on `runs`), short-lived by
default and long-lived once their trace gets feedback; blobs and the run lookup tables' rows expire with the
longest retention.

The upgrade is a ClickHouse mutation of `ttl_days` on the trace's stored rows, not a re-insert: the ingest
batcher is the only writer of run versions, and a re-insert from here could overwrite a newer version.

Storing feedback only queues its run and trace here; a background sweeper applies the queue, because:
* one mutation per feedback does not scale: each costs ~25 ms on chDB (synchronous there) and a ClickHouse
  server refuses new ones past `number_of_mutations_to_throw` unfinished; a sweep is one per project;
* feedback may come before its run (the SDK sends it as soon as it has the id), and a run version the batcher
  writes after the mutation may carry the short TTL again (its merge cache predates the upgrade): so every
  queued id is checked again with a growing delay for `watch_seconds` (longer than the batcher waits for a
  post that never comes), and a trace is mutated again whenever one of its rows is below the long TTL.
The queue is in memory; after a restart it is rebuilt from the feedback rows inserted within the watch window.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from storage.blobs import BlobStore
from storage.clickhouse import ClickHouse
from storage.projects import ProjectRepository

log = logging.getLogger("tracehouse.retention")

FIRST_RECHECK = 1.0  # seconds after the first check; quadrupled after each one, up to MAX_RECHECK
MAX_RECHECK = 300.0
_CHUNK = 10_000  # ids per lookup
MAX_WATCHED = 500_000  # ids; beyond this the oldest are dropped (each holds ~200 bytes)


@dataclass(slots=True)
class _Watch:
    due: float  # monotonic time of the next check
    delay: float  # wait after the next check
    until: float  # monotonic time after which the id is no longer checked


class Retention:
    def __init__(
        self,
        ch: ClickHouse,
        projects: ProjectRepository,
        *,
        short_days: int,
        long_days: int,
        sweep_seconds: float = 1.0,
        watch_seconds: float = 900.0,
    ) -> None:
        self._ch = ch
        self.projects = projects
        self.short_days = short_days
        self.long_days = long_days
        self.sweep_seconds = sweep_seconds
        self.watch_seconds = watch_seconds
        self._next_expiry = 0.0
        self._watched: dict[tuple[uuid.UUID, uuid.UUID], _Watch] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def days(self, tenant_id: uuid.UUID, project_id: uuid.UUID) -> tuple[int, int]:
        """(short, long) retention of a project: its own settings, else the server's."""
        project = self.projects.cached(tenant_id, project_id)
        short = (project.short_ttl_days if project else None) or self.short_days
        long = (project.long_ttl_days if project else None) or self.long_days
        return short, max(short, long)

    def expire(self, blobs: BlobStore, *, every_seconds: float = 3600.0) -> int:
        """At most hourly: remove what outlives every run: blobs, and rows of the run lookup tables (`run_ids`,
        `runs_by_start`, `pending_runs`), written longer ago than the longest retention any project has, plus a
        week's margin. Runs expire by their TTL; these do not know their run's retention, and without this they
        grew by a row per run forever. Blobs are written once per payload, so a blob that old belongs to no run
        still kept (a run rewritten with an unchanged payload more than that long after it was offloaded is the
        exception); a lookup row's version is the time its run version was written. Returns the blobs
        removed."""
        now = time.monotonic()
        if now < self._next_expiry:
            return 0
        self._next_expiry = now + every_seconds
        client = self._ch.client()
        longest = client.query("SELECT max(ifNull(long_ttl_days, 0)) FROM projects FINAL").result_rows
        days = max(self.long_days, longest[0][0] or 0) + 7
        cutoff = time.time_ns() - days * 86_400 * 1_000_000_000
        for table in ("run_ids", "runs_by_start", "pending_runs"):
            # A delete waits for its mutation, which waits for the table's merges: 1.4 s under ingest load
            # (measured), on the batcher's thread. Most hours, and on every start of a young store, there is
            # nothing to delete.
            old = f"FROM {table} WHERE version < {{cutoff:UInt64}}"
            if client.query(f"SELECT 1 {old} LIMIT 1", parameters={"cutoff": cutoff}).result_rows:
                client.command(f"DELETE {old}", parameters={"cutoff": cutoff})
        return blobs.delete_older_than(days * 86400)

    # -- upgrades to long-lived --------------------------------------------------------------------------

    def upgrade(self, tenant_id: uuid.UUID, trace_ids: list[uuid.UUID], run_ids: list[uuid.UUID]) -> None:
        """Queue these traces (and the traces of these runs) for their project's long-lived period."""
        now = time.monotonic()
        with self._lock:
            for item in {*trace_ids, *run_ids}:
                self._watched.pop((tenant_id, item), None)  # re-queued at the end: the oldest go first
                self._watched[(tenant_id, item)] = _Watch(now, FIRST_RECHECK, now + self.watch_seconds)
            while len(self._watched) > MAX_WATCHED:
                dropped = next(iter(self._watched))
                del self._watched[dropped]
                log.warning("retention queue full: trace/run %s of tenant %s dropped", dropped[1], dropped[0])
        self.start()
        self._wake.set()

    def sweep(self, *, force: bool = False) -> int:
        """Apply the due part of the queue (all of it with `force`); returns the number of mutations issued."""
        now = time.monotonic()
        due: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        with self._lock:
            for (tenant_id, item), watch in list(self._watched.items()):
                if watch.until < now:
                    del self._watched[(tenant_id, item)]
                elif force or watch.due <= now:
                    due[tenant_id].append(item)
                    watch.due, watch.delay = now + watch.delay, min(watch.delay * 4, MAX_RECHECK)
        return sum(
            self._apply(tenant_id, items[start : start + _CHUNK])
            for tenant_id, items in due.items()
            for start in range(0, len(items), _CHUNK)
        )

    def _apply(self, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> int:
        """Mutate the traces of these ids (run or trace ids) whose stored rows are still short-lived: one
        lookup in `run_ids`, one check and at most one mutation per project. Ids not stored yet stay queued."""
        client = self._ch.client()
        located = client.query(
            "SELECT DISTINCT session_id, trace_id FROM run_ids FINAL "
            "WHERE tenant_id = {t:UUID} AND id IN {ids:Array(UUID)}",
            parameters={"t": tenant_id, "ids": ids},
        ).result_rows
        by_project: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        for session_id, trace_id in located:
            by_project[session_id].add(trace_id)
        mutations = 0
        for project_id, traces in by_project.items():
            long = self.days(tenant_id, project_id)[1]
            params = {"t": tenant_id, "p": project_id, "traces": list(traces), "long": long}
            # No FINAL: any version below the long TTL (an older one the last mutation missed, or a newer one
            # the batcher wrote since) needs the mutation.
            short = client.query(
                "SELECT DISTINCT trace_id FROM runs WHERE tenant_id = {t:UUID} AND session_id = {p:UUID} "
                "AND trace_id IN {traces:Array(UUID)} AND ttl_days < {long:UInt16}",
                parameters=params,
            ).result_rows
            if not short:
                continue
            client.command(
                "ALTER TABLE runs UPDATE ttl_days = {long:UInt16} WHERE tenant_id = {t:UUID} "
                "AND session_id = {p:UUID} AND trace_id IN {traces:Array(UUID)} AND ttl_days < {long:UInt16}",
                parameters={**params, "traces": [row[0] for row in short]},
            )
            mutations += 1
        return mutations

    def _recover(self) -> None:
        """Queue the feedback stored within the watch window: the queue did not survive a restart."""
        client = self._ch.client()
        tenants = client.query("SELECT DISTINCT tenant_id FROM projects").result_rows
        for (tenant_id,) in tenants:
            rows = client.query(
                "SELECT DISTINCT run_id, trace_id FROM feedback WHERE tenant_id = {t:UUID} "
                "AND inserted_at > now64(3) - toIntervalSecond({window:UInt32})",
                parameters={"t": tenant_id, "window": int(self.watch_seconds)},
            ).result_rows
            if rows:
                self.upgrade(tenant_id, [t for _, t in rows if t], [r for r, _ in rows if r.int])

    # -- the sweeper thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sweeper (idempotent; storing feedback starts it too)."""
        with self._lock:
            if self._thread is not None or self._closing.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="retention-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._recover()
        except Exception:
            log.exception("retention: rebuilding the upgrade queue failed")
        while not self._closing.is_set():
            self._wake.wait(self.sweep_seconds)
            self._wake.clear()
            if self._closing.is_set():
                break
            try:
                self.sweep()
            except Exception:  # ClickHouse unreachable: the ids stay queued and are tried again
                log.exception("retention: upgrading traces to long-lived failed")

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
