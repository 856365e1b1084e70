"""Query benchmark over >= 1,000,000 runs in one project (issue 4).

Rows are inserted straight into `runs` with clickhouse-connect's columnar insert (benchmarks may bypass ingest),
then each query shape is timed as an HTTP request to the query service's routes (in-process ASGI client: routing,
SQL building, execution and the JSON response body): (a) newest 100 roots, (b) metadata filters on a selective
value (~50 runs), on the value of the old benchmark (~500 runs) and on a common one (a third of the runs),
(c) search(), (d) a tree_filter, (e) a 1,000-run trace tree, (f) a run by id. Prints p50/p99 latency and what
ClickHouse read for one request of each shape (all its queries), and the EXPLAIN indexes=1 of its last `runs` query.

What was read comes from the engine's own counters (`system.events`: SelectedRows, SelectedBytes, SelectedMarks,
ReadCompressedBytes, minus what reading the counters costs): chDB has no `system.query_log`, and the query summary
clickhouse-connect builds for chDB reports the rows and bytes returned, not read. Garbage collection is tuned as
in the server (`tracehouse.tuning.tune_process`).

    .venv/bin/python -m tests.bench.query [--runs 1000000] [--repeat 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from query import QueryOptions, QueryService
from schemas import DEFAULT_TENANT_ID, jsonutil
from storage import Storage
from storage.run_queries import RunReader
from storage.runs import RUN_COLUMNS
from tests.support import query_app, run_row
from tracehouse.tuning import tune_process

TENANT = DEFAULT_TENANT_ID
WORDS = ["alpha", "beta", "gamma", "delta", "kappa", "lambda", "sigma", "omega", "river", "stone", "cloud", "paper"]
NAMES = [f"step_{i}" for i in range(20)]
TRACE_SIZE = 10
BIG_TRACE = 1000
RUNS_PER_USER = 50  # a user id is shared by ~50 runs: the selective metadata filter
# LLM runs carry a chat prompt of ~1.4 KB, about the ingest benchmark's payload size.
SYSTEM_PROMPT = "You are a helpful assistant for an insurance company. " * 25
EVENTS = ("SelectedRows", "SelectedBytes", "SelectedMarks", "ReadCompressedBytes")


class RecordingReader(RunReader):
    """Keeps the last SQL on `runs` and its parameters so the benchmark can EXPLAIN exactly what ran."""

    last: tuple[str, dict[str, Any]] = ("", {})

    def _query(self, sql: str, params: dict[str, Any]):  # type: ignore[override]
        if "FROM runs" in sql:
            self.last = (sql, params)
        return super()._query(sql, params)


def _dotted(t: datetime, run_id: uuid.UUID) -> str:
    return t.strftime("%Y%m%dT%H%M%S%fZ") + str(run_id)


def generate(n_runs: int, session_id: uuid.UUID, big_trace: dict[str, Any], seed: int = 7):
    """Yield column-oriented chunks: traces of TRACE_SIZE runs spread over 10 days, plus one BIG_TRACE trace."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    span = 10 * 86400
    n_traces = (n_runs - BIG_TRACE) // TRACE_SIZE
    chunk: dict[str, list[Any]] = {c: [] for c in RUN_COLUMNS}

    def add(row: list[Any]) -> None:
        for column, value in zip(RUN_COLUMNS, row, strict=True):
            chunk[column].append(value)

    def trace(size: int, start: datetime, t_index: int) -> uuid.UUID:
        root_id = uuid.uuid4()
        stack: list[tuple[uuid.UUID, str, list[uuid.UUID]]] = []
        for i in range(size):
            run_id = root_id if i == 0 else uuid.uuid4()
            t = start + timedelta(milliseconds=i * 10)
            if i == 0:
                parent, dotted, ancestors = None, _dotted(t, run_id), []
            else:
                parent_id, parent_dotted, parent_anc = stack[rng.randrange(len(stack))]
                parent, dotted, ancestors = (
                    parent_id,
                    parent_dotted + "." + _dotted(t, run_id),
                    [*parent_anc, parent_id],
                )
            stack.append((run_id, dotted, ancestors))
            words = " ".join(rng.choice(WORDS) for _ in range(6))
            if rng.random() < 0.0005:
                words += " zebra"
            metadata = {
                "env": rng.choice(["prod", "dev", "staging"]),
                "user": f"u{rng.randrange(5000)}",
                "customer": f"acme-{rng.randrange(2000)}",
                "user_id": f"user-{rng.randrange(max(1, n_runs // RUNS_PER_USER))}",
            }
            is_llm = i % 3 == 2
            if is_llm:
                messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": words}]
                inputs: dict[str, Any] = {"messages": messages}
                inputs_kv = {
                    "messages.0.role": "system",
                    "messages.0.content": SYSTEM_PROMPT[:256],
                    "messages.1.role": "user",
                    "messages.1.content": words,
                }
            else:
                inputs = {"question": words, "n": i}
                inputs_kv = {"question": words, "n": str(i)}
            outputs = {"answer": words[::-1]}
            add(
                run_row(
                    run_id,
                    root_id,
                    parent,
                    t,
                    tenant_id=TENANT,
                    session_id=session_id,
                    parent_run_ids=ancestors,
                    dotted_order=dotted,
                    name="rare_tool" if rng.random() < 0.0002 else ("agent" if i == 0 else rng.choice(NAMES)),
                    run_type="llm" if is_llm else ("chain" if i == 0 else "tool"),
                    status="error" if rng.random() < 0.02 else "success",
                    end_time=t + timedelta(milliseconds=rng.randrange(1, 5000)),
                    inputs=jsonutil.dumps_str(inputs),
                    outputs=jsonutil.dumps_str(outputs),
                    extra=jsonutil.dumps_str({"metadata": metadata}),
                    tags=[rng.choice(["a", "b", "c"])],
                    metadata=metadata,
                    inputs_kv=inputs_kv,
                    outputs_kv={"answer": words[::-1]},
                    thread_id=f"thread-{t_index % 20000}" if i == 0 else "",
                    prompt_tokens=100 if is_llm else 0,
                    completion_tokens=50 if is_llm else 0,
                    total_tokens=150 if is_llm else 0,
                    ttl_days=400,
                    version=time.time_ns(),
                )
            )
        return root_id

    for t_index in range(n_traces):
        start = now - timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(1_000_000))
        root = trace(TRACE_SIZE, start, t_index)
        if t_index == n_traces // 2:
            big_trace["id"] = trace(BIG_TRACE, start, t_index)
        big_trace.setdefault("any_run", root)
        if len(chunk["id"]) >= 100_000:
            yield chunk
            chunk = {c: [] for c in RUN_COLUMNS}
    yield chunk


def timed(fn, repeat: int) -> tuple[list[float], Any]:
    samples, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples, result


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def read_counters(client: Any) -> dict[str, int]:
    rows = client.query(
        "SELECT event, value FROM system.events WHERE event IN {e:Array(String)}", parameters={"e": list(EVENTS)}
    )
    found = dict(rows.result_rows)
    return {e: int(found.get(e, 0)) for e in EVENTS}


def what_was_read(client: Any, fn: Any) -> dict[str, int]:
    """Engine counters over one call of `fn`, less what reading the counters itself adds."""
    a, b = read_counters(client), read_counters(client)
    idle = {e: b[e] - a[e] for e in EVENTS}
    before = read_counters(client)
    fn()
    after = read_counters(client)
    return {e: max(0, after[e] - before[e] - idle[e]) for e in EVENTS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--keep", type=Path, help="data directory to reuse/keep (default: a temp dir, removed)")
    ap.add_argument("--only", help="comma-separated shape letters to run, e.g. b,e")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="th-bench-query-"))
    storage = Storage.open(f"chdb://{root}/ch", f"file://{root}/blobs")
    client = storage.clickhouse.client()
    session_id = uuid.UUID(int=0x1000)
    stack = contextlib.ExitStack()
    try:
        existing = client.query("SELECT count() FROM runs WHERE session_id = {s:UUID}", parameters={"s": session_id})
        if existing.result_rows[0][0] < args.runs:
            t0 = time.perf_counter()
            big: dict[str, Any] = {}
            for chunk in generate(args.runs, session_id, big):
                client.insert(
                    "runs", [chunk[c] for c in RUN_COLUMNS], column_names=list(RUN_COLUMNS), column_oriented=True
                )
            print(f"inserted in {time.perf_counter() - t0:.1f}s")
            client.command("CREATE TABLE IF NOT EXISTS bench_meta (k String, v UUID) ENGINE = MergeTree ORDER BY k")
            client.insert("bench_meta", [["big", big["id"]], ["any", big["any_run"]]], column_names=["k", "v"])
        meta = dict(client.query("SELECT k, v FROM bench_meta").result_rows)
        total, parts = client.query(
            "SELECT (SELECT count() FROM runs), (SELECT count() FROM system.parts WHERE table = 'runs' AND active)"
        ).result_rows[0]
        span = client.query(
            "SELECT min(start_time), max(start_time) FROM runs WHERE session_id = {s:UUID}",
            parameters={"s": session_id},
        ).result_rows[0]
        print(f"runs table: {total:,} rows in {parts} active parts; project {session_id}; start {span[0]} .. {span[1]}")

        recorder = RecordingReader(storage.clickhouse)
        service = QueryService(storage, QueryOptions(secret_key=b"bench"))
        service.runs.reader = recorder
        service.runs.search.reader = recorder
        app = query_app(service, TENANT)
        # One event loop and worker thread pool for the whole run, as under uvicorn: without the context, every
        # request would start a new loop and new worker threads, each opening its own ClickHouse client.
        http = stack.enter_context(TestClient(app))
        tune_process()  # as the server does after start-up: without it, full collections add ~40 ms to (e)'s p99

        def runs_query(**body: Any):
            def run() -> int:
                response = http.post("/runs/query", json={"session": [str(session_id)], "limit": 100, **body})
                response.raise_for_status()
                return len(jsonutil.loads(response.content)["runs"])

            return run

        def tree() -> int:
            response = http.get(f"/traces/{meta['big']}")
            response.raise_for_status()
            return jsonutil.loads(response.content)["run_count"]

        def by_id() -> int:
            response = http.get(f"/runs/{meta['any']}")
            response.raise_for_status()
            return len(jsonutil.loads(response.content)["child_run_ids"]) + 1

        def meta_filter(key: str, value: str):
            return runs_query(filter=f'and(eq(metadata_key, "{key}"), eq(metadata_value, "{value}"))')

        shapes = {
            "a": ("(a) newest 100 roots", runs_query(is_root=True)),
            "b": ("(b) metadata ~50 runs", meta_filter("user_id", "user-42")),
            "b2": ("(b2) metadata ~500 runs", meta_filter("customer", "acme-42")),
            "b3": ("(b3) metadata 1/3 runs", meta_filter("env", "prod")),
            "c": ("(c) search()", runs_query(filter='search("zebra")')),
            "d": ("(d) tree_filter", runs_query(is_root=True, tree_filter='eq(name, "rare_tool")')),
            "e": ("(e) 1,000-run trace tree", tree),
            "f": ("(f) run by id (+children)", by_id),
        }
        if args.only:
            wanted = args.only.split(",")
            shapes = {k: v for k, v in shapes.items() if k in wanted}
        print(f"\nrepeat {args.repeat}; reads = one request, all its queries (system.events)")
        print(
            f"{'shape':28} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'min':>7} {'rows':>5} "
            f"{'read_rows':>10} {'read_bytes':>12} {'marks':>6} {'compressed':>11}"
        )
        explains = {}
        for label, fn in shapes.values():
            fn()  # warm-up
            samples, count = timed(fn, args.repeat)
            read = what_was_read(client, fn)
            print(
                f"{label:28} {statistics.median(samples):8.1f} {pct(samples, 90):8.1f} {pct(samples, 99):8.1f} "
                f"{min(samples):7.1f} {count!s:>5} {read['SelectedRows']:>10,} {read['SelectedBytes']:>12,} "
                f"{read['SelectedMarks']:>6,} {read['ReadCompressedBytes']:>11,}"
            )
            sql, params = recorder.last
            explains[label] = client.query(f"EXPLAIN indexes = 1 {sql}", parameters={**params, "tenant": TENANT})
        for label, result in explains.items():
            lines = [r[0] for r in result.result_rows]
            keep = [ln for ln in lines if any(k in ln for k in ("Name:", "Parts:", "Granules:", "Condition", "Read"))]
            print(f"\nEXPLAIN indexes=1 {label}:\n  " + "\n  ".join(keep[:40]))
    finally:
        stack.close()
        storage.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
