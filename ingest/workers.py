"""Request decoding in worker processes.

Decoding a 100-run SDK request (decompress, split, parse, validate, encode the spool record) costs ~5 ms of
Python; in the server process that time holds the GIL the batcher needs, and the batcher was the bottleneck
(measured with tests/bench/ingest.py). Workers return the finished spool record, so the server process only
appends bytes; the rows of posts presumed new are built here too (`ingest.fresh`). Workers are started with
`spawn`: the server process hosts the embedded ClickHouse engine and its threads, which must not be forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import signal
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ingest import decode, fresh, records
from ingest.body import decompress
from ingest.multipart import split_parts
from schemas import ApiError

_PR_SET_PDEATHSIG = 1


def multipart_record(
    body: bytes, encoding: str, boundary: str, tenant_id: uuid.UUID, max_bytes: int
) -> tuple[bytes, int, int]:
    return spool_record(
        tenant_id, decode.from_multipart(split_parts(decompress(body, encoding, max_bytes=max_bytes), boundary))
    )


def batch_record(body: bytes, encoding: str, tenant_id: uuid.UUID, max_bytes: int) -> tuple[bytes, int, int]:
    return spool_record(tenant_id, decode.from_batch(decompress(body, encoding, max_bytes=max_bytes)))


def spool_record(tenant_id: uuid.UUID, decoded: decode.Decoded) -> tuple[bytes, int, int]:
    """(the spool record, runs, feedback items)."""
    ops, rows = fresh.split(decoded.ops)
    record = records.encode(tenant_id, ops, decoded.feedback, fresh=records.pack_fresh(rows))
    return record, len(decoded.ops), len(decoded.feedback)


def _start_worker(setup: Callable[[], None] | None) -> None:
    """A worker must not outlive a server that was killed with SIGKILL (it would hold memory forever):
    ask Linux to signal it when the parent dies. Elsewhere the pool's broken pipe ends it. `setup` is the
    process tuning the server applies to itself (`tracehouse.tuning`)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if setup is not None:
        setup()


class DecodePool:
    """Runs the functions above in `processes` workers, or in the server's thread pool when 0."""

    def __init__(self, processes: int, setup: Callable[[], None] | None = None) -> None:
        self.processes = processes
        self.setup = setup
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor | None:
        if self.processes <= 0:
            return None
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.setup,),
        )

    def start(self) -> None:
        """Start the workers now (a spawned worker takes ~1 s to import), not on the first request."""
        if self._pool is not None:
            for future in [self._pool.submit(int) for _ in range(self.processes)]:
                future.result()

    async def run(self, fn, *args):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            return await loop.run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): nothing of this request was spooled, so the client may
            # retry; later requests get a fresh pool instead of failing forever.
            if self._pool is pool:
                self._pool = self._new_pool()
            raise ApiError(503, "request decoding was interrupted; retry", retry_after=1) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
