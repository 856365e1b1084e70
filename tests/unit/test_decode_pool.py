"""The decode worker pool against real spawned processes: replies reach their callers, errors cross back, and a
killed worker or a cancelled caller costs one request at most."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest

from ingest.workers import DecodePool
from schemas import ApiError


def pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value


def slow_echo(value: int, seconds: float) -> int:
    time.sleep(seconds)
    return value


def refuse(message: str) -> None:
    raise ApiError(422, message, detail={"part": "post.x"})


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def pool() -> Iterator[DecodePool]:
    decoder = DecodePool(1)
    decoder.start()
    yield decoder
    decoder.close()


def test_calls_run_in_the_worker_and_errors_cross_back(pool: DecodePool) -> None:
    async def scenario() -> None:
        results = await asyncio.gather(*(pool.run(pid_and, n) for n in range(20)))
        assert [value for _, value in results] == list(range(20))
        assert {pid for pid, _ in results} == {pool._workers[0].process.pid} != {os.getpid()}
        with pytest.raises(ApiError) as refused:
            await pool.run(refuse, "bad part")
        assert (refused.value.status, refused.value.message, refused.value.detail) == (
            422,
            "bad part",
            {"part": "post.x"},
        )
        assert (await pool.run(pid_and, 7))[1] == 7

    asyncio.run(scenario())


def test_a_killed_worker_fails_its_request_only_and_is_replaced(pool: DecodePool) -> None:
    async def scenario() -> None:
        first = pool._workers[0].process.pid
        with pytest.raises(ApiError) as interrupted:
            await pool.run(die)
        assert interrupted.value.status == 503 and interrupted.value.retry_after == 1
        pid, value = await asyncio.wait_for(pool.run(pid_and, 3), timeout=60)  # waits for the replacement
        assert value == 3 and pid != first

    asyncio.run(scenario())


def test_a_cancelled_caller_does_not_hand_its_reply_to_the_next(pool: DecodePool) -> None:
    async def scenario() -> None:
        abandoned = asyncio.ensure_future(pool.run(slow_echo, 1, 0.5))
        deadline = time.monotonic() + 10
        while pool._idle is None or not pool._idle.empty():  # until the call has taken the worker
            assert time.monotonic() < deadline, "the call never took the worker"
            await asyncio.sleep(0.005)  # polling interval of a deadline-bounded wait
        abandoned.cancel()
        assert await asyncio.gather(*(pool.run(slow_echo, n, 0) for n in (2, 3))) == [2, 3]

    asyncio.run(scenario())


def test_in_process_when_there_are_no_workers() -> None:
    decoder = DecodePool(0)
    decoder.start()
    assert asyncio.run(decoder.run(pid_and, 5)) == (os.getpid(), 5)
    decoder.close()


def test_a_new_event_loop_gets_the_same_workers(pool: DecodePool) -> None:
    pids = {asyncio.run(pool.run(pid_and, n))[0] for n in range(3)}
    assert pids == {pool._workers[0].process.pid}
