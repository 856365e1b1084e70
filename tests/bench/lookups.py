"""How the batcher's state lookups scale with the number of runs stored.

Before writing a batch, the batcher looks up every run id it has not cached, to merge onto a stored state; almost
all ids are new. By id, in `run_ids` (sorted by (tenant_id, id)), a batch's thousands of random ids select nearly
every granule, so that lookup grows with all runs stored; by start time, in `runs_by_start` (sorted by
(tenant_id, start_time, id)), it reads the seconds around the batch's start times. This fills both tables with
synthetic rows (INSERT … SELECT, no ingest; runs started 10,000 per second) in steps and times
`RunStore.current` for a batch of new ids that started in the newest second of them, both ways, at each size; the first
step is the baseline measured in the same run.

    .venv/bin/python -m tests.bench.lookups [--sizes 60000,1000000,10000000,30000000] [--ids 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from schemas import DEFAULT_TENANT_ID
from storage import Storage
from storage.runs import RunStore

COLUMNS = "tenant_id, id, session_id, start_time, trace_id, version, is_deleted"  # of the SELECT below


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="60000,1000000,10000000,30000000", help="run_ids sizes to measure at")
    parser.add_argument("--ids", type=int, default=5_000, help="ids per lookup (a batch of that many runs)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        storage = Storage.open(f"chdb://{tmp}/ch", f"file://{tmp}/blobs")
        try:
            store = RunStore(storage.clickhouse)
            client = storage.clickhouse.client()
            stored = 0
            baseline = None
            newest = datetime.now(UTC)  # the newest synthetic run's start; the batch's runs start in its last second
            for size in sizes:
                while stored < size:  # in blocks of at most 5M rows, as parts the way inserts leave them
                    rows = min(5_000_000, size - stored)
                    for table in ("run_ids", "runs_by_start"):
                        client.command(
                            f"INSERT INTO {table} ({COLUMNS}) SELECT '{DEFAULT_TENANT_ID}', "
                            f"generateUUIDv4(number), generateUUIDv4(), "
                            f"toDateTime64('{newest:%Y-%m-%d %H:%M:%S.%f}', 6, 'UTC') "
                            f"- toIntervalMicrosecond((number + {stored}) * 100), generateUUIDv4(), 1, 0 "
                            f"FROM numbers({rows})"
                        )
                    stored += rows
                parts = client.query("SELECT count() FROM system.parts WHERE table = 'run_ids' AND active")
                took = {}
                for way in ("by id", "by start"):
                    samples = []
                    for _ in range(args.repeat):
                        ids = [str(uuid.uuid4()) for _ in range(args.ids)]
                        starts = {i: newest - timedelta(microseconds=n * 200) for n, i in enumerate(ids)}
                        started = time.perf_counter()
                        store.current(DEFAULT_TENANT_ID, ids, starts if way == "by start" else None)
                        samples.append(time.perf_counter() - started)
                    took[way] = statistics.median(samples)
                baseline = baseline or took
                print(
                    f"{stored:>12,} runs ({parts.result_rows[0][0]:>2} parts in run_ids), {args.ids:,} new ids: "
                    + ", ".join(
                        f"{way} {t * 1000:6.1f} ms = {t / args.ids * 1e6:5.1f} µs/run ({t / baseline[way]:4.1f}x)"
                        for way, t in took.items()
                    )
                )
        finally:
            storage.close()


if __name__ == "__main__":
    main()
