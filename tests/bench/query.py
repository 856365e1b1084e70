"""Query benchmark over >= 1,000,000 runs in one project (issue 4).

Rows are inserted straight into `runs` with clickhouse-connect's columnar insert (benchmarks may bypass ingest),
then each of the six query shapes is timed through the query service's own code path (SQL building, execution,
JSON serialisation): (a) newest 100 roots, (b) a metadata filter, (c) search(), (d) a tree_filter, (e) a
1,000-run trace tree, (f) a run by id. Prints p50/p99 latency, the rows/bytes ClickHouse read for the main query
of each shape, and the EXPLAIN indexes=1 of that query.

    .venv/bin/python -m tests.bench.query [--runs 1000000] [--repeat 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from query.run_reads import RunReads
from query.run_search import RunQuery
from query.trees import build_tree
from schemas import DEFAULT_TENANT_ID, jsonutil
from storage import Storage
from storage.run_queries import META_COLUMNS, PAYLOAD_COLUMNS, RunReader
from storage.runs import RUN_COLUMNS

TENANT = DEFAULT_TENANT_ID
WORDS = ["alpha", "beta", "gamma", "delta", "kappa", "lambda", "sigma", "omega", "river", "stone", "cloud", "paper"]
NAMES = [f"step_{i}" for i in range(20)]
TRACE_SIZE = 10
BIG_TRACE = 1000


class RecordingReader(RunReader):
    """Keeps the last SQL and its parameters so the benchmark can EXPLAIN exactly what ran."""

    last: tuple[str, dict[str, Any]] = ("", {})

    def _query(self, sql: str, params: dict[str, Any]):  # type: ignore[override]
        if "FROM runs FINAL" in sql:
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

    def add(row: dict[str, Any]) -> None:
        for c in RUN_COLUMNS:
            chunk[c].append(row[c])

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
            }
            inputs = {"question": words, "n": i}
            outputs = {"answer": words[::-1]}
            is_llm = i % 3 == 2
            add(
                {
                    "tenant_id": TENANT,
                    "session_id": session_id,
                    "id": run_id,
                    "trace_id": root_id,
                    "parent_run_id": parent,
                    "parent_run_ids": ancestors,
                    "dotted_order": dotted,
                    "is_root": i == 0,
                    "name": "rare_tool" if rng.random() < 0.0002 else ("agent" if i == 0 else rng.choice(NAMES)),
                    "run_type": "llm" if is_llm else ("chain" if i == 0 else "tool"),
                    "status": "error" if rng.random() < 0.02 else "success",
                    "start_time": t,
                    "end_time": t + timedelta(milliseconds=rng.randrange(1, 5000)),
                    "first_token_time": None,
                    "error": None,
                    "inputs": jsonutil.dumps_str(inputs),
                    "outputs": jsonutil.dumps_str(outputs),
                    "extra": jsonutil.dumps_str({"metadata": metadata}),
                    "events": "[]",
                    "serialized": None,
                    "payload_refs": {},
                    "attachments": {},
                    "tags": [rng.choice(["a", "b", "c"])],
                    "metadata": metadata,
                    "inputs_kv": {"question": words, "n": str(i)},
                    "outputs_kv": {"answer": words[::-1]},
                    "thread_id": f"thread-{t_index % 20000}" if i == 0 else "",
                    "reference_example_id": None,
                    "prompt_tokens": 100 if is_llm else 0,
                    "completion_tokens": 50 if is_llm else 0,
                    "total_tokens": 150 if is_llm else 0,
                    "prompt_cost": None,
                    "completion_cost": None,
                    "total_cost": None,
                    "prompt_token_details": "",
                    "completion_token_details": "",
                    "prompt_cost_details": "",
                    "completion_cost_details": "",
                    "ttl_days": 400,
                    "version": time.time_ns(),
                    "is_deleted": 0,
                }
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--keep", type=Path, help="data directory to reuse/keep (default: a temp dir, removed)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="th-bench-query-"))
    storage = Storage.open(f"chdb://{root}/ch", f"file://{root}/blobs")
    client = storage.clickhouse.client()
    session_id = uuid.UUID(int=0x1000)
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
        print(f"runs table: {total:,} rows in {parts} active parts; project {session_id}")

        reads = RunReads(storage, b"bench")
        reader = RecordingReader(storage.clickhouse)
        reads.reader = reader
        reads.search.reader = reader

        def runs_query(**kw: Any):
            def run() -> Any:
                q = RunQuery(session=[session_id], **kw)
                page = reads.search.page(TENANT, q)
                return len(reads.to_json(TENANT, page.rows, payloads=q.payloads))

            return run

        def tree() -> Any:
            where, params = reader.trace_scope(TENANT, meta["big"])
            rows, _ = reader.select(
                TENANT, where=where, params=params, columns=META_COLUMNS + PAYLOAD_COLUMNS, order_by="dotted_order, id"
            )
            build_tree(reads.to_json(TENANT, rows))
            return len(rows)

        def by_id() -> Any:
            return int(reads.get_row(TENANT, meta["any"]) is not None)

        shapes = {
            "(a) newest 100 roots": runs_query(is_root=True, limit=100),
            "(b) metadata filter": runs_query(
                filter='and(eq(metadata_key, "customer"), eq(metadata_value, "acme-42"))', limit=100
            ),
            "(c) search()": runs_query(filter='search("zebra")', limit=100),
            "(d) tree_filter": runs_query(is_root=True, tree_filter='eq(name, "rare_tool")', limit=100),
            "(e) 1,000-run trace tree": tree,
            "(f) run by id": by_id,
        }
        print(f"\n{'shape':28} {'p50 ms':>8} {'p99 ms':>8} {'rows':>6} {'read_rows':>10} {'read_bytes':>12}")
        explains = {}
        for label, fn in shapes.items():
            fn()  # warm-up
            samples, count = timed(fn, args.repeat)
            sql, params = reader.last
            summary = client.query(sql, parameters={**params, "tenant": TENANT}).summary
            rows_read, bytes_read = int(summary.get("read_rows", 0)), int(summary.get("read_bytes", 0))
            print(
                f"{label:28} {statistics.median(samples):8.1f} {pct(samples, 99):8.1f} {count!s:>6} "
                f"{rows_read:>10,} {bytes_read:>12,}"
            )
            explains[label] = client.query(f"EXPLAIN indexes = 1 {sql}", parameters={**params, "tenant": TENANT})
        for label, result in explains.items():
            lines = [r[0] for r in result.result_rows]
            keep = [ln for ln in lines if any(k in ln for k in ("Name:", "Keys", "Parts:", "Granules:", "Condition"))]
            print(f"\nEXPLAIN indexes=1 {label}:\n  " + "\n  ".join(keep[:40]))
    finally:
        storage.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
