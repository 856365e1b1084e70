"""The batcher: moves spooled records into storage in large batches, bounded in size and delay.

It owns no merge logic: a `Flush` (the ingest's merge-and-write) stages each batch (decode, merge, build rows:
Python) and writes it (insert: mostly ClickHouse's own threads). While one batch is written on the writer thread,
the next one is staged, so the two halves overlap; the spool checkpoint moves only once a batch is written. If
storage fails, the same records are retried with backoff, and the spool absorbs new writes until it is full
(then ingest answers 503). Replays after a crash are safe because flushing is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from storage import metrics
from storage.spool import Position, Spool

log = logging.getLogger(__name__)

# Spooled bytes per batch, the default of every layer that configures it: larger parts cost ClickHouse less (see
# docs/sizing.md), and a batch being staged holds about this much in memory.
MAX_BATCH_BYTES = 64 * 1024 * 1024
# A silence of this many mean gaps between records ends a burst (`Batcher._quiet_gap`). Arrivals at random leave
# a gap that long about once in 3,000 (e^-8), and such a false end only cuts one batch short.
_QUIET_GAPS = 8
_MIN_QUIET = 0.02


class Flush(Protocol):
    """Stores records in two steps. `stage` may merge onto batches staged before it and not yet settled; a
    staged batch is then either written and settled, or discarded (it is staged again from the spool). Calling
    it stores a batch at once."""

    def __call__(self, records: list[bytes]) -> None: ...

    def stage(self, records: list[bytes]) -> Any: ...

    def exclusive(self, staged: Any) -> bool:
        """Whether the next batch may only be staged after this one is settled."""
        ...

    def write(self, staged: Any, concurrency: int) -> None:
        """I/O only: it runs on the writer thread, beside the staging of the next batch. `concurrency`: how
        many inserts it may run at once."""
        ...

    def settle(self, staged: Any) -> None: ...

    def discard(self, staged: Any) -> None: ...


@dataclass(slots=True)
class _Writing:
    records: list[bytes]
    ends: list[Position]
    staged: Any
    started: float
    done: Future[None]


class Batcher:
    def __init__(
        self,
        spool: Spool,
        flush: Flush,
        *,
        interval: float = 0.25,
        busy_interval: float = 1.0,
        busy_bytes: int = 2 * 1024 * 1024,
        max_records: int = 1_000,
        max_bytes: int = MAX_BATCH_BYTES,
        max_backoff: float = 5.0,
        quiet_concurrency: int = 2,
        maintenance: Callable[[], object] | None = None,
        maintenance_interval: float = 5.0,
    ) -> None:
        """`interval` bounds the delay from ack to storage at low load; after a batch of at least `busy_bytes`
        (under load), the next one waits `busy_interval` instead: a batch four times larger cost ~25% less CPU
        per run, most of it ClickHouse merging fewer, larger parts (measured). The wait ends early when no record
        has arrived for a while (`_quiet_gap`): the burst is over, and waiting longer would only delay what it
        spooled.
        `max_records`/`max_bytes` bound one batch (records are requests, so one record may carry many runs).
        A batch whose write starts once the burst is over is its backlog: nothing else needs the cores, so it is
        written by up to `quiet_concurrency` inserts at once (the spool of 60,000 SDK runs drained at 24,700
        runs/s instead of 18,700). Under load a batch is one insert:
        splitting every one cost 33-70% more ClickHouse CPU per run in merges (tests/bench/otlp.py, OTLP and SDK).
        `maintenance` runs on the batcher's thread about every `maintenance_interval` seconds, with no batch
        being written (work that must not race the flushes; see `_maintenance_due`)."""
        self.maintenance = maintenance
        self.maintenance_interval = maintenance_interval
        self.spool = spool
        self.flush = flush
        self.interval = interval
        self.busy_interval = busy_interval
        self.busy_bytes = busy_bytes
        self.last_batch_bytes = 0
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_backoff = max_backoff
        self.quiet_concurrency = quiet_concurrency
        self.healthy = True
        self.last_error: str | None = None
        self._writing: _Writing | None = None  # the batch on the writer thread; the spool is read after it
        self._counted_from = (time.monotonic(), spool.appended())  # when the last batch started, records by then
        self._quiet = interval  # the silence that ends a burst, as of the last batch's start (`_quiet_gap`)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer")
        self._stop = threading.Event()
        # Not `_thread`: mypyc names the compiled attribute's C field `__thread`, a keyword of C.
        self._batcher_thread = threading.Thread(target=self._loop, name="batcher", daemon=True)

    def start(self) -> None:
        self._batcher_thread.start()

    def _loop(self) -> None:
        backoff = 0.0
        full = busy = False
        last_start = last_maintenance = time.monotonic()
        while not self._stop.is_set():
            maintenance = self.maintenance
            if maintenance is not None and self._maintenance_due(time.monotonic() - last_maintenance):
                last_maintenance = time.monotonic()
                try:
                    if self.finish():
                        maintenance()
                except Exception:
                    log.exception("batcher maintenance failed; retrying next interval")
            # While a batch is being written, only new records are worth waiting for: without any, finish it.
            if not self.spool.wait_for_data(0 if self._writing else self.interval, self._read_from):
                self.finish()
                continue
            # Batches start at most every `interval` (`busy_interval` under load) unless the last one was full:
            # few large inserts, back-to-back when the spool runs ahead (the wait counts from the previous
            # batch's start). The batch before is written meanwhile, and whatever of its write is left when the
            # wait ends overlaps this one's staging: finishing it first made a cycle take staging plus writing,
            # and under load that was what fell behind the acks.
            remaining = (self.busy_interval if busy else self.interval) - (time.monotonic() - last_start)
            if not full and remaining > 0:
                self._let_batch_grow(remaining)
            self._quiet = self._quiet_gap()
            last_start = time.monotonic()
            self._counted_from = (last_start, self.spool.appended())
            ok, full = self.drain_once()
            busy = self.last_batch_bytes >= self.busy_bytes
            if ok:
                backoff = 0.0
            else:
                backoff = min(self.max_backoff, max(0.1, backoff * 2))
                self._stop.wait(backoff)

    def _maintenance_due(self, since_last: float) -> bool:
        """Maintenance waits for the batch being written, and under load one always is: waiting for it stopped
        the next batch's staging for up to a write's time (0.7 s every 5 s, traced), so it runs once the write
        is done anyway, or when no record comes (the loop finishes the write), unless it is 4 intervals late."""
        if since_last < self.maintenance_interval:
            return False
        return self._writing is None or self._writing.done.done() or since_last >= 4 * self.maintenance_interval

    def _let_batch_grow(self, seconds: float) -> None:
        """Wait up to `seconds` while records keep arriving, no further apart than `_quiet_gap`."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or not self.spool.wait_for_data(min(self._quiet_gap(), left), self.spool.end):
                return

    def _quiet_gap(self) -> float:
        """How long without a record means a burst is over: `_QUIET_GAPS` times the mean gap between the records
        submitted since the last batch started, within [`_MIN_QUIET`, `interval`]. Under load the next record
        comes within milliseconds, so a silence of `interval` was mostly waiting: 0.25 of the 0.6 s between the
        last ack of tests/bench/ingest.py and its runs being stored. At a low rate it is `interval`."""
        started, appended = self._counted_from
        arrived = self.spool.appended() - appended
        if not arrived:
            return self.interval
        mean_gap = (time.monotonic() - started) / arrived
        return min(self.interval, max(_MIN_QUIET, _QUIET_GAPS * mean_gap))

    @property
    def _read_from(self) -> Position | None:
        """Where the next batch starts: after the batch being written, else at the checkpoint (None)."""
        return self._writing.ends[-1] if self._writing else None

    def drain_once(self) -> tuple[bool, bool]:
        """Stage the next batch while the one before is written, then finish that one and hand this one to the
        writer (or write it here, when it is exclusive). Returns (no failure, batch was full); a failure means
        storage refused a batch, which stays in the spool. The batch's size is kept in `last_batch_bytes`."""
        records, ends = self.spool.read(max_records=self.max_records, max_bytes=self.max_bytes, since=self._read_from)
        self.last_batch_bytes = sum(map(len, records))
        full = len(records) >= self.max_records or self.last_batch_bytes >= self.max_bytes
        started = time.perf_counter()
        staged, error = None, None
        if records:
            try:
                staged = self.flush.stage(records)
            except Exception as exc:
                error = exc
        if not self.finish(staged_after=staged):
            return False, full
        if not records:
            return True, False
        # Decided once the batch before is written, when its own write starts.
        concurrency = self.quiet_concurrency if self.spool.quiet_for() >= self._quiet else 1
        if error is None and not self.flush.exclusive(staged):
            done = self._writer.submit(self.flush.write, staged, concurrency)
            self._writing = _Writing(records, ends, staged, started, done)
            return True, full
        if error is None:
            try:
                self.flush.write(staged, concurrency)
                self.flush.settle(staged)
            except Exception as exc:
                error = exc
            else:
                self._stored(ends, started, len(records))
                return True, full
        if staged is not None:
            self.flush.discard(staged)
        return self._failed(records, ends, error), full

    def finish(self, *, staged_after: Any = None) -> bool:
        """Wait for the batch being written, then settle it and move the checkpoint past it; on failure,
        fall back to storing its records singly. `staged_after` is a batch staged onto this one's states: it is
        discarded if this one failed (first, so that the retries do not merge onto it). Returns whether the
        batch was stored as a batch (or nothing was being written)."""
        writing, self._writing = self._writing, None
        if writing is None:
            return True
        try:
            writing.done.result()
            self.flush.settle(writing.staged)  # may write too (descendants): a failure there fails the batch
        except Exception as exc:
            if staged_after is not None:
                self.flush.discard(staged_after)
            self.flush.discard(writing.staged)
            self._failed(writing.records, writing.ends, exc)
            return False
        self._stored(writing.ends, writing.started, len(writing.records))
        return True

    def _stored(self, ends: list[Position], started: float, records: int) -> None:
        self.spool.commit(ends[-1])
        metrics.FLUSH_RECORDS.observe(records)
        metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
        if not self.healthy:
            log.warning("storage is back: flushed %d records", records)
        self.healthy, self.last_error = True, None

    def _failed(self, records: list[bytes], ends: list[Position], exc: BaseException) -> bool:
        """A batch storage refused: try its records singly (one may be poison). Returns whether all of them
        were stored or quarantined."""
        metrics.FLUSH_FAILURES.inc()
        if len(records) > 1 and self._one_by_one(records, ends):
            log.warning("flush of %d records failed (%r); stored them one by one", len(records), exc)
            self.healthy, self.last_error = True, None
            return True
        if self.healthy:
            log.error("flush of %d records failed; keeping them in the spool and retrying", len(records), exc_info=exc)
        self.healthy, self.last_error = False, repr(exc)
        return False

    def _one_by_one(self, records: list[bytes], ends: list[Position]) -> bool:
        """After a failed batch: flush records singly. A record that fails, while the next one succeeds and it
        fails again right after, is poison (its content, not storage, is the problem) and is quarantined; two
        failures in a row mean storage trouble, so stop there. Returns whether every record was stored or
        quarantined."""
        failed: tuple[int, Exception] | None = None
        for index, record in enumerate(records):
            try:
                self.flush([record])
            except Exception as exc:
                if failed is not None:
                    return False
                failed = (index, exc)
                continue
            if failed is not None:
                try:  # its neighbour went through: one more try tells a passing fault from a poison record
                    self.flush([records[failed[0]]])
                except Exception as exc:
                    path = self.spool.quarantine(records[failed[0]], repr(exc))
                    metrics.QUARANTINED.inc()
                    log.error("quarantined a spool record that storage refuses (%r): %s", exc, path)
                failed = None
            self.spool.commit(ends[index])
        return failed is None

    def stop(self, *, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop the loop; with `drain`, flush what is spooled first (graceful shutdown), as long as storage
        answers within `timeout` — what is left stays in the spool for the next start."""
        self._stop.set()
        if self._batcher_thread.is_alive():
            self._batcher_thread.join(timeout=timeout)
        try:
            if not drain:
                self.finish()
                return
            deadline = time.monotonic() + timeout
            while self.spool.depth_bytes() > 0 and time.monotonic() < deadline:
                if not self.drain_once()[0] or not self.finish():
                    break
        finally:
            self._writer.shutdown(wait=True)
