"""Ingest benchmark: SDK-shaped zstd multipart bodies (100 runs/request, ~1.5 KB payload per run) from
concurrent clients against a real server process; prints runs/s end to end (acked, and stored in ClickHouse: until
the server's metrics report an empty spool; also with the time to stop the server), the server's CPU per run by
part (decode workers, server Python threads, ClickHouse threads: steadier than rates on a shared machine), the
batcher's batches, ack latency p50/p99 at full and at half load, and the raw ClickHouse insert rate of the same
rows in the same run.

By default the load is sustained (3,000 requests, 300,000 runs at full load; ~3 minutes), which is what the ratio to
the raw insert is meant for: a short load ends with about a second of batches still to write, which its rate counts
in full, and a raw insert of few rows leaves most of its merges to after the round. On one host and day: 35% of raw
over 40,000 runs, where the raw insert took 16.8 µs of CPU per row; 58-72% over 300,000, where it took 43-50.

    .venv/bin/python -m tests.bench.ingest [--requests 3000] [--clients 4] [--text random|words]
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import random
import re
import resource
import statistics
import string
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import zstandard

from storage import Storage
from storage.runs import insert_settings, pack_rows, ticks
from tests.support import Server, wait_for

BOUNDARY = uuid.uuid4().hex


# Payload text (`--text`): random letters, where every word is unique, the worst case for the full-text index
# (`idx_search`); or words drawn by Zipf's law from a vocabulary of 5,000, nearer to natural language.
TEXT_KINDS = ("random", "words")
text_kind = TEXT_KINDS[0]
_VOCABULARY = ["".join(random.Random(i).choices(string.ascii_lowercase, k=2 + i % 8)) for i in range(5000)]
_ZIPF = list(itertools.accumulate(1 / rank for rank in range(1, len(_VOCABULARY) + 1)))


def _text(n: int) -> str:
    if text_kind == "words":
        return " ".join(random.choices(_VOCABULARY, cum_weights=_ZIPF, k=n // 4))[:n]
    return "".join(random.choices(string.ascii_letters + " ", k=n))


def sdk_body(runs: int = 100) -> tuple[bytes, int]:
    """One compressed multipart body the way the SDK's compressed path builds it: traces of 1 chain + 4 llm."""
    parts: list[bytes] = []
    raw = 0
    now = datetime.now(UTC)

    def part(name: str, data: bytes) -> None:
        nonlocal raw
        raw += len(data)
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\nContent-Type: application/json\r\n'
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )

    for _trace in range(runs // 5):
        root = uuid.uuid4()
        root_start = now
        root_seg = f"{root_start:%Y%m%dT%H%M%S%fZ}{root}"
        for i in range(5):
            run_id = root if i == 0 else uuid.uuid4()
            start = root_start + timedelta(microseconds=i)
            dotted = root_seg if i == 0 else f"{root_seg}.{start:%Y%m%dT%H%M%S%fZ}{run_id}"
            main = {
                "id": str(run_id),
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(seconds=1)).isoformat(),
                "dotted_order": dotted,
                "trace_id": str(root),
                "session_name": "bench",
                "tags": ["bench"],
                "name": "agent" if i == 0 else f"llm-{i}",
                "run_type": "chain" if i == 0 else "llm",
            }
            if i:
                main["parent_run_id"] = str(root)
            part(f"post.{run_id}", orjson.dumps(main))
            part(f"post.{run_id}.inputs", orjson.dumps({"messages": [{"role": "user", "content": _text(500)}]}))
            part(f"post.{run_id}.outputs", orjson.dumps({"generations": [{"text": _text(500)}]}))
            part(f"post.{run_id}.events", b"[]")
            extra = {
                "metadata": {
                    "ls_provider": "openai",
                    "ls_model_name": "gpt-x",
                    "user": _text(8),
                    "usage_metadata": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
                },
                "runtime": {"sdk": "langsmith-py", "sdk_version": "0.15.0"},
            }
            part(f"post.{run_id}.extra", orjson.dumps(extra))
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False) as writer:
        writer.write(body)
    return out.getvalue(), raw


def run_load(
    url: str,
    bodies: list[bytes],
    clients: int,
    rate: float | None = None,
    *,
    path: str = "/runs/multipart",
    headers: dict[str, str] | None = None,
) -> tuple[float, list[float]]:
    """Send every body once across `clients` threads; with `rate` (requests/s) the sends are paced. The default
    path and headers are the SDK's compressed multipart; other benchmarks pass their own."""
    headers = headers or {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Encoding": "zstd"}
    latencies: list[float] = []
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))
    address = urlsplit(url)
    cpu_before = self_cpu()
    started = time.perf_counter()

    def client() -> None:
        # http.client rather than httpx: the load generator shares the server's two cores, and httpx cost
        # 0.95 ms of CPU per request (~10 µs per run) against 0.26 (measured with the line printed below).
        http = HTTPConnection(address.hostname, address.port, timeout=60)
        try:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                if rate:
                    delay = started + index / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)  # pacing the load generator, not synchronisation
                t0 = time.perf_counter()
                http.request("POST", path, body=bodies[index], headers=headers)
                response = http.getresponse()
                text = response.read()
                elapsed = time.perf_counter() - t0
                assert response.status in (200, 202), text
                with lock:
                    latencies.append(elapsed)
        finally:
            http.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = self_cpu() - cpu_before
    print(f"load generator: {cpu / len(bodies) * 1e3:.2f} ms of CPU per request ({cpu / elapsed:.2f} cores)")
    return elapsed, latencies


def metric(text: str, name: str) -> float | None:
    """One unlabelled sample from the server's Prometheus text."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def flush_totals(url: str) -> tuple[int, float]:
    """(batches, seconds from staging to written summed over them) from the server's metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return int(metric(text, "tracehouse_flush_seconds_count") or 0), metric(text, "tracehouse_flush_seconds_sum") or 0.0


def until_stored(url: str, timeout: float = 120.0) -> float:
    """Seconds until the server reports an empty spool (every acknowledged record flushed to ClickHouse),
    polled from its metrics every 20 ms: end to end without the fixed cost of shutting the server down."""
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=10) as http:
        while time.perf_counter() - started < timeout:
            if metric(http.get("/metrics").text, "tracehouse_spool_bytes") == 0:
                return time.perf_counter() - started
            time.sleep(0.02)  # polling interval of a deadline-bounded wait
    raise TimeoutError("the spool did not drain")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def self_cpu() -> float:
    """CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    """CPU seconds of this process's ended children (a stopped server, with its decode workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ticks(stat_path: Path) -> int:
    """utime + stime of a /proc stat file, in clock ticks (the fields after the parenthesised name)."""
    fields = stat_path.read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def cpu_parts(pid: int) -> dict[str, float]:
    """CPU seconds a running server has used so far, by part (Linux /proc): its decode workers (its child
    processes); its Python threads (Python leaves OS threads named after the process); and the rest of the
    process, ClickHouse's own threads, exited ones included (through the process's total)."""
    tick = os.sysconf("SC_CLK_TCK")
    proc = Path(f"/proc/{pid}")
    name = (proc / "comm").read_text()
    python = children = 0
    for task in proc.glob("task/*"):
        try:
            if (task / "comm").read_text() == name:
                python += _ticks(task / "stat")
            children += sum(_ticks(Path(f"/proc/{child}/stat")) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread or child that ended meanwhile
    total = _ticks(proc / "stat")
    return {"decode workers": children / tick, "server Python": python / tick, "ClickHouse": (total - python) / tick}


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (Linux /proc: VmHWM, in kB)."""
    found = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(found.group(1)) / 1024 if found else float("nan")


def idle_server_cpu(data_dir: Path) -> float:
    """CPU seconds of starting and stopping a server that does nothing, to subtract from a loaded one's."""
    before = children_cpu()
    assert Server(data_dir, env={"TRACEHOUSE_LOG_LEVEL": "warning"}).start().stop() == 0
    return children_cpu() - before


def wire_types(storage: Storage, columns: Sequence[str]) -> list[str]:
    """`runs`' types of these columns, with UUIDs sent as their text: the driver's UUID encoder costs ~0.4 µs per
    value in Python, and ClickHouse casts canonical UUID text for a fraction of that. Naming the types also
    spares the driver its `DESCRIBE` before each insert."""
    described = {row[0]: row[1] for row in storage.clickhouse.client().query("DESCRIBE TABLE runs").result_rows}
    return [re.sub(r"\bUUID\b", "String", described[column]) for column in columns]


def stored_blocks(storage: Storage) -> tuple[list[list[tuple[Any, ...]]], dict[str, Any]]:
    """The rows stored in `runs`, as 10,000-row column blocks, and the arguments of the driver's columnar `insert`
    that send them fastest (`wire_types`) with the settings of ingest's inserts (`insert_settings`)."""
    client = storage.clickhouse.client()
    columns = [c for c in client.query("SELECT * FROM runs LIMIT 0").column_names if c != "inserted_at"]
    types = wire_types(storage, columns)
    selected = ", ".join(f"CAST({column} AS {type_})" for column, type_ in zip(columns, types, strict=True))
    rows = client.query(f"SELECT {selected} FROM runs").result_rows
    blocks = [list(zip(*rows[i : i + 10_000], strict=True)) for i in range(0, len(rows), 10_000)]
    sent = {
        "column_names": columns,
        "column_type_names": types,
        "column_oriented": True,
        "settings": insert_settings(storage.clickhouse),
    }
    return blocks, sent


_MERGING = "SELECT 1 FROM system.merges LIMIT 1"


@dataclass(frozen=True)
class RawInsert:
    rate: float  # rows/s, the median of the rounds of the faster way
    cpu: float  # µs of this process's CPU per row (ClickHouse's threads included), the median of the same rounds
    way: str  # which way that was (`raw_insert_rate`)
    stored: int  # runs in `runs`, for checking that every acknowledged run was stored


def raw_insert_rate(data_dir: Path, rounds: int = 3) -> RawInsert:
    """Insert the stored rows again into a fresh copy of `runs` each of the two fastest ways found from Python
    values, alternated: the driver's columnar insert (`stored_blocks`), and RowBinary packed as ingest packs it
    (`storage.runs.pack_rows`, in C) from the values as ingest builds them (times as ticks), which took 18.5-27.7 µs
    of CPU per row against 21.1-34.2 (8 rounds each, alternated). Each is timed from the values to the rows stored,
    and the faster is the ceiling for ingest. The median of `rounds` (each printed): one round's rate varied by a
    fifth between runs of this benchmark, which is all the ratio to it would show otherwise. Each round starts once
    no merge runs (the stored tables' are stopped): a round that overlapped merges left by the round before ran at
    33,000 rows/s against 45,000. Its CPU per row includes the merges of its own parts that run meanwhile, as the
    server's CPU per run does."""
    storage = Storage.open(f"chdb://{data_dir / 'clickhouse'}", f"file://{data_dir / 'blobs'}")
    try:
        client = storage.clickhouse.client()
        # The stored tables' merges would compete with the rounds (their parts are as the server left them).
        for (table,) in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree'"
        ).result_rows:
            client.command(f"SYSTEM STOP MERGES {table}")
        blocks, sent = stored_blocks(storage)
        rows = sum(len(block[0]) for block in blocks)
        row_blocks = [[_as_ingest_builds(row) for row in zip(*block, strict=True)] for block in blocks]
        columns = tuple(sent["column_names"])

        def driver() -> None:
            for block in blocks:
                client.insert("runs_raw", block, **sent)

        def rowbinary() -> None:
            for block in row_blocks:
                packed = b"".join(pack_rows(block, columns))
                client.raw_insert("runs_raw", columns, insert_block=packed, fmt="RowBinary", settings=sent["settings"])

        inserts = {"driver": driver, "rowbinary": rowbinary}
        measured: dict[str, list[tuple[float, float]]] = {way: [] for way in inserts}
        for round_ in range(rounds):
            for way, insert in list(inserts.items())[:: 1 if round_ % 2 == 0 else -1]:
                client.command("DROP TABLE IF EXISTS runs_raw")
                client.command("CREATE TABLE runs_raw AS runs")
                wait_for(lambda: not client.query(_MERGING).result_rows, timeout=120, what="merges to end")
                cpu_before, started = self_cpu(), time.perf_counter()
                insert()
                measured[way].append((rows / (time.perf_counter() - started), (self_cpu() - cpu_before) / rows * 1e6))
        client.command("DROP TABLE runs_raw")
        for way, results in measured.items():
            print(
                f"raw insert rounds, {way}: "
                + ", ".join(f"{r:,.0f} rows/s ({c:.1f} µs of CPU per row)" for r, c in results)
            )
        medians = {
            way: (statistics.median(r for r, _ in res), statistics.median(c for _, c in res))
            for way, res in measured.items()
        }
        way = max(medians, key=lambda w: medians[w][0])
        count = client.query("SELECT count() FROM runs FINAL").result_rows[0][0]
        return RawInsert(*medians[way], way, count)
    finally:
        storage.close()


def _as_ingest_builds(row: tuple[Any, ...]) -> list[Any]:
    """A stored row's values as ingest's rows carry them: times as ticks (the driver reads them as datetimes)."""
    return [ticks(v.replace(tzinfo=UTC)) if isinstance(v, datetime) else v for v in row]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--text", choices=TEXT_KINDS, default=TEXT_KINDS[0], help="payload text (see TEXT_KINDS)")
    args = parser.parse_args()
    global text_kind
    text_kind = args.text
    random.seed(7)
    bodies = [sdk_body() for _ in range(args.requests)]
    raw_bytes = sum(raw for _, raw in bodies) / (args.requests * 100)
    print(
        f"{args.requests} requests x 100 runs, {raw_bytes:.0f} B payload/run, "
        f"{sum(len(b) for b, _ in bodies) / args.requests / 1024:.0f} KiB/request compressed"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        idle_cpu = idle_server_cpu(Path(tmp) / "idle")
        server = Server(data_dir, env={"TRACEHOUSE_LOG_LEVEL": "warning"})
        cpu_before = children_cpu()
        server.start()
        assert server.proc is not None
        parts_before = cpu_parts(server.proc.pid)
        # Full load: every client sends as fast as it is acknowledged.
        load_time, latencies = run_load(server.url, [b for b, _ in bodies], args.clients)
        stored_after = until_stored(server.url)
        parts = {k: v - parts_before[k] for k, v in cpu_parts(server.proc.pid).items()}
        batches, flushing = flush_totals(server.url)
        peak_rss = peak_rss_mib(server.proc.pid)
        t0 = time.perf_counter()
        assert server.stop() == 0
        stop_time = time.perf_counter() - t0
        runs = args.requests * 100
        cpu = children_cpu() - cpu_before - idle_cpu
        print(
            f"full load: {runs / load_time:,.0f} runs/s acknowledged, ack p50 {pct(latencies, 50):.1f} ms "
            f"p99 {pct(latencies, 99):.1f} ms; end to end (acked and stored, {stored_after:.1f}s after the last ack): "
            f"{runs / (load_time + stored_after):,.0f} runs/s, incl. stopping the server ({stop_time:.1f}s): "
            f"{runs / (load_time + stored_after + stop_time):,.0f} runs/s; "
            f"server CPU {cpu / runs * 1e6:.0f} µs per run (all its threads and processes, start-up excluded: "
            "steadier than rates on a shared machine)"
        )
        print(
            "of which, from the start of the load until stored: "
            + ", ".join(f"{part} {seconds / runs * 1e6:.0f} µs" for part, seconds in parts.items())
            + " per run"
        )
        print(
            f"batcher: {batches} batches, {flushing:.1f}s from staging to written, summed over batches that overlap "
            f"(one is staged while the one before is written), in {load_time + stored_after:.1f}s; "
            f"server peak RSS {peak_rss:,.0f} MiB (decode workers excluded)"
        )
        ack_rate = runs / load_time
        # Half load, paced, on fresh bodies.
        server.start()
        half_bodies = [sdk_body()[0] for _ in range(args.requests // 2)]
        _, half_latencies = run_load(server.url, half_bodies, args.clients, rate=ack_rate / 200)
        assert server.stop() == 0
        print(
            f"half load ({ack_rate / 2:,.0f} runs/s): ack p50 {pct(half_latencies, 50):.1f} ms "
            f"p99 {pct(half_latencies, 99):.1f} ms"
        )
        raw = raw_insert_rate(data_dir)
        expected = runs + len(half_bodies) * 100
        print(f"stored runs: {raw.stored:,} of {expected:,} acknowledged")
        print(
            f"raw ClickHouse insert of the same rows (10k-row batches, the faster way: {raw.way}, median): "
            f"{raw.rate:,.0f} rows/s, "
            f"{raw.cpu:.1f} µs of CPU per row; end-to-end ingest (acked and stored) = "
            f"{runs / (load_time + stored_after) / raw.rate:.0%} of raw; its CPU per run = "
            f"{cpu / runs * 1e6 / raw.cpu:.1f}x the raw insert's per row"
        )


if __name__ == "__main__":
    main()
