"""Reads never show a run twice, an older version of it, or a deleted run, while its versions are unmerged;
and return stored payloads exactly.

Rows are written straight into an in-process chDB with merges stopped, as the ingest batcher leaves them between
merges: every run has an old version (name "old", metadata v=1) and a newer one (name "new", v=2) in another part,
some runs' latest version deletes them, one root has more versions than a page reads at once. The query routes
run in-process over that storage (the benchmark's set-up), so every read path meets the unmerged versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from query import QueryOptions, QueryService
from schemas import jsonutil
from storage import Storage
from storage.runs import RUN_COLUMNS
from tests.support import query_app, run_row

TENANT = uuid.UUID(int=0x7E57)
PROJECT = uuid.UUID(int=0x9001)
TRACES = 12
MANY_VERSIONS = 40  # versions of one root: more than a page of 5 reads in one batch
OTHER_PROJECT = uuid.UUID(int=0x9002)
PAYLOADS = {
    "inputs": jsonutil.dumps_str({"q": "lone \ud800 surrogate", "nested": [{"é": None}, 1.5, True]}),
    "outputs": jsonutil.dumps_str({"a": "ok"}),
    "extra": "",
    "events": jsonutil.dumps_str([{"name": "start"}]),
}


def _row(run_id: uuid.UUID, trace_id: uuid.UUID, parent: uuid.UUID | None, start: datetime, **values: Any) -> list:
    """The first version of a run (name "old", pending), unless `values` say otherwise."""
    defaults = {"tenant_id": TENANT, "session_id": PROJECT, "name": "old", "status": "pending", "metadata": {"v": "1"}}
    return run_row(run_id, trace_id, parent, start, **{**defaults, **values})


class Data:
    """The runs written, and which of them are visible (latest version not deleted)."""

    def __init__(self) -> None:
        self.visible: dict[uuid.UUID, dict[str, Any]] = {}  # id -> {trace_id, start_time, is_root}
        self.deleted: set[uuid.UUID] = set()
        self.many_versions: uuid.UUID | None = None
        self.payload_run = uuid.uuid4()

    def visible_ids(self, **where: Any) -> list[str]:
        """Ids newest first, ties by id, as every query orders them."""
        runs = [(r["start_time"], i) for i, r in self.visible.items() if all(r[k] == v for k, v in where.items())]
        return [str(i) for _, i in sorted(runs, reverse=True)]


@pytest.fixture(scope="module")
def data_and_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Data, TestClient]]:
    root: Path = tmp_path_factory.mktemp("versions")
    storage = Storage.open(f"chdb://{root}/ch", f"file://{root}/blobs")
    client = storage.clickhouse.client()
    client.command("SYSTEM STOP MERGES runs")
    client.command("SYSTEM STOP MERGES run_ids")
    data = Data()
    first: list[list[Any]] = []  # the first part holds the old version of half the runs, the new one of the rest
    second: list[list[Any]] = []
    deletes: list[list[Any]] = []
    many: list[list[Any]] = []
    base = datetime(2026, 11, 2, tzinfo=UTC)
    for t in range(TRACES):
        trace_id = uuid.uuid4()
        child = uuid.uuid4()
        grandchild = uuid.uuid4()
        for offset, (run_id, parent) in enumerate(((trace_id, None), (child, trace_id), (grandchild, child))):
            start = base + timedelta(minutes=t, milliseconds=offset)
            latest = {"name": "new", "status": "success", "metadata": {"v": "2"}, "version": 2}
            versions = [_row(run_id, trace_id, parent, start), _row(run_id, trace_id, parent, start, **latest)]
            if t % 2:
                versions.reverse()
            first.append(versions[0])
            second.append(versions[1])
            if (t % 4 == 1 and run_id == trace_id) or (t % 3 == 2 and run_id == grandchild):
                deletes.append(_row(run_id, trace_id, parent, start, **{**latest, "version": 3, "is_deleted": 1}))
                data.deleted.add(run_id)
            else:
                data.visible[run_id] = {"trace_id": trace_id, "start_time": start, "is_root": parent is None}
            if t == TRACES - 1 and run_id == trace_id:
                data.many_versions = run_id
                many = [
                    _row(run_id, trace_id, parent, start, **{**latest, "version": 2 + v}) for v in range(MANY_VERSIONS)
                ]
    # Payload text as ingest stores it (JSON escapes lone surrogates), in a project of its own.
    payloads = _row(data.payload_run, data.payload_run, None, base, session_id=OTHER_PROJECT, **PAYLOADS)
    client.insert("runs", [payloads], column_names=list(RUN_COLUMNS))
    for rows in (first, second, deletes, many):  # one part each, and nothing collapsed on insert
        client.insert("runs", rows, column_names=list(RUN_COLUMNS), settings={"optimize_on_insert": 0})

    app = query_app(QueryService(storage, QueryOptions(secret_key=b"test")), TENANT)
    try:
        with TestClient(app) as http:
            yield data, http
    finally:
        storage.close()


def _page_through(http: TestClient, **body: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    body = {"session": [str(PROJECT)], **body}
    for _ in range(200):
        response = http.post("/runs/query", json=body)
        assert response.status_code == 200, response.text
        page = response.json()
        out.extend(page["runs"])
        if not page["cursors"]["next"]:
            return out
        body = {**body, "cursor": page["cursors"]["next"]}
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("limit", [1, 5, 100])
@pytest.mark.parametrize("order", ["desc", "asc"])
def test_pages_show_each_visible_run_once_in_its_latest_version(
    data_and_http: tuple[Data, TestClient], limit: int, order: str
) -> None:
    data, http = data_and_http
    for body, where in (({"is_root": True}, {"is_root": True}), ({}, {})):
        runs = _page_through(http, limit=limit, order=order, **body)
        expected = data.visible_ids(**where)
        assert [r["id"] for r in runs] == (expected if order == "desc" else expected[::-1]), body
        assert {r["name"] for r in runs} == {"new"}


def test_filters_match_the_latest_version_only(data_and_http: tuple[Data, TestClient]) -> None:
    data, http = data_and_http
    for old_only in (
        'eq(name, "old")',
        'eq(status, "pending")',
        'and(eq(metadata_key, "v"), eq(metadata_value, "1"))',
        """has(metadata, '{"v": "1"}')""",
    ):
        assert _page_through(http, limit=5, filter=old_only) == [], old_only
        assert _page_through(http, limit=5, is_root=True, tree_filter=old_only) == [], old_only
        assert _page_through(http, limit=5, trace_filter=old_only) == [], old_only
    for latest in ('eq(name, "new")', 'and(eq(metadata_key, "v"), eq(metadata_value, "2"))'):
        assert [r["id"] for r in _page_through(http, limit=5, filter=latest)] == data.visible_ids()


def test_runs_by_id_and_trees_hide_deleted_runs(data_and_http: tuple[Data, TestClient]) -> None:
    data, http = data_and_http
    for run_id in data.deleted:
        assert http.get(f"/runs/{run_id}").status_code == 404
    ids = [str(i) for i in [*data.deleted, *list(data.visible)[:10]]]
    found = _page_through(http, id=ids, limit=3)
    assert sorted(r["id"] for r in found) == sorted(str(i) for i in list(data.visible)[:10])
    traces = {r["trace_id"] for r in data.visible.values()}
    for trace_id in traces:
        in_trace = {str(i) for i, r in data.visible.items() if r["trace_id"] == trace_id}
        tree = http.get(f"/traces/{trace_id}").json()
        assert tree["run_count"] == len(in_trace)
        if trace_id in data.visible:
            root = http.get(f"/runs/{trace_id}").json()
            assert root["name"] == "new"
            assert set(root["child_run_ids"]) == in_trace - {str(trace_id)}
    assert data.many_versions is not None
    assert http.get(f"/runs/{data.many_versions}").json()["name"] == "new"


def test_payloads_are_returned_exactly(data_and_http: tuple[Data, TestClient]) -> None:
    """Payload text goes into responses unparsed: it must still be the same JSON, lone surrogates included."""
    data, http = data_and_http
    expected = {
        "inputs": {"q": "lone \ud800 surrogate", "nested": [{"é": None}, 1.5, True]},
        "outputs": {"a": "ok"},
        "extra": {},
        "events": [{"name": "start"}],
    }
    run = http.get(f"/runs/{data.payload_run}").json()
    tree = http.get(f"/traces/{data.payload_run}").json()["root"]
    (listed,) = http.post("/runs/query", json={"session": [str(OTHER_PROJECT)]}).json()["runs"]
    for found in (run, tree, listed):
        assert {k: found[k] for k in expected} == expected
