"""Batcher drain rate: how fast one ingest process stores what its spool holds, with both cores free for it.

Under sustained load a pod stores at most what its batcher keeps up with (acks only fill the spool), so this is
the per-pod figure `docs/sizing.md` scales by. The spool is filled with SDK-shaped records (as the decode worker
encodes them, 100 runs each) before the batcher starts; the time until it is empty is measured, then the raw
ClickHouse insert of the same rows in the same run.

    .venv/bin/python -m tests.bench.drain [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

from ingest.pipeline import Pipeline, PipelineOptions
from ingest.workers import multipart_record
from schemas import DEFAULT_TENANT_ID
from storage import Storage
from tests.bench.ingest import BOUNDARY, raw_insert_rate, sdk_body
from tracehouse.tuning import tune_process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    tune_process()  # as the server does
    random.seed(7)
    records = [
        multipart_record(sdk_body()[0], "zstd", BOUNDARY, DEFAULT_TENANT_ID, 1 << 27)[0] for _ in range(args.requests)
    ]
    runs = args.requests * 100
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        storage = Storage.open(f"chdb://{root / 'clickhouse'}", f"file://{root / 'blobs'}")
        pipeline = Pipeline(storage, PipelineOptions(spool_dir=root / "spool"))

        async def fill() -> None:
            for record in records:
                await pipeline.spool.append(record)

        asyncio.run(fill())
        cpu_before, started = os.times(), time.perf_counter()
        pipeline.start()
        while pipeline.spool.depth_bytes() > 0:
            time.sleep(0.01)  # polling interval of the drain being measured
        elapsed, cpu_after = time.perf_counter() - started, os.times()
        cpu = cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
        pipeline.stop()
        storage.close()
        print(
            f"drained {runs:,} runs in {elapsed:.2f}s: {runs / elapsed:,.0f} runs/s, "
            f"{cpu / runs * 1e6:.0f} µs of CPU per run ({cpu / elapsed:.2f} cores busy)"
        )
        raw = raw_insert_rate(root)
        assert raw.stored == runs, f"{raw.stored} of {runs} runs stored"
        print(
            f"raw ClickHouse insert of the same rows (the faster way: {raw.way}, median): {raw.rate:,.0f} rows/s, "
            f"{raw.cpu:.1f} µs of CPU per row; drain = {runs / elapsed / raw.rate:.0%} of raw, its CPU per run "
            f"{cpu / runs * 1e6 / raw.cpu:.1f}x"
        )


if __name__ == "__main__":
    main()
