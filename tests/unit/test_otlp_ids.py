"""Run ids from OTel ids, and the run tree across requests: roots, dotted orders, children before parents."""

from __future__ import annotations

import uuid
from typing import Any

from ingest import fresh, records
from ingest.fresh import FreshBlock
from ingest.otlp import Encoding, TraceLinks, link, map_request, parse
from ingest.otlp.ids import span_uuid, trace_uuid
from ingest.otlp.worker import decode_spans
from schemas.runs import RunOp
from tests.otlp_payloads import new_span_id, new_trace_id, request, span

TENANT = uuid.UUID(int=1)


def send(links: TraceLinks, *spans: dict[str, Any], tenant: uuid.UUID = TENANT) -> list[RunOp]:
    return map_request(parse(request(list(spans)), Encoding.JSON), tenant_id=tenant, links=links).ops


def by_name(ops: list[RunOp]) -> dict[str, dict[str, Any]]:
    return {op.fields["name"]: op.fields for op in ops if op.kind == "post"}


def test_ids_are_deterministic_unique_and_keep_the_span_id() -> None:
    trace, other = bytes.fromhex(new_trace_id()), bytes.fromhex(new_trace_id())
    span_id = bytes.fromhex(new_span_id())
    assert span_uuid(trace, span_id) == span_uuid(trace, span_id)
    assert span_uuid(trace, span_id) != span_uuid(other, span_id)
    assert span_uuid(trace, span_id).bytes[:8] == span_id
    assert trace_uuid(trace).bytes == trace


def test_one_request_gives_a_complete_tree() -> None:
    trace, root, mid, leaf = new_trace_id(), new_span_id(), new_span_id(), new_span_id()
    t0 = 1_700_000_000_000_000_000
    runs = by_name(
        send(
            TraceLinks(),
            span(trace, leaf, "leaf", parent=mid, start_ns=t0 + 2000),  # children first, as exporters send them
            span(trace, mid, "mid", parent=root, start_ns=t0 + 1000),
            span(trace, root, "root", start_ns=t0),
        )
    )
    trace_id = str(uuid.UUID(trace))
    assert runs["root"]["id"] == trace_id and "parent_run_id" not in runs["root"]
    assert runs["mid"]["parent_run_id"] == trace_id
    assert runs["leaf"]["parent_run_id"] == runs["mid"]["id"]
    assert {r["trace_id"] for r in runs.values()} == {trace_id}
    assert runs["leaf"]["dotted_order"] == (
        f"20231114T221320000000Z{trace_id}.20231114T221320000001Z{runs['mid']['id']}"
        f".20231114T221320000002Z{runs['leaf']['id']}"
    )


def test_children_before_their_parents_in_other_requests_are_linked_by_patches() -> None:
    links = TraceLinks()
    trace, root, mid, leaf = new_trace_id(), new_span_id(), new_span_id(), new_span_id()
    first = send(links, span(trace, leaf, "leaf", parent=mid))
    leaf_run = by_name(first)["leaf"]
    assert "parent_run_id" not in leaf_run and "dotted_order" not in leaf_run
    assert leaf_run["extra"]["otel"]["parent_span_id"] == mid

    second = send(links, span(trace, mid, "mid", parent=root))
    mid_run = by_name(second)["mid"]
    patches = [op for op in second if op.kind == "patch"]
    assert [(p.run_id, p.fields["parent_run_id"]) for p in patches] == [(leaf_run["id"], mid_run["id"])]

    third = send(links, span(trace, root, "root"))
    trace_id = str(uuid.UUID(trace))
    assert by_name(third)["root"]["id"] == trace_id
    assert [(p.run_id, p.fields) for p in third if p.kind == "patch"] == [
        (mid_run["id"], {"id": mid_run["id"], "parent_run_id": trace_id, "start_time": mid_run["start_time"]})
    ], "the child's own start time: the batcher looks the stored child up by it"
    assert len(links) == 3  # every span known, nothing waiting


def test_parents_from_earlier_requests_give_the_parent() -> None:
    links = TraceLinks()
    trace, root, child = new_trace_id(), new_span_id(), new_span_id()
    root_run = by_name(send(links, span(trace, root, "root")))["root"]
    child_run = by_name(send(links, span(trace, child, "child", parent=root)))["child"]
    assert child_run["parent_run_id"] == root_run["id"]
    assert "dotted_order" not in child_run  # derived by the batcher from the stored parent


def test_tenants_do_not_share_links() -> None:
    links = TraceLinks()
    trace, root, child = new_trace_id(), new_span_id(), new_span_id()
    send(links, span(trace, root, "root"), tenant=uuid.UUID(int=2))
    assert "parent_run_id" not in by_name(send(links, span(trace, child, "child", parent=root)))["child"]


def test_a_parent_cycle_ends() -> None:
    trace, a, b = new_trace_id(), new_span_id(), new_span_id()
    runs = by_name(send(TraceLinks(), span(trace, a, "a", parent=b), span(trace, b, "b", parent=a)))
    assert runs["a"]["parent_run_id"] == runs["b"]["id"] and "dotted_order" not in runs["a"]


def test_restore_puts_children_back_to_waiting() -> None:
    links = TraceLinks()
    trace, root, child = new_trace_id(), new_span_id(), new_span_id()
    send(links, span(trace, child, "child", parent=root))
    mapped = map_request(parse(request([span(trace, root, "root")]), Encoding.JSON), tenant_id=TENANT, links=links)
    assert len([op for op in mapped.ops if op.kind == "patch"]) == 1
    links.restore(mapped.released)  # the submit failed with 429; the client sends the root again
    again = send(links, span(trace, root, "root"))
    assert len([op for op in again if op.kind == "patch"]) == 1


def test_the_registry_is_bounded() -> None:
    links = TraceLinks(max_spans=10)
    for _ in range(20):
        send(links, span(new_trace_id(), new_span_id(), "root"))
    assert len(links) <= 10


def test_the_worker_path_spools_the_same_ops_as_mapping_in_one_place() -> None:
    """The decode worker links within the request and encodes the posts that need nothing more; the server
    process links the rest. The record must hold exactly what mapping everything in one place gives."""
    trace, other = new_trace_id(), new_trace_id()
    root, mid, leaf, late, orphan = (new_span_id() for _ in range(5))
    requests = [
        [span(trace, leaf, "leaf", parent=mid), span(other, orphan, "orphan", parent=late)],
        [span(trace, mid, "mid", parent=root), span(trace, root, "root"), span(other, late, "late")],
    ]
    in_place, worker = TraceLinks(), TraceLinks()
    ahead = 0
    for spans in requests:
        body = request(spans)
        expected = {
            (op.kind, op.run_id): op.fields
            for op in map_request(parse(body, Encoding.JSON), tenant_id=TENANT, links=in_place).ops
        }
        mapped = link(decode_spans(body, "identity", Encoding.JSON, None, 1 << 20), tenant_id=TENANT, links=worker)
        record = records.decode(records.encode(TENANT, mapped.ops, [], packed=mapped.packed, fresh=mapped.fresh))
        assert (record.tenant_id, record.feedback) == (TENANT, [])
        spooled = {(op.kind, op.run_id): op.fields for op in record.ops}
        rows = FreshBlock.of(0, record.fresh) if record.fresh else None
        for row, run_id in enumerate(rows.ids if rows else []):  # the rows themselves: tests/unit/test_fresh.py
            assert rows is not None and rows.dotted(row) == expected[("post", run_id)]["dotted_order"]
            spooled[("post", run_id)] = expected[("post", run_id)]
        assert spooled == expected
        ahead += len(mapped.packed) + fresh.size(record.fresh)
    assert ahead == 3, "roots and spans whose parent is in the request come encoded (or as rows) from the worker"
