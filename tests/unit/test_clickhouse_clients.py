"""Per-thread ClickHouse clients do not pile up as threads come and go (worker threads retire when idle)."""

from __future__ import annotations

import threading
from pathlib import Path

from storage import Storage, metrics


def test_clients_of_ended_threads_are_closed(tmp_path: Path) -> None:
    storage = Storage.open(f"chdb://{tmp_path / 'ch'}", f"file://{tmp_path / 'blobs'}")
    ch = storage.clickhouse
    try:
        assert ch.client().query("SELECT 1").result_rows == [(1,)]
        answers: list[int] = []
        for n in range(12):  # one thread after another, each with its own client
            thread = threading.Thread(
                target=lambda n=n: answers.append(ch.client().query(f"SELECT {n}").result_rows[0][0])
            )
            thread.start()
            thread.join()
        assert answers == list(range(12))
        assert metrics.CLICKHOUSE_CLIENTS._value.get() <= 2, "this thread's client and at most the last thread's"
        assert ch.client().query("SELECT 2").result_rows == [(2,)], "closing clients left the engine open"
    finally:
        storage.close()
    assert metrics.CLICKHOUSE_CLIENTS._value.get() == 0
