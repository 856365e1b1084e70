"""Feedback stats read while a filtered page's rows are read (`query.run_reads.FeedbackPrefetch`) are the stats of
the page's runs, whichever runs the prefetch was started for."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from query import QueryOptions, QueryService
from query.run_reads import FeedbackPrefetch
from storage import Storage
from storage.runs import RUN_COLUMNS
from tests.support import query_app, run_row

TENANT = uuid.UUID(int=0x7E59)
PROJECT = uuid.UUID(int=0x9004)
RUNS = [uuid.UUID(int=0x100 + i) for i in range(6)]
SCORED = {RUNS[1]: [1.0, 0.0], RUNS[4]: [0.5]}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryService]:
    root: Path = tmp_path_factory.mktemp("prefetch")
    storage = Storage.open(f"chdb://{root}/ch", f"file://{root}/blobs")
    start = datetime(2026, 11, 4, tzinfo=UTC)
    rows = [
        run_row(run_id, run_id, None, start + timedelta(seconds=i), tenant_id=TENANT, session_id=PROJECT,
                metadata={"team": "a" if i % 2 else "b"})
        for i, run_id in enumerate(RUNS)
    ]  # fmt: skip
    storage.clickhouse.client().insert("runs", rows, column_names=list(RUN_COLUMNS))
    scores = [(run, score) for run, scores in SCORED.items() for score in scores]
    storage.feedback.ingest(
        TENANT, [{"id": str(uuid.uuid4()), "run_id": str(run), "key": "q", "score": score} for run, score in scores]
    )
    service = QueryService(storage, QueryOptions(secret_key=b"test"))
    try:
        yield service
    finally:
        service.stop()
        storage.close()


def test_a_filtered_page_carries_the_stats_of_its_runs(service: QueryService) -> None:
    with TestClient(query_app(service, TENANT)) as http:
        body = {"session": [str(PROJECT)], "filter": 'eq(metadata_key, "team")'}  # a filter reads in two steps
        runs = http.post("/runs/query", json=body).json()["runs"]
    assert {r["id"] for r in runs} == {str(r) for r in RUNS}
    stats = {r["id"]: r["feedback_stats"] for r in runs}
    assert stats[str(RUNS[1])]["q"]["n"] == 2 and stats[str(RUNS[1])]["q"]["avg"] == 0.5
    assert stats[str(RUNS[4])]["q"]["n"] == 1
    assert all(stats[str(r)] == {} for r in RUNS if r not in SCORED)


def test_runs_the_prefetch_was_not_started_for_are_read_when_asked(service: QueryService) -> None:
    prefetch = FeedbackPrefetch(service.runs, TENANT)
    prefetch.start([RUNS[0], RUNS[1]])
    stats = prefetch.stats([RUNS[1], RUNS[4], RUNS[5]])
    assert stats == service.runs.feedback_stats(TENANT, [RUNS[1], RUNS[4], RUNS[5]])
    assert stats is not None and set(stats) == {str(RUNS[1]), str(RUNS[4])}
