"""Graceful shutdown flushes the spool; requests have a deadline; logs can be structured; a whole-trace read is
bounded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from storage import Storage
from tests.support import Server, wait_for
from tracehouse.head_limit import MAX_HEAD_BYTES


def test_sigterm_flushes_everything_and_exits_zero(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"TRACEHOUSE_FLUSH_INTERVAL_MS": "1000"}).start()
    ids = [str(uuid.uuid4()) for _ in range(500)]
    runs = [{"id": i, "name": "s", "run_type": "chain", "session_name": "shutdown"} for i in ids]
    assert httpx.post(f"{server.url}/runs/batch", json={"post": runs}).status_code == 202
    assert server.stop() == 0, "SIGTERM is a clean exit"
    storage = Storage.open(f"chdb://{tmp_path / 'data' / 'clickhouse'}", f"file://{tmp_path / 'data' / 'blobs'}")
    try:
        stored = storage.clickhouse.client().query("SELECT count() FROM runs FINAL").result_rows[0][0]
    finally:
        storage.close()
    assert stored == len(ids), "acknowledged runs were flushed before exit, not left for the next start"


def test_slow_body_gets_408(tmp_path: Path) -> None:
    env = {"TRACEHOUSE_REQUEST_TIMEOUT_S": "1", "TRACEHOUSE_LOG_FORMAT": "json", "TRACEHOUSE_LOG_LEVEL": "info"}
    with Server(tmp_path / "data", env=env) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(
                b"POST /runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"name":'
            )
            started = time.monotonic()
            reply = conn.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
        assert time.monotonic() - started < 5
        assert httpx.get(f"{server.url}/ok").status_code == 200
    lines = [line for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    assert lines, "json logs"
    assert all("levelname" in json.loads(line) for line in lines)


def test_a_killed_decode_worker_is_replaced(tmp_path: Path) -> None:
    with Server(tmp_path / "data") as server:
        assert server.proc is not None
        children = subprocess.run(
            ["pgrep", "-P", str(server.proc.pid), "-f", "spawn_main"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert children, "a decode worker runs beside the server"
        for pid in children:
            os.kill(int(pid), signal.SIGKILL)
        body = {"post": [{"id": str(uuid.uuid4()), "name": "w", "run_type": "chain"}]}
        statuses = [httpx.post(f"{server.url}/runs/batch", json=body).status_code for _ in range(3)]
        assert statuses[0] in (202, 503) and statuses[-1] == 202, statuses


def test_an_oversized_request_head_gets_431_and_keep_alive_requests_still_work(tmp_path: Path) -> None:
    with Server(tmp_path / "data") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            # Just past the limit, so that the server has read everything when it answers and closes (unread
            # bytes would make the kernel reset the connection before the reply is read).
            head = b"GET /info HTTP/1.1\r\nHost: x\r\nX-Big: "
            conn.sendall(head + b"a" * (MAX_HEAD_BYTES + 1 - len(head)))
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
        assert json.loads(reply.partition(b"\r\n\r\n")[2])["status"] == 431
        # Bodies larger than the head limit, several per connection, are not counted as head.
        body = json.dumps({"post": [{"name": "b" * 1000, "run_type": "chain"} for _ in range(1500)]})
        with httpx.Client(base_url=server.url) as http:
            for _ in range(3):
                assert (
                    http.post("/runs/batch", content=body, headers={"content-type": "application/json"}).status_code
                    == 202
                )


def test_a_trace_larger_than_max_trace_runs_is_refused_but_pages_and_its_subtrees_read(tmp_path: Path) -> None:
    with Server(tmp_path / "data", env={"TRACEHOUSE_MAX_TRACE_RUNS": "3"}) as server:
        traces = {}
        for size in (3, 4):
            root = str(uuid.uuid4())
            runs = [{"id": root, "trace_id": root, "name": "r", "run_type": "chain", "session_name": "big"}]
            runs += [
                {**runs[0], "id": str(uuid.uuid4()), "parent_run_id": root, "name": "c", "run_type": "tool"}
                for _ in range(size - 1)
            ]
            assert httpx.post(f"{server.url}/runs/batch", json={"post": runs}).status_code == 202
            traces[size] = root
        small, big = traces[3], traces[4]
        wait_for(lambda: httpx.get(f"{server.url}/traces/{small}").json().get("run_count") == 3, what="small trace")
        paged = wait_for(
            lambda: len(r := httpx.post(f"{server.url}/runs/query", json={"trace": big}).json()["runs"]) == 4 and r,
            what="the big trace's runs, paged",
        )
        assert len(paged) == 4
        project = paged[0]["session_id"]
        for path, params in (
            (f"/traces/{big}", {}),
            (f"/runs/{big}/tree", {"include_payloads": "false"}),
            (f"/api/v2/traces/{big}/runs", {"project_id": project}),
        ):
            response = httpx.get(f"{server.url}{path}", params=params)
            assert response.status_code == 422, (path, response.text[:200])
            assert response.json()["detail"] == {"trace_id": big, "max_trace_runs": 3}, path
        assert httpx.get(f"{server.url}/api/v2/traces/{small}/runs", params={"project_id": project}).status_code == 200
        child = next(run["id"] for run in paged if run["id"] != big)  # a subtree is read alone, within the limit
        subtree = httpx.get(f"{server.url}/runs/{child}/tree").json()
        assert (subtree["run_count"], subtree["root"]["id"], subtree["root"]["child_runs"]) == (1, child, [])
