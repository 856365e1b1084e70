"""Auth overhead: requests/s with auth on vs off, in the same run.

Two servers run side by side (auth off, `TRACEHOUSE_AUTH=api-key`) and are measured in alternating rounds (the
order flips each round) on `GET /ok` (public: the middleware only matches the path), `GET /sessions`
(authenticated read) and a small `POST /runs` (authenticated ingest). The key is for the default workspace, so
both servers do the same work. A second part times the middleware alone in-process (ASGI calls to an empty app),
which shows its cost without the HTTP server's and the client's noise (and that of the body limit beside it).

    .venv/bin/python -m tests.bench.auth [--seconds 3] [--clients 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from storage.keys import Grant
from tests.support import Server
from tracehouse.auth import AuthMiddleware
from tracehouse.body_limit import BodyLimitMiddleware
from tracehouse.ratelimit import RateLimiter


def create_key(data: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tracehouse", "keys", "create", "--tenant", "default", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(line for line in out.splitlines() if line.startswith("th_"))


def rate(url: str, headers: dict[str, str], call: Callable[[httpx.Client], int], seconds: float, clients: int) -> float:
    """Requests/s of `clients` keep-alive connections for `seconds`; every answer must be a success."""
    done = [0] * clients
    deadline = time.monotonic() + seconds
    failures: list[int] = []

    def worker(i: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            while time.monotonic() < deadline:
                status = call(http)
                if status >= 300:
                    failures.append(status)
                    return
                done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    return sum(done) / (time.monotonic() - started)


def small_post(http: httpx.Client) -> int:
    run = {"id": str(uuid.uuid4()), "name": "bench", "run_type": "chain", "inputs": {"q": "hi"}}
    return http.post("/runs", json=run).status_code


CALLS: dict[str, Callable[[httpx.Client], int]] = {
    "GET /ok": lambda http: http.get("/ok").status_code,
    "GET /sessions": lambda http: http.get("/sessions", params={"limit": 1}).status_code,
    "POST /runs (small)": small_post,
}


def http_part(seconds: float, clients: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        on_dir = Path(tmp) / "on"
        key = create_key(on_dir)
        off = Server(Path(tmp) / "off", env={"TRACEHOUSE_LOG_LEVEL": "error"}).start()
        on = Server(on_dir, env={"TRACEHOUSE_AUTH": "api-key", "TRACEHOUSE_LOG_LEVEL": "error"}).start()
        try:
            print(f"HTTP, {clients} clients, {seconds:g} s per measurement, median of {rounds} alternating rounds")
            print(f"{'route':22} {'auth off req/s':>15} {'auth on req/s':>15} {'change':>8}")
            for name, call in CALLS.items():
                results: dict[str, list[float]] = {"off": [], "on": []}
                for i in range(rounds):
                    for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
                        server, headers = (off, {}) if mode == "off" else (on, {"x-api-key": key})
                        results[mode].append(rate(server.url, headers, call, seconds, clients))
                best_off, best_on = statistics.median(results["off"]), statistics.median(results["on"])
                print(f"{name:22} {best_off:15.0f} {best_on:15.0f} {100 * (best_on / best_off - 1):+7.1f}%")
        finally:
            off.stop()
            on.stop()


class CachedKeys:
    """A warm key cache, as in a running server after a key's first request."""

    def __init__(self, key: str) -> None:
        self.grants: dict[str, Grant] = {key: (uuid.uuid4(),)}

    def cached(self, key: str) -> Grant | None:
        return self.grants.get(key, ())

    def tenants_of(self, key: str) -> Grant:
        return self.grants.get(key, ())


async def _empty_app(scope: dict, receive: Callable, send: Callable) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def asgi_part(n: int) -> None:
    key = "th_" + "k" * 43
    scope_headers = [(b"x-api-key", key.encode()), (b"host", b"x")]

    async def call(app: Callable, path: str) -> float:
        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            pass

        started = time.perf_counter()
        for _ in range(n):
            scope = {"type": "http", "method": "GET", "path": path, "headers": scope_headers}
            await app(scope, receive, send)
        return (time.perf_counter() - started) / n * 1e6

    variants = {
        "no middleware": _empty_app,
        "auth off": AuthMiddleware(_empty_app, lookup=None, limiter=None),
        "auth on, cached key": AuthMiddleware(_empty_app, lookup=CachedKeys(key), limiter=None),
        "auth on + rate limit": AuthMiddleware(
            _empty_app, lookup=CachedKeys(key), limiter=RateLimiter(rate=1e9, burst=10**9)
        ),
        "body limit (not exempt)": BodyLimitMiddleware(_empty_app, max_bytes=10 << 20, exempt=[]),
    }
    print(f"\nmiddleware alone (in-process ASGI calls, {n} per figure, median of 5), microseconds per request")
    for name, app in variants.items():
        for path in ("/ok", "/runs/query"):
            times = [asyncio.run(call(app, path)) for _ in range(5)]
            print(f"  {name:24} {path:12} {statistics.median(times):6.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--asgi-requests", type=int, default=50_000)
    args = parser.parse_args()
    http_part(args.seconds, args.clients, args.rounds)
    asgi_part(args.asgi_requests)


if __name__ == "__main__":
    main()
