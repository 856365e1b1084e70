"""How the batcher's state lookups scale with the number of runs stored.

Before writing a batch, the batcher looks up every run id it has not cached in `run_ids` (and `pending_runs`) to
merge onto a stored state; almost all ids are new. `run_ids` is sorted by (tenant_id, id), so a batch's thousands
of random ids select nearly every granule, and the lookup's cost grows with all runs stored, not with the batch.
This fills `run_ids` with synthetic rows (INSERT … SELECT, no ingest) in steps and times `RunStore.current` for a
batch of new ids at each size; the first step is the baseline measured in the same run.

    .venv/bin/python -m tests.bench.lookups [--sizes 60000,1000000,10000000,30000000] [--ids 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

from schemas import DEFAULT_TENANT_ID
from storage import Storage
from storage.runs import RunStore


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
            for size in sizes:
                while stored < size:  # in blocks of at most 5M rows, as parts the way inserts leave them
                    rows = min(5_000_000, size - stored)
                    client.command(
                        f"INSERT INTO run_ids SELECT '{DEFAULT_TENANT_ID}', generateUUIDv4(number), generateUUIDv4(), "
                        f"now64(6) - number, generateUUIDv4(), 1, 0 FROM numbers({rows})"
                    )
                    stored += rows
                parts = client.query("SELECT count() FROM system.parts WHERE table = 'run_ids' AND active")
                samples = []
                for _ in range(args.repeat):
                    ids = [str(uuid.uuid4()) for _ in range(args.ids)]
                    started = time.perf_counter()
                    store.current(DEFAULT_TENANT_ID, ids)
                    samples.append(time.perf_counter() - started)
                took = statistics.median(samples)
                baseline = baseline or took
                print(
                    f"run_ids {stored:>12,} rows in {parts.result_rows[0][0]:>2} parts: lookup of {args.ids:,} new ids "
                    f"{took * 1000:7.1f} ms = {took / args.ids * 1e6:5.1f} µs per run ({took / baseline:4.1f}x)"
                )
        finally:
            storage.close()


if __name__ == "__main__":
    main()
