"""The batcher: a record storage refuses while accepting its neighbours is set aside, never the rest; an
outage keeps everything in the spool."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.batcher import Batcher
from storage.spool import Spool


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
    assert Batcher(spool, storage.flush).drain_once() == (True, False)
    assert storage.stored == [b"a", b"b"]
    assert spool.depth_bytes() == 0
    (kept,) = (tmp_path / "quarantine").glob("*.rec")
    assert kept.read_bytes().endswith(b"poison-1") and "refused" in kept.with_suffix(".reason").read_text()
    spool.close()


def test_outage_keeps_everything(tmp_path: Path) -> None:
    storage = Storage()
    storage.down = True
    spool = spool_with(tmp_path, b"a", b"b", b"c")
    batcher = Batcher(spool, storage.flush)
    assert batcher.drain_once()[0] is False and not batcher.healthy
    assert not (tmp_path / "quarantine").exists() and spool.depth_bytes() > 0
    storage.down = False
    assert batcher.drain_once()[0] is True and batcher.healthy
    assert storage.stored == [b"a", b"b", b"c"]
    spool.close()


def test_a_lone_failing_record_waits_for_evidence(tmp_path: Path) -> None:
    storage = Storage()
    spool = spool_with(tmp_path, b"poison-2")
    batcher = Batcher(spool, storage.flush)
    assert batcher.drain_once()[0] is False, "alone, a failure may be an outage: kept"
    assert not (tmp_path / "quarantine").exists()

    async def more() -> None:
        await spool.append(b"c")

    asyncio.run(more())
    assert batcher.drain_once()[0] is True
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
    assert Batcher(spool, flaky).drain_once()[0] is True
    assert sorted(storage.stored) == [b"a", b"b"] and not (tmp_path / "quarantine").exists()
    spool.close()


def test_quarantined_records_can_be_requeued(tmp_path: Path) -> None:
    storage = Storage()
    spool = spool_with(tmp_path, b"a", b"poison-3", b"b")
    Batcher(spool, storage.flush).drain_once()
    assert storage.stored == [b"a", b"b"]
    assert spool.requeue_quarantined() == 1
    assert not list((tmp_path / "quarantine").glob("*"))
    storage.flush = lambda records: storage.stored.extend(records)  # type: ignore[method-assign]  # "fixed"
    assert Batcher(spool, storage.flush).drain_once()[0] is True
    assert storage.stored == [b"a", b"b", b"poison-3"]
    spool.close()
