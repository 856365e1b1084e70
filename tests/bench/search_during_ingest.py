"""search() latency while ingest runs: a real server is loaded with SDK-shaped multipart requests (as
tests/bench/ingest.py sends them) while one client repeats a `search()` of a word no run contains, so every part
of the project is either skipped by its full-text index or read. Inserts leave that index to each part's first
merge (`storage.runs.insert_settings`), so the runs of the last seconds are read whole: this prints what a search
costs before, during and right after the load.

    .venv/bin/python -m tests.bench.search_during_ingest [--requests 1000] [--before 200]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.bench.ingest import pct, run_load, sdk_body, until_stored
from tests.support import Server

ABSENT = "qzxwvkjh"  # the bench's payloads are random letters: eight of them in this order occur nowhere


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000, help="requests of 100 runs sent during the searches")
    parser.add_argument("--before", type=int, default=200, help="requests of 100 runs stored before")
    args = parser.parse_args()
    random.seed(9)
    stored_before = [sdk_body()[0] for _ in range(args.before)]
    during = [sdk_body()[0] for _ in range(args.requests)]
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "data", env={"TRACEHOUSE_LOG_LEVEL": "warning"}).start()
        try:
            run_load(server.url, stored_before, 4)
            until_stored(server.url)
            with httpx.Client(base_url=server.url, timeout=60) as http:
                project = http.get("/sessions", params={"name": "bench"}).json()[0]["id"]
                query = {"session": [project], "filter": f'search("{ABSENT}")', "limit": 100}

                def search() -> float:
                    started = time.perf_counter()
                    response = http.post("/runs/query", json=query)
                    assert response.status_code == 200 and not response.json()["runs"], response.text
                    return time.perf_counter() - started

                idle = [search() for _ in range(20)]
                loaded = threading.Event()
                load = threading.Thread(target=lambda: (run_load(server.url, during, 4), loaded.set()))
                load.start()
                busy = []
                while not loaded.is_set():
                    busy.append(search())
                load.join()
                until_stored(server.url)
                after = [search() for _ in range(20)]
        finally:
            server.stop()
    print(
        f"search() of an absent word over {args.before * 100:,} runs: p50 {pct(idle, 50):.0f} ms; "
        f"while {args.requests * 100:,} more were ingested: p50 {pct(busy, 50):.0f} p90 {pct(busy, 90):.0f} "
        f"p99 {pct(busy, 99):.0f} ms ({len(busy)} searches); once they were stored: p50 {pct(after, 50):.0f} "
        f"p90 {pct(after, 90):.0f} ms"
    )


if __name__ == "__main__":
    main()
