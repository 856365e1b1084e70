"""Stats SQL against a Python oracle, and the retention upgrade queue, over rows written straight into an
in-process chDB (the row format the ingest batcher writes). One storage per module, closed at its end."""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.projects import Project
from storage import Storage
from storage.feedback import FeedbackRepository
from storage.retention import Retention
from storage.runs import RUN_COLUMNS
from storage.stats import RunStats
from tests import support
from tests.support import feedback_oracle, wait_for

TENANT = uuid.UUID(int=0x5EED)
SHORT, LONG = 14, 400


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    root: Path = tmp_path_factory.mktemp("stats")
    opened = Storage.open(f"chdb://{root}/ch", f"file://{root}/blobs", short_ttl_days=SHORT, long_ttl_days=LONG)
    yield opened
    opened.close()


def run_row(session: uuid.UUID, run_id: uuid.UUID, trace_id: uuid.UUID, start: datetime, **values: Any) -> list[Any]:
    """A root (`run_id == trace_id`) or a child of the root, in `session`."""
    parent = None if run_id == trace_id else trace_id
    return support.run_row(
        run_id, trace_id, parent, start, tenant_id=TENANT, session_id=session, ttl_days=SHORT, **values
    )


def insert_runs(storage: Storage, rows: list[list[Any]]) -> None:
    storage.clickhouse.client().insert("runs", rows, column_names=list(RUN_COLUMNS))


# -- the generated dataset ----------------------------------------------------------------------------------


def generate(rng: random.Random, projects: list[uuid.UUID]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Runs (as dicts of the columns the oracle needs) and SDK feedback dicts: numeric, boolean and categorical
    feedback, JSON values that are not strings, several feedbacks of one key per run, comments, errors."""
    runs, feedback = [], []
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for p_index, project in enumerate(projects):
        for t in range(60 + 20 * p_index):
            trace = uuid.uuid4()
            start = base + timedelta(minutes=t, seconds=p_index)
            for r in range(1 + rng.randrange(3)):
                run_id = trace if r == 0 else uuid.uuid4()
                ended = rng.random() < 0.9
                streamed = rng.random() < 0.4
                tokens = rng.randrange(0, 500) if r else 0
                runs.append(
                    {
                        "session": project,
                        "id": run_id,
                        "trace": trace,
                        "is_root": r == 0,
                        "start": start,
                        "end": start + timedelta(milliseconds=rng.randrange(1, 5000)) if ended else None,
                        "first_token": start + timedelta(milliseconds=rng.randrange(1, 900)) if streamed else None,
                        "error": "boom" if rng.random() < 0.15 else None,
                        "run_type": "llm" if r else "chain",
                        "name": rng.choice(["plan", "answer", "search"]),
                        "tags": rng.sample(["a", "b", "c"], rng.randrange(3)),
                        "tokens": (tokens // 3, tokens - tokens // 3, tokens),
                        "cost": tokens / 1000 if r and rng.random() < 0.7 else None,
                    }
                )
                for _ in range(rng.choice([0, 0, 1, 2, 4])):
                    kind = rng.random()
                    item: dict[str, Any] = {"id": str(uuid.uuid4()), "run_id": str(run_id)}
                    if kind < 0.35:
                        item.update(key="quality", score=rng.choice([0, 0.25, 0.5, 1, 0.7]))
                    elif kind < 0.5:
                        item.update(key="thumbs", score=rng.choice([True, False]))
                    elif kind < 0.85:
                        item.update(key="label", value=rng.choice(["good", "bad", "meh"]))
                    else:
                        item.update(key="label", value=rng.choice([3, {"a": 1}, ["x"]]), score=0.5)
                    if rng.random() < 0.3:
                        item["comment"] = rng.choice(["fine", "why?", "see ticket"])
                    if rng.random() < 0.05:
                        item["error"] = True
                    if rng.random() < 0.5:
                        item["trace_id"] = str(trace)
                    feedback.append(item)
    return runs, feedback


def to_row(run: dict[str, Any]) -> list[Any]:
    prompt, completion, total = run["tokens"]
    return run_row(
        run["session"],
        run["id"],
        run["trace"],
        run["start"],
        end_time=run["end"],
        first_token_time=run["first_token"],
        error=run["error"],
        run_type=run["run_type"],
        name=run["name"],
        tags=run["tags"],
        status="error" if run["error"] else "success",
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        total_cost=run["cost"],
        prompt_cost=None if run["cost"] is None else run["cost"] / 4,
        completion_cost=None if run["cost"] is None else run["cost"] * 3 / 4,
    )


def quantile(values: list[float], level: float) -> float | None:
    """ClickHouse's `quantiles` below its 8,192-value reservoir: linear interpolation between order statistics."""
    if not values:
        return None
    ordered = sorted(values)
    pos = level * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def run_oracle(runs: list[dict[str, Any]]) -> dict[str, Any]:
    roots = [r for r in runs if r["is_root"]]
    latencies = [(r["end"] - r["start"]).total_seconds() for r in roots if r["end"]]
    first = [(r["first_token"] - r["start"]).total_seconds() for r in roots if r["first_token"]]
    costs = [r["cost"] for r in runs if r["cost"] is not None]
    return {
        "run_count": len(runs),
        "latency_p50": quantile(latencies, 0.5),
        "latency_p99": quantile(latencies, 0.99),
        "first_token_p50": quantile(first, 0.5),
        "first_token_p99": quantile(first, 0.99),
        "total_tokens": sum(r["tokens"][2] for r in runs),
        "prompt_tokens": sum(r["tokens"][0] for r in runs),
        "completion_tokens": sum(r["tokens"][1] for r in runs),
        "total_cost": sum(costs) if costs else None,
        "error_rate": sum(r["error"] is not None for r in roots) / len(roots),
        "streaming_rate": sum(r["first_token"] is not None for r in roots) / len(roots),
        "last_run_start_time": max(r["start"] for r in runs),
    }


def assert_feedback_stats(actual: dict[str, Any], expected: dict[str, dict[str, Any]]) -> None:
    assert set(actual) == set(expected)
    for key, want in expected.items():
        got = actual[key]
        for field in ("n", "errors", "values", "comment_count"):
            assert got[field] == want[field], (key, field)
        for field in ("avg", "stdev", "min", "max"):
            assert got[field] == (None if want[field] is None else pytest.approx(want[field])), (key, field)
        assert len(got["comments"]) == min(10, want["comment_count"])
        assert not Counter(got["comments"]) - want["comments"], "comments are the key's own"


@pytest.fixture(scope="module")
def dataset(storage: Storage) -> dict[str, Any]:
    """Two projects; feedback stored through the repository (one part before its runs), then updated and
    deleted, plus project-level feedback without a run. Returns the oracle's inputs as they end up."""
    rng = random.Random(20261124)
    projects = [uuid.uuid4(), uuid.uuid4()]
    runs, feedback = generate(rng, projects)
    early = feedback[: len(feedback) // 4]  # stored before their runs: no project known at write time
    storage.feedback.ingest(TENANT, early)
    insert_runs(storage, [to_row(r) for r in runs])
    storage.feedback.ingest(TENANT, feedback[len(early) :])
    run_project = {r["id"]: r["session"] for r in runs}
    for item in rng.sample(feedback, 20):
        storage.feedback.update(TENANT, uuid.UUID(item["id"]), {"score": 0.125, "comment": None})
        item.update(score=0.125, comment=None)
    deleted = rng.sample(feedback, 15)
    for item in deleted:
        assert storage.feedback.delete(TENANT, uuid.UUID(item["id"]))
    kept = [f for f in feedback if f not in deleted]
    session_level = {"key": "overall", "score": 0.9, "session_id": str(projects[0])}
    storage.feedback.ingest(TENANT, [session_level])
    project_feedback = {p: [f for f in kept if run_project[uuid.UUID(f["run_id"])] == p] for p in projects}
    project_feedback[projects[0]].append(session_level)
    return {"projects": projects, "runs": runs, "feedback": kept, "project_feedback": project_feedback}


def test_project_run_stats_match_the_oracle(storage: Storage, dataset: dict[str, Any]) -> None:
    stats = RunStats(storage.clickhouse).per_project(TENANT, dataset["projects"])
    for project in dataset["projects"]:
        want = run_oracle([r for r in dataset["runs"] if r["session"] == project])
        got = stats[project]
        for field in ("run_count", "total_tokens", "prompt_tokens", "completion_tokens"):
            assert got[field] == want[field], field
        for field in ("latency_p50", "latency_p99", "first_token_p50", "first_token_p99"):
            assert got[field] == pytest.approx(want[field], abs=1e-6), field
        for field in ("total_cost", "error_rate", "streaming_rate"):
            assert got[field] == pytest.approx(want[field]), field
        assert got["last_run_start_time"].replace(tzinfo=UTC) == want["last_run_start_time"]


def test_run_facets_count_every_value(storage: Storage, dataset: dict[str, Any]) -> None:
    project = dataset["projects"][1]
    runs = [r for r in dataset["runs"] if r["session"] == project]
    facets = {(f["key"], f["value"]): f["count"] for f in RunStats(storage.clickhouse).facets(TENANT, project)}
    want = Counter(("name", r["name"]) for r in runs) + Counter(("run_type", r["run_type"]) for r in runs)
    want += Counter(("tags", tag) for r in runs for tag in r["tags"])
    assert {k: v for k, v in facets.items() if k[0] != "status"} == dict(want)


def test_stats_of_nothing_are_empty_not_nan(storage: Storage) -> None:
    stats = RunStats(storage.clickhouse).over(TENANT, "0", {}, roots=True)
    assert stats["run_count"] == 0
    assert stats["latency_p50"] is None and stats["error_rate"] is None and stats["last_run_start_time"] is None
    nobody = uuid.uuid4()
    assert storage.feedback.stats_for_projects(TENANT, [nobody]) == {nobody: {}}


def test_project_feedback_stats_match_the_oracle(storage: Storage, dataset: dict[str, Any]) -> None:
    """Per project in one call: feedback stored before its run counts for the run's project; updated feedback
    counts its latest version, deleted feedback not at all; project-level feedback counts for its project."""
    got = storage.feedback.stats_for_projects(TENANT, dataset["projects"])
    for project in dataset["projects"]:
        assert_feedback_stats(got[project], feedback_oracle(dataset["project_feedback"][project]))


def test_feedback_stats_per_run_match_the_oracle(storage: Storage, dataset: dict[str, Any]) -> None:
    by_run: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for item in dataset["feedback"]:
        by_run[uuid.UUID(item["run_id"])].append(item)
    several = [run for run, items in by_run.items() if len(Counter(i["key"] for i in items)) < len(items)]
    assert several, "the dataset has runs with several feedbacks of one key"
    without = [r["id"] for r in dataset["runs"] if r["id"] not in by_run][:5]
    got = storage.feedback.stats_for_runs(TENANT, [*by_run, *without])
    assert set(got) == set(by_run), "runs without feedback have no entry"
    for run_id, items in by_run.items():
        assert_feedback_stats(got[run_id], feedback_oracle(items))


def test_feedback_stats_of_a_filtered_run_set(storage: Storage, dataset: dict[str, Any]) -> None:
    project = dataset["projects"][0]
    llm = {r["id"] for r in dataset["runs"] if r["session"] == project and r["run_type"] == "llm" and r["error"]}
    where = (
        "run_id IN (SELECT id FROM runs FINAL WHERE tenant_id = {tenant:UUID} AND session_id = {p:UUID} "
        "AND run_type = 'llm' AND error IS NOT NULL)"
    )
    got = storage.feedback.stats_by_key(TENANT, where, {"p": project})
    assert_feedback_stats(got, feedback_oracle([f for f in dataset["feedback"] if uuid.UUID(f["run_id"]) in llm]))


def test_feedback_read_before_its_run_is_linked_at_read_time(storage: Storage) -> None:
    project, trace = uuid.uuid4(), uuid.uuid4()
    (item,) = storage.feedback.ingest(TENANT, [{"run_id": str(trace), "key": "early", "score": 1}])
    assert item["session_id"] is None
    insert_runs(storage, [run_row(project, trace, trace, datetime.now(UTC))])
    read = storage.feedback.get(TENANT, item["id"])
    assert (read["session_id"], read["trace_id"]) == (project, trace)
    assert [f["id"] for f in storage.feedback.list(TENANT, sessions=[project])] == [item["id"]]


# -- retention ----------------------------------------------------------------------------------------------


def ttl_of(storage: Storage, trace: uuid.UUID) -> set[int]:
    rows = storage.clickhouse.client().query(
        "SELECT DISTINCT ttl_days FROM runs FINAL WHERE tenant_id = {t:UUID} AND trace_id = {trace:UUID}",
        parameters={"t": TENANT, "trace": trace},
    )
    return {row[0] for row in rows.result_rows}


def a_trace(storage: Storage, project: uuid.UUID, *, version: int = 1, size: int = 3) -> tuple[uuid.UUID, list]:
    trace, now = uuid.uuid4(), datetime.now(UTC)
    rows = [run_row(project, trace if i == 0 else uuid.uuid4(), trace, now, version=version) for i in range(size)]
    insert_runs(storage, rows)
    return trace, rows


def test_feedback_makes_its_trace_long_lived(storage: Storage) -> None:
    project = uuid.uuid4()
    upgraded, rows = a_trace(storage, project)
    plain, _ = a_trace(storage, project)
    child = rows[1][RUN_COLUMNS.index("id")]
    storage.feedback.ingest(TENANT, [{"run_id": str(child), "key": "k", "score": 1}])  # a child, no trace_id
    storage.retention.sweep(force=True)
    assert ttl_of(storage, upgraded) == {LONG}, "every run of the trace"
    assert ttl_of(storage, plain) == {SHORT}


def test_feedback_before_its_run_and_versions_written_after_the_upgrade(storage: Storage) -> None:
    project, trace, start = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    storage.feedback.ingest(TENANT, [{"run_id": str(trace), "trace_id": str(trace), "key": "k", "score": 1}])
    storage.retention.sweep(force=True)  # nothing stored yet: stays queued
    insert_runs(storage, [run_row(project, trace, trace, start, version=1)])
    storage.retention.sweep(force=True)
    assert ttl_of(storage, trace) == {LONG}
    # A later version written from a merge cache that predates the upgrade carries the short TTL again.
    insert_runs(storage, [run_row(project, trace, trace, start, version=2, status="error")])
    storage.retention.sweep(force=True)
    assert ttl_of(storage, trace) == {LONG}


def test_project_retention_settings(storage: Storage) -> None:
    project = Project(id=uuid.uuid4(), tenant_id=TENANT, name=f"ttl-{uuid.uuid4()}", start_time=datetime.now(UTC))
    storage.projects.save(project.model_copy(update={"short_ttl_days": 3, "long_ttl_days": 30}))
    assert storage.retention.days(TENANT, project.id) == (3, 30)
    assert storage.retention.days(TENANT, uuid.uuid4()) == (SHORT, LONG)
    trace, _ = a_trace(storage, project.id)
    storage.feedback.ingest(TENANT, [{"run_id": str(trace), "key": "k", "score": 1}])
    storage.retention.sweep(force=True)
    assert ttl_of(storage, trace) == {30}


def test_the_queue_is_rebuilt_after_a_restart(storage: Storage) -> None:
    """Feedback stored, then the process died before the sweep: a new sweeper finds it in the feedback table."""
    project = uuid.uuid4()
    trace, _ = a_trace(storage, project)
    FeedbackRepository(storage.clickhouse).ingest(TENANT, [{"run_id": str(trace), "key": "k", "score": 1}])
    assert ttl_of(storage, trace) == {SHORT}
    storage.projects.resolve_name(TENANT, "any")  # the sweeper finds tenants through their projects
    restarted = Retention(storage.clickhouse, storage.projects, short_days=SHORT, long_days=LONG)
    restarted.start()
    try:
        wait_for(lambda: ttl_of(storage, trace) == {LONG}, what="upgrade after the restart")
    finally:
        restarted.close()
