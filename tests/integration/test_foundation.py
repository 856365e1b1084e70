"""The service starts, answers /info at both prefixes as the SDK needs, and keeps data across restarts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import Server

INFO_KEYS = {
    "use_multipart_endpoint",
    "scale_up_qsize_trigger",
    "scale_up_nthreads_limit",
    "scale_down_nempty_trigger",
    "size_limit",
    "size_limit_bytes",
}


def _check_info(url: str) -> None:
    body = httpx.get(url).raise_for_status().json()
    assert set(body["batch_ingest_config"]) == INFO_KEYS
    assert body["instance_flags"]["zstd_compression_enabled"] is True
    assert tuple(map(int, body["version"].split("."))) >= (0, 8, 10)


def test_info_both_prefixes_and_persistence(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data").start()
    try:
        for prefix in ("", "/api/v1"):
            _check_info(f"{srv.url}{prefix}/info")
            assert httpx.get(f"{srv.url}{prefix}/ok").json() == {"ok": True}
        health = httpx.get(f"{srv.url}/health")
        assert health.status_code == 200 and health.json()["ok"] is True
        assert health.json()["IngestService"]["storage_ok"] is True
        assert health.json()["QueryService"]["ready"] is True
        assert "/info" in httpx.get(f"{srv.url}/openapi.json").json()["paths"]
        # Write through the storage layer of the running server's data dir is impossible while it runs
        # (chDB: one process per directory), so persistence is checked on what the server itself wrote:
        # the default project and the migrations, both visible after a restart.
        assert srv.stop() == 0
        srv.start()
        _check_info(f"{srv.url}/info")
    finally:
        srv.stop()
    from schemas import DEFAULT_TENANT_ID
    from storage import Storage

    storage = Storage.open(f"chdb://{tmp_path / 'data' / 'clickhouse'}", f"file://{tmp_path / 'data' / 'blobs'}")
    try:
        default = storage.projects.find_by_name(DEFAULT_TENANT_ID, "default")
        assert default is not None
        applied = storage.clickhouse.client().query("SELECT count() FROM schema_migrations FINAL").result_rows
        assert applied[0][0] >= 1
    finally:
        storage.close()


def test_invalid_setting_fails_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tracehouse", "serve", "--data-dir", str(tmp_path)],
        env={"TRACEHOUSE_BLOB_URL": "ftp://nope", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "TRACEHOUSE_BLOB_URL" in result.stderr


def test_migrate_command_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-m", "tracehouse", "migrate", "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert "migrations applied" in out.stdout


def test_metrics_expose_ingest_and_http(tmp_path: Path) -> None:
    with Server(tmp_path / "data") as srv:
        run = {"id": "0b0e7b8e-6c1a-4c37-9d1b-6a5a3f1d2e4f", "name": "m", "run_type": "chain"}
        assert httpx.post(f"{srv.url}/runs", json=run).status_code == 202
        httpx.get(f"{srv.url}/api/v1/info").raise_for_status()
        assert httpx.get(f"{srv.url}/runs/not-a-uuid").status_code == 422
        text = httpx.get(f"{srv.url}/metrics").text
        assert 'tracehouse_ingest_runs_total{source="langsmith"} 1.0' in text
        assert 'tracehouse_http_requests_total{method="GET",route="/info",status="200"} 1.0' in text
        assert 'route="/runs/{run_id}",status="422"' in text, "labels use route templates, not raw paths"
        assert "tracehouse_spool_bytes" in text and "tracehouse_flush_seconds_bucket" in text
