"""Project-stats and feedback-stats latency over >= 1,000,000 runs and >= 200,000 feedback rows (issue 5).

Runs come from the query benchmark's generator (inserted straight into `runs`), feedback rows are inserted
into `feedback` in bulk; every timing goes through the same storage code the API uses. A plain FINAL count
over the same project is timed in the same run as the baseline.

    .venv/bin/python -m tests.bench.stats [--runs 1000000] [--feedback 200000] [--repeat 20] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import DEFAULT_TENANT_ID
from storage import Storage
from storage.feedback import COLUMNS as FEEDBACK_COLUMNS
from storage.runs import RUN_COLUMNS
from storage.stats import RunStats
from tests.bench.query import generate

TENANT = DEFAULT_TENANT_ID
PROJECT = uuid.UUID(int=0x2000)


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1] if len(samples) > 1 else samples[0]


def load(storage: Storage, runs: int, feedback: int) -> None:
    client = storage.clickhouse.client()
    have = client.query("SELECT count() FROM runs WHERE session_id = {p:UUID}", parameters={"p": PROJECT})
    if have.result_rows[0][0] >= runs:
        return
    t0 = time.perf_counter()
    run_ids: list[uuid.UUID] = []
    for chunk in generate(runs, PROJECT, {}):
        client.insert("runs", [chunk[c] for c in RUN_COLUMNS], column_names=list(RUN_COLUMNS), column_oriented=True)
        run_ids.extend(chunk["id"])
    rng = random.Random(11)
    now = datetime.now(UTC)
    rows = []
    for i in range(feedback):
        kind = i % 3
        score, value, comment = (
            (rng.random(), None, None)
            if kind == 0
            else (None, f'"{rng.choice(["good", "bad", "ok"])}"', None)
            if kind == 1
            else (float(rng.random() < 0.7), None, "why" if rng.random() < 0.1 else None)
        )
        rows.append(
            [
                TENANT,
                rng.choice(run_ids),
                ("quality", "label", "thumbs")[kind],
                uuid.uuid4(),
                None,
                PROJECT,
                score,
                value,
                comment,
                None,
                '{"type":"api"}',
                "api",
                None,
                None,
                False,
                None,
                None,
                None,
                now,
                now,
                time.time_ns(),
                0,
            ]
        )
    for start in range(0, len(rows), 50_000):
        client.insert("feedback", rows[start : start + 50_000], column_names=list(FEEDBACK_COLUMNS))
    print(f"inserted {runs:,} runs and {feedback:,} feedback rows in {time.perf_counter() - t0:.1f}s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--feedback", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--keep", type=Path, help="data directory to reuse/keep (default: a temp dir, removed)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="th-bench-stats-"))
    storage = Storage.open(f"chdb://{root}/ch", f"file://{root}/blobs")
    try:
        load(storage, args.runs, args.feedback)
        client = storage.clickhouse.client()
        stats = RunStats(storage.clickhouse)
        llm_runs = (
            "run_id IN (SELECT id FROM runs FINAL WHERE tenant_id = {tenant:UUID} AND session_id = {p:UUID} "
            "AND run_type = 'llm')"
        )
        shapes: dict[str, Callable[[], Any]] = {
            "baseline: count() FINAL of the project": lambda: client.query(
                "SELECT count() FROM runs FINAL WHERE tenant_id = {t:UUID} AND session_id = {p:UUID}",
                parameters={"t": TENANT, "p": PROJECT},
            ),
            "project run stats": lambda: stats.per_project(TENANT, [PROJECT]),
            "project feedback stats": lambda: storage.feedback.stats_for_projects(TENANT, [PROJECT]),
            "project run facets": lambda: stats.facets(TENANT, PROJECT),
            "feedback stats of filtered runs (llm)": lambda: storage.feedback.stats_by_key(
                TENANT, llm_runs, {"p": PROJECT}
            ),
            "run stats of filtered runs (llm)": lambda: stats.over(
                TENANT, "session_id = {p:UUID} AND run_type = 'llm'", {"p": PROJECT}, roots=False
            ),
        }
        counts = client.query("SELECT (SELECT count() FROM runs), (SELECT count() FROM feedback)").result_rows[0]
        print(f"runs: {counts[0]:,}  feedback: {counts[1]:,}")
        print(f"{'shape':42} {'p50 ms':>8} {'p99 ms':>8}")
        for name, fn in shapes.items():
            samples = timed(fn, args.repeat)
            print(f"{name:42} {pct(samples, 50):8.1f} {pct(samples, 99):8.1f}")
        result = stats.per_project(TENANT, [PROJECT])[PROJECT]
        print(f"check: run_count={result['run_count']:,} latency_p50={result['latency_p50']:.3f}s")
    finally:
        storage.close()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
