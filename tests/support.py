"""Test harness: real server processes on loopback and polling with deadlines (never sleeps as sync)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, Request
from langsmith import Client
from langsmith.run_trees import RunTree

from query import QueryService
from schemas import DEFAULT_TENANT_ID, Tenant, jsonutil
from schemas.projects import project_id_for_name
from storage.runs import RUN_COLUMNS, ticks
from tracehouse import errors

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], T | None], *, timeout: float = 15.0, interval: float = 0.05, what: str = "") -> T:
    """Poll `check` until it returns a truthy value or the deadline passes; exceptions count as not yet."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as error:
            last_error = error
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: {last_error!r}")
        time.sleep(interval)


class Server:
    """`tracehouse serve` as a subprocess on a free loopback port."""

    def __init__(
        self, data_dir: Path, *, service: str = "all", env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.service = service
        self.env = env or {}
        self.args = args or []
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TRACEHOUSE_LOG_LEVEL": "warning", **self.env}
        cmd = [
            sys.executable,
            "-m",
            "tracehouse",
            "serve",
            *([self.service] if self.service != "all" else []),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=timeout, what=f"server on {self.url} (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
        return httpx.get(f"{self.url}/ok", timeout=1.0).status_code == 200

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)  # type: ignore[arg-type]

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sdk(server: Server, call: Callable[[Client], Awaitable[T]]) -> T:
    """`call` with a Client of its own on an event loop of its own: the generated (v2) client's connections
    belong to the loop that opened them."""

    async def main() -> T:
        return await call(Client(api_url=server.url, api_key="unused"))

    return asyncio.run(main())


async def all_pages(first: Any) -> list[list[Any]]:
    """The items of every page, page by page, following the SDK's own `next_cursor` handling."""
    page = await first
    found = [page.items]
    while page.has_next_page():
        page = await page.get_next_page()
        found.append(page.items)
    return found


class MotoServer:
    """A real S3-protocol server (moto in server mode) on loopback."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: httpx.get(self.url, timeout=1.0).status_code < 500, timeout=30, what="moto server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _label(value: Any) -> str:
    return value if isinstance(value, str) else jsonutil.dumps_str(value)


def feedback_oracle(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Feedback stats per key (LangSmith's shape) computed in Python, to check the SQL against."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_key[item["key"]].append(item)
    out = {}
    for key, group in by_key.items():
        scores = [float(i["score"]) for i in group if i.get("score") is not None]
        out[key] = {
            "n": len(group),
            "avg": statistics.fmean(scores) if scores else None,
            "stdev": statistics.pstdev(scores) if scores else None,
            "min": min(scores) if scores else None,
            "max": max(scores) if scores else None,
            "errors": sum(bool(i.get("error")) for i in group),
            "values": dict(Counter(_label(i["value"]) for i in group if i.get("value") is not None)),
            "comment_count": sum(bool(i.get("comment")) for i in group),
            "comments": Counter(i["comment"] for i in group if i.get("comment")),
        }
    return out


def usage(turn: int) -> dict[str, Any]:
    """The model call of turn `turn` (1-based) of `thread_turn`: every number differs between turns, so sums tell
    them apart."""
    return {
        "input_tokens": 10 * turn,
        "output_tokens": 5 * turn,
        "total_tokens": 15 * turn,
        "input_cost": 0.001 * turn,
        "output_cost": 0.002 * turn,
        "total_cost": 0.003 * turn,
        "input_token_details": {"cache_read": 2 * turn, "audio": 0},
        "output_token_details": {"reasoning": turn},
        "input_cost_details": {"cache_read": 0.0001 * turn},
        "output_cost_details": {"reasoning": 0.0002 * turn},
    }


def thread_turn(
    client: Client,
    project: str,
    thread: str,
    start: datetime,
    latency: float,
    n: int,
    *,
    first_token: float | None = None,
    error: str | None = None,
) -> tuple[RunTree, RunTree]:
    """A root with one model call of `usage(n)`, both carrying the thread id, as a traced turn does: (root, model
    call). The model ends halfway through the turn, its first token `first_token` seconds after the start (none
    when None: it did not stream), and the root fails with `error` when given."""
    metadata = {"thread_id": thread}
    root = RunTree(
        name="turn",
        run_type="chain",
        inputs={"turn": n},
        project_name=project,
        ls_client=client,
        start_time=start,
        extra={"metadata": metadata},
    )
    root.post()
    model = root.create_child(
        name="model", run_type="llm", inputs={"prompt": n}, start_time=start, extra={"metadata": metadata}
    )
    model.post()
    tokens = (
        []
        if first_token is None
        else [{"name": "new_token", "time": (start + timedelta(seconds=first_token)).isoformat()}]
    )
    model.end(outputs={"usage_metadata": usage(n)}, end_time=start + timedelta(seconds=latency / 2), events=tokens)
    model.patch()
    root.end(outputs=None if error else {"answer": n}, error=error, end_time=start + timedelta(seconds=latency))
    root.patch()
    return root, model


def give_feedback(client: Client, items: list[dict[str, Any]]) -> None:
    """Each item's feedback on its `run` (the other members are `create_feedback`'s arguments), waited for until
    every item is stored."""
    for item in items:
        run = item["run"]
        given = {k: v for k, v in item.items() if k != "run"}
        project_id = project_id_for_name(DEFAULT_TENANT_ID, run.session_name)
        client.create_feedback(run.id, trace_id=run.trace_id, session_id=project_id, **given)
    run_ids = list({item["run"].id for item in items})
    wait_for(lambda: len(list(client.list_feedback(run_ids=run_ids))) == len(items), what="feedback stored")


def run_row(
    run_id: uuid.UUID, trace_id: uuid.UUID, parent: uuid.UUID | None, start: datetime, **values: Any
) -> list[Any]:
    """One `runs` row as the batcher writes it (UUIDs as text, times as DateTime64 ticks), for tests that write
    storage directly. `values` must name `tenant_id` and `session_id`, and override the other defaults by column
    name; they may give UUIDs and datetimes as such."""
    ancestors = [] if parent is None else ([trace_id] if parent == trace_id else [trace_id, parent])
    row: dict[str, Any] = {
        "id": run_id,
        "trace_id": trace_id,
        "parent_run_id": parent,
        "parent_run_ids": ancestors,
        "dotted_order": start.strftime("%Y%m%dT%H%M%S%fZ") + str(run_id),
        "is_root": parent is None,
        "name": "run",
        "run_type": "chain",
        "status": "success",
        "start_time": start,
        "end_time": None,
        "first_token_time": None,
        "error": None,
        "inputs": "{}",
        "outputs": None,
        "extra": "{}",
        "events": "[]",
        "serialized": None,
        "payload_refs": {},
        "attachments": {},
        "tags": [],
        "metadata": {},
        "inputs_kv": {},
        "outputs_kv": {},
        "thread_id": "",
        "reference_example_id": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "prompt_cost": None,
        "completion_cost": None,
        "total_cost": None,
        "prompt_token_details": "",
        "completion_token_details": "",
        "prompt_cost_details": "",
        "completion_cost_details": "",
        "ttl_days": 14,
        "version": 1,
        "is_deleted": 0,
        **values,
    }
    return [_as_written(row[c]) for c in RUN_COLUMNS]


def _as_written(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return ticks(value)
    if isinstance(value, list):
        return [_as_written(item) for item in value]
    return value


def query_app(service: QueryService, tenant_id: uuid.UUID) -> FastAPI:
    """The query service's routes in-process, every request as `tenant_id`, errors as the server answers them
    (for tests and benchmarks that need no server process)."""
    app = FastAPI()
    app.include_router(service.router)

    @app.middleware("http")
    async def tenant(request: Request, call_next: Any) -> Any:
        request.state.tenant = Tenant(tenant_id)
        return await call_next(request)

    errors.install(app)
    return app
