"""The spool: durable appends, ordered reads, checkpoints, torn-tail recovery, bounded size."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from schemas import ApiError
from storage.spool import Spool


def append_all(spool: Spool, payloads: list[bytes]) -> None:
    async def run() -> None:
        await asyncio.gather(*(spool.append(p) for p in payloads))

    asyncio.run(run())


def read_all(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while True:
        records, ends = spool.read(max_records=7, max_bytes=1 << 20)
        if not records:
            return out
        out.extend(records)
        spool.commit(ends[-1])


def test_append_read_commit_and_rollover(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10 << 20, segment_bytes=1000)
    payloads = [f"record-{i}".encode() * 10 for i in range(100)]
    append_all(spool, payloads)
    assert spool.depth_bytes() > 0
    assert read_all(spool) == payloads, "every record, in order"
    assert spool.depth_bytes() == 0
    assert len(list(tmp_path.glob("*.seg"))) == 1, "segments behind the checkpoint are deleted"
    spool.close()


def test_replay_after_restart_starts_at_checkpoint(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10 << 20, segment_bytes=500)
    append_all(spool, [b"a" * 50, b"b" * 50, b"c" * 50])
    records, ends = spool.read(max_records=1, max_bytes=1 << 20)
    assert records == [b"a" * 50]
    spool.commit(ends[-1])
    spool.close()
    reopened = Spool(tmp_path, max_bytes=10 << 20, segment_bytes=500)
    assert read_all(reopened) == [b"b" * 50, b"c" * 50]
    reopened.close()


def test_torn_tail_is_cut(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10 << 20)
    append_all(spool, [b"complete"])
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    with segment.open("ab") as f:
        f.write(b"\x40\x00\x00\x00garbage-partial-record")
    reopened = Spool(tmp_path, max_bytes=10 << 20)
    assert read_all(reopened) == [b"complete"]
    append_all(reopened, [b"after"])
    assert read_all(reopened) == [b"after"]
    reopened.close()


def test_full_spool_answers_503_with_retry_after(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    append_all(spool, [b"x" * 60])

    async def overflow() -> None:
        await spool.append(b"y" * 60)

    with pytest.raises(ApiError) as error:
        asyncio.run(overflow())
    assert error.value.status == 503 and error.value.retry_after
    assert read_all(spool) == [b"x" * 60]
    append_all(spool, [b"y" * 60])  # room again once flushed
    spool.close()


def test_a_wake_up_without_new_records_does_not_end_a_wait_for_data(tmp_path: Path) -> None:
    """Submitting a record notifies the spool's condition before the record is written; the batcher took such a
    wake-up for a quiet spool and ended a batch's growth early."""
    spool = Spool(tmp_path, max_bytes=1 << 20)

    def wake() -> None:
        with spool._cond:  # what a submit does, without the write that follows it
            spool._cond.notify_all()

    waker = threading.Timer(0.05, wake)
    waker.start()
    started = time.monotonic()
    assert spool.wait_for_data(0.5, spool.end) is False
    assert time.monotonic() - started >= 0.45, "the wait lasted its timeout"
    waker.join()
    spool.close()
