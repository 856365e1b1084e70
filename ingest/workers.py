"""Request decoding in worker processes.

Decoding a 100-run SDK request (decompress, split, parse, validate, encode the spool record) costs ~5 ms of
Python; in the server process that time holds the GIL the batcher needs, and the batcher was the bottleneck
(measured with tests/bench/ingest.py). Workers return the finished spool record, so the server process only
appends bytes; the rows of posts presumed new are built here too (`ingest.fresh`). Workers are started with
`spawn`: the server process hosts the embedded ClickHouse engine and its threads, which must not be forked.

Each worker sits behind its own socket pair, which the server's event loop reads directly. This replaced
`ProcessPoolExecutor`, whose manager and feeder threads passed every message on: a call that returns 300 KB (a
spool record is ~230-340 KB) cost the server 0.7-1.0 ms of CPU there against ~0.3 here, and the worker 0.3-0.65
ms against ~0.15 (~9 µs per run in all; measured with a function that only returns 300 KB).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import pickle
import signal
import socket
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from ingest import decode, fresh, records
from ingest.body import decompress
from ingest.multipart import split_parts
from schemas import ApiError

_PR_SET_PDEATHSIG = 1
_FRAME = struct.Struct("!Q")  # each message: its length, then its pickle
_SOCKET_BUFFER = 4 * 1024 * 1024  # a whole request or record in one kernel buffer: fewer wakeups per message
_START_TIMEOUT = 120.0  # for a spawned worker to import and say it is ready
_RESPAWN_DELAY = 5.0

log = logging.getLogger(__name__)


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
    ops, rows = fresh.split(decoded.ops, decoded.built)
    record = records.encode(tenant_id, ops, decoded.feedback, fresh=records.pack_fresh(rows))
    return record, decoded.runs(), len(decoded.feedback)


def _serve(sock: socket.socket, setup: Callable[[], None] | None) -> None:
    """A worker's life: one call at a time until the server closes its end (or dies: see `_start_worker`)."""
    _start_worker(setup)
    with sock:
        sock.sendall(b"!")  # ready
        while True:
            try:
                fn, args = pickle.loads(_receive(sock))
            except EOFError:
                return
            try:
                reply: tuple[bool, Any] = (True, fn(*args))
            except Exception as exc:  # the caller re-raises it (ApiError: a 4xx for that request)
                reply = (False, exc)
            try:
                data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # an exception that does not pickle must not end the worker
                data = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
            try:
                sock.sendall(_FRAME.pack(len(data)))
                sock.sendall(data)
            except OSError:  # the server closed its end meanwhile (shutting down)
                return


def _receive(sock: socket.socket) -> bytearray:
    size = _FRAME.unpack(_exactly(sock, _FRAME.size))[0]
    return _exactly(sock, size)


def _exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            raise EOFError
        received += count
    return buffer


def _start_worker(setup: Callable[[], None] | None) -> None:
    """A worker must not outlive a server that was killed with SIGKILL (it would hold memory forever):
    ask Linux to signal it when the parent dies (elsewhere the end of its socket ends it, once it is idle).
    `setup` is the process tuning the server applies to itself (`tracehouse.tuning`)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the server ends us
    if setup is not None:
        setup()


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    sock: socket.socket  # the server's end, non-blocking: the event loop reads and writes it


class DecodePool:
    """Runs the functions above in `processes` workers, or in the server's thread pool when 0. A call takes an
    idle worker and gives it back once its reply is read, even when the caller was cancelled meanwhile."""

    def __init__(self, processes: int, setup: Callable[[], None] | None = None) -> None:
        self.processes = processes
        self.setup = setup
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the serving loop, which owns the queue
        self._idle: asyncio.Queue[_Worker] | None = None

    def start(self) -> None:
        """Start the workers now (a spawned worker takes ~1 s to import), not on the first request."""
        self._workers = [self._spawn() for _ in range(self.processes)]

    def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        for end in (ours, theirs):
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                end.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
        process = self._context.Process(target=_serve, args=(theirs, self.setup), daemon=True, name="decode-worker")
        process.start()
        theirs.close()
        ours.settimeout(_START_TIMEOUT)
        try:
            ready = ours.recv(1)
        except OSError:
            ready = b""
        if ready != b"!":
            ours.close()
            process.kill()
            raise RuntimeError(f"decode worker {process.pid} did not start (exit code {process.exitcode})")
        ours.setblocking(False)
        return _Worker(process, ours)

    async def run(self, fn, *args):  # type: ignore[no-untyped-def]
        if not self.processes:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # the first call, or another event loop (tests): a queue of its own
            self._loop, self._idle = loop, asyncio.Queue()
            for worker in self._workers:
                self._idle.put_nowait(worker)
        assert self._idle is not None
        worker = await self._idle.get()
        call = asyncio.ensure_future(self._call(worker, pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)))
        call.add_done_callback(_retrieved)  # a cancelled caller leaves the call to finish on its own
        ok, value = await asyncio.shield(call)
        if ok:
            return value
        raise value

    async def _call(self, worker: _Worker, request: bytes) -> tuple[bool, Any]:
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(worker.sock, _FRAME.pack(len(request)))
            await loop.sock_sendall(worker.sock, request)
            size = _FRAME.unpack(await _read(loop, worker.sock, _FRAME.size))[0]
            data = await _read(loop, worker.sock, size)
        except (OSError, EOFError):
            # The worker died (killed, out of memory): nothing of this request was spooled, so the client may
            # retry; a new worker takes its place.
            asyncio.ensure_future(self._replace(worker)).add_done_callback(_retrieved)
            raise ApiError(503, "request decoding was interrupted; retry", retry_after=1) from None
        assert self._idle is not None
        self._idle.put_nowait(worker)
        return pickle.loads(data)

    async def _replace(self, worker: _Worker) -> None:
        """Off the event loop: ending the old process and starting the new one (~1 s) block."""
        loop = asyncio.get_running_loop()
        worker.sock.close()
        await loop.run_in_executor(None, _end, worker.process)
        while True:
            if worker not in self._workers:  # closed meanwhile
                return
            try:
                fresh = await loop.run_in_executor(None, self._spawn)
                break
            except RuntimeError:
                log.exception("a decode worker could not be replaced; retrying in %s s", _RESPAWN_DELAY)
                await asyncio.sleep(_RESPAWN_DELAY)  # retry pacing, not synchronisation
        if worker not in self._workers:
            fresh.sock.close()
            await loop.run_in_executor(None, _end, fresh.process)
            return
        self._workers[self._workers.index(worker)] = fresh
        assert self._idle is not None
        self._idle.put_nowait(fresh)

    def close(self) -> None:
        """A worker ends when its socket closes, once its call in progress is answered."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.sock.close()
        for worker in workers:
            _end(worker.process)


def _end(process: BaseProcess) -> None:
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join()


async def _read(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytearray:
    """`size` bytes, received straight into one buffer: a reply is usually in the socket's buffer already."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = await loop.sock_recv_into(sock, view[received:])
        if count == 0:
            raise EOFError
        received += count
    return buffer


def _retrieved(call: asyncio.Future[Any]) -> None:
    """Marks the outcome of a call nobody awaits any more as seen (asyncio logs an unseen exception)."""
    if not call.cancelled():
        call.exception()
