"""Durable local spool: an append-only, segmented log with group commit.

Ingest acknowledges a request only after its record is in the spool and fsynced, so an acknowledged write
survives `kill -9`. Many concurrent requests share one `fsync` (group commit): a writer thread takes every
record queued since its last sync, writes them in one go and syncs once. The batcher reads records back in
order from the files (not from memory, so a backlog costs disk, not RAM) and moves the checkpoint once they
are safely in ClickHouse; whole segments behind the checkpoint are deleted. On start the log is scanned from
the checkpoint and a torn tail (a record whose write never completed, hence never acknowledged) is cut off.

Record framing: little-endian u32 length, u32 CRC-32 of the payload, payload.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas import ApiError
from storage import metrics

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_SEGMENT_SUFFIX = ".seg"
_CHECKPOINT = "checkpoint"


@dataclass(frozen=True, order=True, slots=True)
class Position:
    segment: int
    offset: int


class SpoolFull(ApiError):
    pass


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        segment_bytes: int = 64 * 1024 * 1024,
        max_pending_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.max_pending_bytes = max_pending_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._pending: list[tuple[bytes, Callable[[BaseException | None], object]]] = []  # record, "durable" callback
        self._pending_bytes = 0
        self._last_append = time.monotonic()
        self._appended = 0  # records submitted since start
        self._stopping = False
        self._checkpoint = self._read_checkpoint()
        self._end = self._recover()
        self._file = open(self._segment_path(self._end.segment), "ab")  # noqa: SIM115 - kept open for appends
        self._thread = threading.Thread(target=self._write_loop, name="spool-writer", daemon=True)
        self._thread.start()
        metrics.SPOOL_BYTES.set_function(self.depth_bytes)

    # -- paths and recovery ------------------------------------------------------------------------------

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{number:012d}{_SEGMENT_SUFFIX}"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob(f"*{_SEGMENT_SUFFIX}"))

    def _read_checkpoint(self) -> Position:
        try:
            segment, offset = (self.directory / _CHECKPOINT).read_text().split()
            return Position(int(segment), int(offset))
        except FileNotFoundError:
            segments = self._segments()
            return Position(segments[0] if segments else 0, 0)

    def _recover(self) -> Position:
        """Find the end of the valid log, truncating a torn tail of the last segment."""
        segments = [s for s in self._segments() if s >= self._checkpoint.segment] or [self._checkpoint.segment]
        last = segments[-1]
        path = self._segment_path(last)
        if not path.exists():
            path.touch()
            self._fsync_dir()
        data = path.read_bytes()
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + length
            if end > len(data) or zlib.crc32(data[offset + _HEADER.size : end]) != crc:
                break
            offset = end
        if offset != len(data):
            cut = len(data) - offset
            log.warning("spool: cutting torn tail of %s at %d (%d bytes never acknowledged)", path, offset, cut)
            with open(path, "r+b") as f:
                f.truncate(offset)
                os.fsync(f.fileno())
        return Position(last, offset)

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- writing -----------------------------------------------------------------------------------------

    def depth_bytes(self) -> int:
        """Bytes written but not yet checkpointed (what a crash would replay)."""
        with self._cond:
            return self._depth_locked()

    def _depth_locked(self) -> int:
        if self._end.segment == self._checkpoint.segment:
            return self._end.offset - self._checkpoint.offset
        total = self._end.offset - self._checkpoint.offset
        for number in range(self._checkpoint.segment, self._end.segment):
            path = self._segment_path(number)
            total += path.stat().st_size if path.exists() else 0
        return total

    def append(self, payload: bytes) -> asyncio.Future[None]:
        """Queue one record; the returned future resolves once it is durable. Raises `SpoolFull` (503) when the
        backlog would exceed the spool's bound, and 429 when too much is waiting for the disk."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        size = len(payload) + _HEADER.size
        with self._cond:
            if self._stopping:
                raise ApiError(503, "shutting down", retry_after=5)
            if self._depth_locked() + self._pending_bytes + size > self.max_bytes:
                raise SpoolFull(
                    503, "ingest backlog is full (storage is slow or unreachable); retry later", retry_after=5
                )
            if self._pending_bytes + size > self.max_pending_bytes:
                raise ApiError(429, "too many requests waiting for the disk; retry later", retry_after=1)
            self._pending.append((payload, lambda error: loop.call_soon_threadsafe(_resolve, future, error)))
            self._pending_bytes += size
            self._last_append = time.monotonic()
            self._appended += 1
            self._cond.notify_all()
        return future

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending and self._stopping:
                    return
                batch, self._pending, self._pending_bytes = self._pending, [], 0
            error: BaseException | None = None
            try:
                frames = b"".join(_HEADER.pack(len(p), zlib.crc32(p)) + p for p, _ in batch)
                self._file.write(frames)
                self._file.flush()
                os.fsync(self._file.fileno())
                with self._cond:
                    self._end = Position(self._end.segment, self._end.offset + len(frames))
                    if self._end.offset >= self.segment_bytes:
                        self._roll_locked()
                    self._cond.notify_all()
            except BaseException as exc:  # disk full, I/O error: fail these requests, keep serving
                log.exception("spool write failed")
                error = exc
            for _, done in batch:
                done(error)

    def _roll_locked(self) -> None:
        self._file.close()
        self._end = Position(self._end.segment + 1, 0)
        self._file = open(self._segment_path(self._end.segment), "ab")  # noqa: SIM115
        self._fsync_dir()

    # -- reading (the batcher) ---------------------------------------------------------------------------

    @property
    def end(self) -> Position:
        """Where the records written so far end."""
        with self._cond:
            return self._end

    def quiet_for(self) -> float:
        """Seconds since the last record was submitted."""
        with self._cond:
            return time.monotonic() - self._last_append

    def appended(self) -> int:
        """Records submitted since the spool was opened."""
        with self._cond:
            return self._appended

    def wait_for_data(self, timeout: float, since: Position | None = None) -> bool:
        """Whether there are records after `since` (default: the checkpoint), waiting up to `timeout` for some."""
        with self._cond:
            # The condition is also notified when a record is submitted, before it is written: only the end
            # moving, or the timeout, ends the wait.
            return self._cond.wait_for(lambda: self._end != (since or self._checkpoint), timeout)

    def read(
        self, *, max_records: int, max_bytes: int, since: Position | None = None
    ) -> tuple[list[bytes], list[Position]]:
        """Records from `since` (default: the checkpoint) on, up to the bounds, each with the position just
        after it."""
        with self._cond:
            position, end = since or self._checkpoint, self._end
        records: list[bytes] = []
        ends: list[Position] = []
        size = 0
        while position < end and len(records) < max_records and size < max_bytes:
            path = self._segment_path(position.segment)
            limit = end.offset if position.segment == end.segment else None
            with open(path, "rb") as f:
                f.seek(position.offset)
                data = f.read(None if limit is None else limit - position.offset)
            offset = 0
            while offset + _HEADER.size <= len(data) and len(records) < max_records and size < max_bytes:
                length, _crc = _HEADER.unpack_from(data, offset)
                start = offset + _HEADER.size
                records.append(data[start : start + length])
                size += length
                offset = start + length
                ends.append(Position(position.segment, position.offset + offset))
            position = Position(position.segment, position.offset + offset)
            if limit is None and offset >= len(data):
                position = Position(position.segment + 1, 0)
        return records, ends

    def quarantine(self, record: bytes, reason: str) -> Path:
        """Set aside a record that storage refuses while accepting its neighbours (a poison record), so that
        it cannot block every write after it. It is kept, durably, with the reason, for an operator."""
        dead = self.directory / "quarantine"
        dead.mkdir(exist_ok=True)
        path = dead / f"{time.time_ns()}.rec"
        with open(path, "wb") as f:
            f.write(_HEADER.pack(len(record), zlib.crc32(record)) + record)
            f.flush()
            os.fsync(f.fileno())
        path.with_suffix(".reason").write_text(reason)
        self._fsync_dir()
        return path

    def requeue_quarantined(self) -> int:
        """Put quarantined records back at the end of the log (after the cause was fixed); returns how many.
        Each one is durable in the log before its quarantine file is removed."""
        dead = self.directory / "quarantine"
        count = 0
        for path in sorted(dead.glob("*.rec")) if dead.is_dir() else []:
            data = path.read_bytes()
            length, crc = _HEADER.unpack_from(data)
            record = data[_HEADER.size : _HEADER.size + length]
            if zlib.crc32(record) != crc:
                raise ValueError(f"{path} is damaged (CRC mismatch); left in place")
            durable = threading.Event()
            errors: list[BaseException] = []

            def done(error: BaseException | None, durable: threading.Event = durable, errors: list = errors) -> None:
                errors.extend([error] if error else [])
                durable.set()

            with self._cond:
                self._pending.append((record, done))
                self._pending_bytes += len(record) + _HEADER.size
                self._cond.notify_all()
            durable.wait()
            if errors:
                raise errors[0]
            path.unlink()
            path.with_suffix(".reason").unlink(missing_ok=True)
            count += 1
        return count

    def commit(self, position: Position) -> None:
        """Everything before `position` is stored downstream: persist the checkpoint, drop old segments."""
        with self._cond:
            end = self._end
        while position.segment < end.segment and position.offset >= self._segment_path(position.segment).stat().st_size:
            position = Position(position.segment + 1, 0)  # the end of a full segment is the start of the next
        tmp = self.directory / f"{_CHECKPOINT}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{position.segment} {position.offset}")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / _CHECKPOINT)
        with self._cond:
            self._checkpoint = position
            self._cond.notify_all()
        for number in self._segments():
            if number < position.segment:
                self._segment_path(number).unlink(missing_ok=True)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        self._file.close()


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(ApiError(503, f"could not persist the request: {error}", retry_after=5))
