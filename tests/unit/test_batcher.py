"""The batcher: a record storage refuses while accepting its neighbours is set aside, never the rest; an
outage keeps everything in the spool; the next batch is staged while one is written, and discarded if that
write fails."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from storage.batcher import Batcher, _Writing
from storage.spool import Spool
from tests.support import wait_for


class Serial:
    """A `Flush` over a plain function: staging keeps the records, writing calls the function."""

    def __init__(self, fn: Callable[[list[bytes]], None]) -> None:
        self.fn = fn

    def __call__(self, records: list[bytes]) -> None:
        self.fn(records)

    def stage(self, records: list[bytes]) -> list[bytes]:
        return records

    def exclusive(self, staged: list[bytes]) -> bool:
        return False

    def write(self, staged: list[bytes], concurrency: int = 1) -> None:
        self.fn(staged)

    def settle(self, staged: list[bytes]) -> None:
        pass

    def discard(self, staged: list[bytes]) -> None:
        pass


def flush_one(batcher: Batcher) -> bool:
    """Stage, write and settle one batch; returns whether nothing was kept back (`healthy`)."""
    batcher.drain_once()
    batcher.finish()
    return batcher.healthy


class Storage:
    def __init__(self) -> None:
        self.stored: list[bytes] = []
        self.down = False

    def flush(self, records: list[bytes]) -> None:
        if self.down or any(b"poison" in r for r in records):
            raise RuntimeError("refused")
        self.stored.extend(records)


def spool_with(tmp_path: Path, *records: bytes) -> Spool:
    spool = Spool(tmp_path, max_bytes=1 << 20)

    async def append() -> None:
        for record in records:
            await spool.append(record)

    asyncio.run(append())
    return spool


def test_poison_record_is_quarantined_and_the_rest_stored(tmp_path: Path) -> None:
    storage = Storage()
    spool = spool_with(tmp_path, b"a", b"poison-1", b"b")
    assert flush_one(Batcher(spool, Serial(storage.flush)))
    assert storage.stored == [b"a", b"b"]
    assert spool.depth_bytes() == 0
    (kept,) = (tmp_path / "quarantine").glob("*.rec")
    assert kept.read_bytes().endswith(b"poison-1") and "refused" in kept.with_suffix(".reason").read_text()
    spool.close()


def test_outage_keeps_everything(tmp_path: Path) -> None:
    storage = Storage()
    storage.down = True
    spool = spool_with(tmp_path, b"a", b"b", b"c")
    batcher = Batcher(spool, Serial(storage.flush))
    assert not flush_one(batcher)
    assert not (tmp_path / "quarantine").exists() and spool.depth_bytes() > 0
    storage.down = False
    assert flush_one(batcher)
    assert storage.stored == [b"a", b"b", b"c"]
    spool.close()


def test_a_lone_failing_record_waits_for_evidence(tmp_path: Path) -> None:
    storage = Storage()
    spool = spool_with(tmp_path, b"poison-2")
    batcher = Batcher(spool, Serial(storage.flush))
    assert not flush_one(batcher), "alone, a failure may be an outage: kept"
    assert not (tmp_path / "quarantine").exists()

    async def more() -> None:
        await spool.append(b"c")

    asyncio.run(more())
    assert flush_one(batcher)
    assert storage.stored == [b"c"] and len(list((tmp_path / "quarantine").glob("*.rec"))) == 1
    spool.close()


def test_a_passing_fault_is_retried_not_quarantined(tmp_path: Path) -> None:
    storage = Storage()
    calls = {"n": 0}

    def flaky(records: list[bytes]) -> None:
        calls["n"] += 1
        if calls["n"] in (1, 2):  # the batch and then the first record alone fail, then storage recovers
            raise RuntimeError("blip")
        storage.flush(records)

    spool = spool_with(tmp_path, b"a", b"b")
    assert flush_one(Batcher(spool, Serial(flaky)))
    assert sorted(storage.stored) == [b"a", b"b"] and not (tmp_path / "quarantine").exists()
    spool.close()


def test_quarantined_records_can_be_requeued(tmp_path: Path) -> None:
    storage = Storage()
    spool = spool_with(tmp_path, b"a", b"poison-3", b"b")
    flush_one(Batcher(spool, Serial(storage.flush)))
    assert storage.stored == [b"a", b"b"]
    assert spool.requeue_quarantined() == 1
    assert not list((tmp_path / "quarantine").glob("*"))
    storage.flush = lambda records: storage.stored.extend(records)  # type: ignore[method-assign]  # "fixed"
    assert flush_one(Batcher(spool, Serial(storage.flush)))
    assert storage.stored == [b"a", b"b", b"poison-3"]
    spool.close()


class Recording(Serial):
    """Logs each step; the write of `a` waits (bounded) for `b` to be staged, and fails while `fail` is set."""

    def __init__(self) -> None:
        super().__init__(lambda records: None)
        self.log: list[str] = []
        self.stored: list[bytes] = []
        self.fail = False
        self.b_staged = threading.Event()

    def stage(self, records: list[bytes]) -> list[bytes]:
        self.log.append(f"stage {records[0].decode()}")
        if records == [b"b"]:
            self.b_staged.set()
        return records

    def write(self, staged: list[bytes], concurrency: int = 1) -> None:
        if staged == [b"a"]:
            self.log.append("a written beside b's staging" if self.b_staged.wait(5) else "a written alone")
        if self.fail:
            raise RuntimeError("storage down")
        self.stored.extend(staged)

    def settle(self, staged: list[bytes]) -> None:
        self.log.append(f"settle {staged[0].decode()}")

    def discard(self, staged: list[bytes]) -> None:
        self.log.append(f"discard {staged[0].decode()}")


def test_the_next_batch_is_staged_while_one_is_written(tmp_path: Path) -> None:
    flush = Recording()
    spool = spool_with(tmp_path, b"a", b"b")
    batcher = Batcher(spool, flush, max_records=1)
    assert batcher.drain_once() == (True, True) and spool.depth_bytes() > 0, "a is being written"
    assert batcher.drain_once() == (True, True)
    assert batcher.finish()
    assert flush.log == ["stage a", "stage b", "a written beside b's staging", "settle a", "settle b"]
    assert flush.stored == [b"a", b"b"] and spool.depth_bytes() == 0
    spool.close()


def test_a_failed_write_discards_the_batch_staged_after_it(tmp_path: Path) -> None:
    flush = Recording()
    flush.fail = True
    spool = spool_with(tmp_path, b"a", b"b")
    batcher = Batcher(spool, flush, max_records=1)
    batcher.drain_once()
    assert batcher.drain_once()[0] is False and not batcher.healthy
    assert flush.log == ["stage a", "stage b", "a written beside b's staging", "discard b", "discard a"]
    assert flush.stored == [] and spool.depth_bytes() > 0
    flush.fail = False
    while spool.depth_bytes() > 0:  # each call stores a batch or fails: bounded by the two records
        assert flush_one(batcher)
    assert flush.stored == [b"a", b"b"], "in spool order, each once"
    spool.close()


def test_a_burst_is_stored_once_records_stop_coming_not_a_busy_interval_later(tmp_path: Path) -> None:
    storage = Storage()
    spool = spool_with(tmp_path, b"first")
    # Every batch counts as busy, so the next one may wait a minute to grow, unless nothing arrives meanwhile.
    batcher = Batcher(spool, Serial(storage.flush), interval=0.05, busy_interval=60.0, busy_bytes=1)
    batcher.start()
    try:
        wait_for(lambda: storage.stored == [b"first"], timeout=10, what="the first batch")
        asyncio.run(append(spool, b"second"))
        wait_for(lambda: storage.stored == [b"first", b"second"], timeout=10, what="the burst, before a minute")
    finally:
        batcher.stop()
        spool.close()


def test_a_burst_ends_after_a_silence_of_a_few_of_its_gaps_not_a_whole_interval(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, *[b"r"] * 50)
    batcher = Batcher(spool, Serial(lambda records: None), interval=1.0)
    now = time.monotonic()
    batcher._counted_from = (now - 0.1, 0)  # 50 records in 0.1 s: a gap of 2 ms
    assert 0.02 <= batcher._quiet_gap() < 0.05
    batcher._counted_from = (now - 10.0, 0)  # 50 records in 10 s: a gap of 0.2 s, 8 of which exceed `interval`
    assert batcher._quiet_gap() == 1.0
    batcher._counted_from = (now, spool.appended())  # none since the last batch: nothing to measure a gap by
    assert batcher._quiet_gap() == 1.0
    spool.close()


class Concurrency(Serial):
    """Records how many inserts each write may run at once."""

    def __init__(self) -> None:
        super().__init__(lambda records: None)
        self.seen: list[int] = []

    def write(self, staged: list[bytes], concurrency: int = 1) -> None:
        self.seen.append(concurrency)


def test_a_batch_is_split_across_inserts_only_once_records_stopped_coming(tmp_path: Path) -> None:
    flush = Concurrency()
    spool = spool_with(tmp_path, b"a", b"b")
    # The records came less than a minute ago: the burst may go on, a batch is one insert.
    assert flush_one(Batcher(spool, flush, max_records=1, interval=60.0, quiet_concurrency=3))
    # None came within `interval` (0 s): the burst is over, its backlog may use every core.
    assert flush_one(Batcher(spool, flush, max_records=1, interval=0.0, quiet_concurrency=3))
    assert flush.seen == [1, 3]
    spool.close()


async def append(spool: Spool, record: bytes) -> None:
    await spool.append(record)


def test_maintenance_waits_for_the_write_in_progress_to_end_unless_long_overdue(tmp_path: Path) -> None:
    spool = spool_with(tmp_path)
    batcher = Batcher(spool, Serial(lambda records: None), maintenance=lambda: None, maintenance_interval=5.0)
    assert not batcher._maintenance_due(4.0), "not yet due"
    assert batcher._maintenance_due(5.0), "due, and nothing is being written"
    write: Future[None] = Future()
    batcher._writing = _Writing([], [], None, 0.0, write)
    assert not batcher._maintenance_due(5.0), "would stop the next batch's staging until the write ends"
    assert batcher._maintenance_due(20.0), "four intervals late: it waits for the write after all"
    write.set_result(None)
    assert batcher._maintenance_due(5.0), "the write is done: finishing it costs nothing"
    spool.close()
