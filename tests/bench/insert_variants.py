"""What ClickHouse spends on the same rows under variants of `runs`: its codecs and its insert settings.

A real server first stores OTLP spans shaped as tests/bench/otlp.py sends them. Then, in this process, those rows
are inserted again (10,000-row blocks, columns sent as ingest sends them) into a fresh copy of `runs` per variant,
and the copy is merged into one part. Prints, per row: the inserts' wall time, and the CPU of inserts plus merges
(this process's, which is the embedded ClickHouse's). Variants alternate across rounds, since the host is noisy:

* `ingest`: the table and insert settings as they are;
* `indexes-at-insert`: the text indexes built by each insert (no `storage.runs.insert_settings`);
* `zstd3`: payload columns at ZSTD(3), as before migration 0090;
* `lz4`: payload columns at LZ4.

    .venv/bin/python -m tests.bench.insert_variants [--requests 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from storage import Storage
from tests.bench.ingest import run_load, self_cpu, stored_blocks, until_stored
from tests.bench.otlp import PROJECT, otlp_body
from tests.support import Server

VARIANTS = ("ingest", "indexes-at-insert", "zstd3", "lz4")
_PAYLOAD_CODEC = "CODEC(ZSTD(1))"  # migration 0090's


def _ddl(runs_ddl: str, table: str, variant: str) -> str:
    ddl = re.sub(r"CREATE TABLE \S+", f"CREATE TABLE {table}", runs_ddl, count=1)
    if variant == "zstd3":
        return ddl.replace(_PAYLOAD_CODEC, "CODEC(ZSTD(3))")
    if variant == "lz4":
        return ddl.replace(_PAYLOAD_CODEC, "CODEC(LZ4)")
    return ddl


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000, help="OTLP requests of 100 spans stored first")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    random.seed(7)
    bodies = [gzip.compress(otlp_body(), 6) for _ in range(args.requests)]
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "Langsmith-Project": PROJECT}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        server = Server(data_dir, env={"TRACEHOUSE_LOG_LEVEL": "warning"}).start()
        run_load(server.url, bodies, 4, path="/otel/v1/traces", headers=headers)
        until_stored(server.url)
        assert server.stop() == 0
        storage = Storage.open(f"chdb://{data_dir / 'clickhouse'}", f"file://{data_dir / 'blobs'}")
        try:
            client = storage.clickhouse.client()
            runs_ddl = client.query("SHOW CREATE TABLE runs").result_rows[0][0]
            assert _PAYLOAD_CODEC in runs_ddl, "the payload codec changed: update the variants"
            blocks, sent = stored_blocks(storage)
            results: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
            for round_ in range(args.rounds):
                for variant in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
                    table = f"runs_variant_{round_}"
                    client.command(_ddl(runs_ddl, table, variant))
                    settings = {} if variant == "indexes-at-insert" else sent["settings"]
                    cpu, started = self_cpu(), time.perf_counter()
                    for block in blocks:
                        client.insert(table, block, **{**sent, "settings": settings})
                    inserting = time.perf_counter() - started
                    client.command(f"OPTIMIZE TABLE {table} FINAL")
                    size = client.query(
                        "SELECT sum(data_compressed_bytes) FROM system.parts WHERE active AND table = {t:String}",
                        parameters={"t": table},
                    ).result_rows[0][0]
                    results[variant].append((inserting, self_cpu() - cpu, size))
                    client.command(f"DROP TABLE {table} SYNC")
        finally:
            storage.close()
    count = sum(len(block[0]) for block in blocks)
    print(f"{count:,} OTLP spans, {args.rounds} rounds, figures per row, each round's:")
    for variant in VARIANTS:
        runs = results[variant]
        walls = ", ".join(f"{wall / count * 1e6:.1f}" for wall, _, _ in runs)
        cpus = ", ".join(f"{cpu / count * 1e6:.1f}" for _, cpu, _ in runs)
        print(
            f"{variant:18} inserting {walls} µs; inserts and merges {cpus} µs of CPU; "
            f"{runs[-1][2] / count:,.0f} B stored"
        )


if __name__ == "__main__":
    main()
