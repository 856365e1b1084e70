"""S3 outage: ingestion keeps acknowledging into the bounded spool, answers 503 + Retry-After when it is full,
and flushes everything once S3 is back."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import boto3
import httpx

from tests.support import S3_ENV, MotoServer, Server, wait_for


def _post(url: str, n: int) -> tuple[list[str], httpx.Response]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    runs = [
        {
            "id": i,
            "name": "o",
            "run_type": "chain",
            "inputs": {"pad": "p" * 2000},
            "end_time": "2026-01-01T00:00:00Z",
            "start_time": "2026-01-01T00:00:00Z",
            "session_name": "outage",
        }
        for i in ids
    ]
    return ids, httpx.post(f"{url}/runs/batch", json={"post": runs}, timeout=30)


def test_s3_outage_is_survived_without_loss(tmp_path: Path) -> None:
    moto = MotoServer().start()
    bucket = "outage"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.url,
        **{k.lower(): v for k, v in S3_ENV.items() if k != "AWS_DEFAULT_REGION"},
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    server = Server(
        tmp_path / "data",
        env={
            **S3_ENV,
            "TRACEHOUSE_BLOB_URL": f"s3://{bucket}/th",
            "TRACEHOUSE_S3_ENDPOINT_URL": moto.url,
            "TRACEHOUSE_BLOB_OFFLOAD_BYTES": "100",
            "TRACEHOUSE_SPOOL_MAX_BYTES": str(1024 * 1024),
        },
    ).start()
    try:
        ids, response = _post(server.url, 10)
        assert response.status_code == 202
        wait_for(lambda: httpx.get(f"{server.url}/runs/{ids[0]}").status_code == 200, what="first flush")

        moto.stop()
        outage_started = time.monotonic()
        acked: list[str] = []
        rejected = None
        for _ in range(200):
            batch, response = _post(server.url, 20)
            if response.status_code == 202:
                acked.extend(batch)
                continue
            rejected = response
            break
        assert acked, "writes are acknowledged into the spool while S3 is down"
        assert rejected is not None and rejected.status_code == 503, "a full spool answers 503"
        assert int(rejected.headers["Retry-After"]) >= 1 and "retry" in rejected.json()["error"]
        assert httpx.get(f"{server.url}/runs/{acked[-1]}").status_code == 404, "not flushed during the outage"

        moto = MotoServer()
        moto.port = int(s3.meta.endpoint_url.rsplit(":", 1)[1])
        moto.start()
        s3.create_bucket(Bucket=bucket)  # moto keeps no state across restarts: the "same" S3 comes back empty
        wait_for(
            lambda: httpx.get(f"{server.url}/runs/{acked[-1]}").status_code == 200,
            timeout=60,
            what="flush after S3 returned",
        )
        outage = time.monotonic() - outage_started
        for start in range(0, len(acked), 100):
            chunk = acked[start : start + 100]
            found = httpx.post(f"{server.url}/runs/query", json={"id": chunk, "limit": 100}).json()["runs"]
            assert {r["id"] for r in found} == set(chunk), "every acknowledged run was stored"
        for run_id in acked[:: max(1, len(acked) // 40)] + acked[-1:]:
            run = httpx.get(f"{server.url}/runs/{run_id}").json()
            assert run["inputs"] == {"pad": "p" * 2000}, "offloaded payloads were written once S3 returned"
        ids, response = _post(server.url, 5)
        assert response.status_code == 202
        print(f"\nS3 outage of {outage:.1f}s: {len(acked)} runs acknowledged during it, 0 lost")
    finally:
        server.stop()
        moto.stop()
