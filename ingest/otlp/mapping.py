"""OTLP spans to run posts (and the patches that link early children to late parents).

One span is one run. Per span, `conventions` reads what the attributes say (run type, payloads, model, usage,
metadata); this module owns ids, times, status, events, the run tree and `extra`. The tree is resolved per
request, statelessly and so in the decode worker (`to_runs`): a parent in the same request gives the child its
`parent_run_id` and, when the chain reaches the root, a complete dotted order. Parents from other requests
come from `links.TraceLinks`, in the server process (`link`); only spans whose parent is outside the request
need it, so the worker sends the others' posts already encoded for the spool.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from ingest import fresh, records
from ingest.derive import segment
from ingest.otlp import conventions, ids
from ingest.otlp.links import Child, TraceKey, TraceLinks
from ingest.otlp.values import Attrs, Request, Span
from ingest.validate import checked_fields, format_time, shallow
from schemas import ApiError, jsonutil
from schemas.runs import RunOp
from storage.runs import from_ticks, ticks

_ERROR = Status.StatusCode.STATUS_CODE_ERROR
_KINDS = {v: k.removeprefix("SPAN_KIND_").lower() for k, v in SpanMessage.SpanKind.items()}
_MESSAGE_EVENTS = frozenset(
    {
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.choice",
    }
)
_RUNTIME = {
    "telemetry.sdk.name": "sdk",
    "telemetry.sdk.version": "sdk_version",
    "telemetry.sdk.language": "runtime",
    "process.runtime.version": "runtime_version",
}
_MAX_REJECTION_NOTES = 5


@dataclass(slots=True, init=False)
class Node:
    """One span as a run, before linking. Picklable: decode workers send these back to the server process."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes  # b"" for a root
    start: datetime
    fields: dict[str, Any]
    run_id: str  # canonical UUID text, assigned once the request's spans are known
    outside: bool  # its parent span is not in this request: linked in the server process
    packed: bytes | None  # else its post, encoded for the spool by the worker (then `fields` is empty)
    presumed: bool  # its post became a presumed-new row (`Spans.fresh`; then `fields` is empty)
    texts: dict[str, bytes]  # `RunOp.texts` of its post (`_payload_texts`)

    def __init__(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes,
        start: datetime,
        fields: dict[str, Any],
        run_id: str = "",
        outside: bool = False,
        packed: bytes | None = None,
        presumed: bool = False,
        texts: dict[str, bytes] | None = None,
    ) -> None:
        """Written out, not generated: mypyc compiles it, where the dataclass's runs interpreted (one per span, in
        the worker and again in the server process)."""
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.start = start
        self.fields = fields
        self.run_id = run_id
        self.outside = outside
        self.packed = packed
        self.presumed = presumed
        self.texts = {} if texts is None else texts

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as plain values, the start time as microseconds: pickling a slotted dataclass field by field
        with an aware datetime cost 331 µs and unpickling it 194 µs for the 100 nodes of a request (measured),
        ~5 µs per span between a decode worker and the server."""
        values = (self.fields, self.run_id, self.outside, self.packed, self.presumed, self.texts)
        return _unpickled_node, (self.trace_id, self.span_id, self.parent_span_id, ticks(self.start), *values)


def _unpickled_node(trace_id: bytes, span_id: bytes, parent_span_id: bytes, start: int, *values: Any) -> Node:
    return Node(trace_id, span_id, parent_span_id, from_ticks(start), *values)


@dataclass(slots=True)
class Spans:
    """A request's valid spans as runs (ids assigned, tree not yet linked), and why the others were rejected."""

    nodes: list[Node] = field(default_factory=list)
    rejected: int = 0
    notes: list[str] = field(default_factory=list)  # the first few reasons
    fresh: bytes = records.NO_FRESH  # rows of posts presumed new (`ingest.fresh.split`), packed
    fresh_runs: int = 0

    def reject(self, note: str) -> None:
        self.rejected += 1
        if len(self.notes) < _MAX_REJECTION_NOTES:
            self.notes.append(note)


@dataclass(slots=True)
class Mapped:
    ops: list[RunOp]
    packed: list[bytes]  # posts the decode worker encoded (`records.pack_op`)
    fresh: bytes  # and the posts it made rows of (`records.pack_fresh`)
    fresh_runs: int
    rejected: int
    notes: list[str]
    # (trace, parent span, child run) of every patch: waiting again if the ops cannot be submitted
    released: list[tuple[TraceKey, bytes, Child]]

    @property
    def runs(self) -> int:
        return len(self.ops) + len(self.packed) + self.fresh_runs


def to_time(unix_nano: int) -> datetime:
    return from_ticks(unix_nano // 1000)


def map_request(
    request: Request,
    *,
    tenant_id: uuid.UUID,
    links: TraceLinks,
    project: str | None = None,
) -> Mapped:
    return link(to_runs(request, project=project), tenant_id=tenant_id, links=links)


def to_runs(request: Request, *, project: str | None = None, pack: bool = False) -> Spans:
    """Every valid span as a run (invalid ones are counted and described, the rest kept), linked within the
    request. Stateless, so it can run in a decode worker. `project` is the `Langsmith-Project` header; with
    `pack`, the posts that `link` will not change are encoded here (msgpack is cheaper than pickling them back
    to the server process and encoding them there: measured ~30 µs less per span in the server process), as
    presumed-new rows where they qualify (`ingest.fresh`)."""
    out = Spans()
    unique: dict[tuple[bytes, bytes], Node] = {}  # a span sent twice in one request is one run (the last copy)
    for resource, scopes in request:
        runtime = {key: resource[attr] for attr, key in _RUNTIME.items() if attr in resource}
        resource_project = resource.get("openinference.project.name") or resource.get("langsmith.project")
        if resource_project is not None:
            resource_project = str(resource_project)  # as a span's own project name is: any value as its text
        for scope_name, scope_version, scope_attributes, spans in scopes:
            otel_scope = {"name": scope_name, "version": scope_version, "attributes": scope_attributes}
            scope_runtime = {**runtime, "library": scope_name} if scope_name else runtime
            for span in spans:
                problem = _invalid(span)
                if problem is not None:
                    out.reject(problem)
                    continue
                try:
                    node = _node(span, resource, otel_scope, scope_runtime, project or resource_project)
                except ApiError as error:  # a run field the LangSmith validation refuses, named in the message
                    out.reject(error.message)
                    continue
                except (TypeError, ValueError, AttributeError) as exc:  # one odd span must not cost the others
                    out.reject(f"span {span.name!r:.80}: cannot be mapped: {exc}")
                    continue
                unique[(node.trace_id, node.span_id)] = node
    out.nodes = list(unique.values())
    _assign_ids(out.nodes)
    _link_within(unique)
    if pack:
        inside = [node for node in out.nodes if not node.outside]
        built, declined = [], []
        for node in inside:  # one node per run, no attachments, depth checked (`_node`): what `build` presumes
            row = _built(node)
            if row is None:
                declined.append(RunOp("post", node.run_id, node.fields, texts=node.texts))
            else:
                built.append(row)
        rest, rows = fresh.split(declined, built)
        out.fresh, out.fresh_runs = records.pack_fresh(rows), fresh.size(rows)
        merged = {op.run_id: op for op in rest}
        for node in inside:
            op = merged.get(node.run_id)
            node.packed = None if op is None else records.pack_op(op)
            node.presumed = op is None
            node.fields = {}
    for node in out.nodes:
        node.texts = {}  # only presumed-new rows use them: the other posts travel without
    return out


def _built(node: Node) -> fresh.Built | None:
    """The span's post as a presumed-new row built in C (`fresh.build`), or None for `fresh.split` to build. A
    span's fields are a post in the form the SDK sends (canonical ids, times as `format_time` writes them), so C
    builds nearly all: a decode worker's instructions per span of tests/bench/otlp.py fell from 569,000 to 505,000
    (callgrind, `python -m tests.bench.instructions`)."""
    fields = node.fields
    main = {key: value for key, value in fields.items() if key not in fresh.PAYLOADS}
    payloads = {key: fields[key] for key in fresh.PAYLOADS if key in fields}
    return fresh.build(node.run_id, main, payloads, node.texts)


def link(spans: Spans, *, tenant_id: uuid.UUID, links: TraceLinks) -> Mapped:
    """Posts for the runs, with parents from earlier requests where they are known, then patches for children
    of earlier requests whose parent is in this one. Records every span for later requests."""
    released: list[tuple[TraceKey, bytes, Child]] = []
    patches: list[RunOp] = []
    with links.lock:
        for node in spans.nodes:
            if node.outside:
                known = links.known((tenant_id, node.trace_id), node.parent_span_id)
                if known is not None:
                    node.fields["parent_run_id"] = known  # the batcher derives the dotted order
                else:
                    child = (node.run_id, node.fields["start_time"])
                    links.wait((tenant_id, node.trace_id), node.parent_span_id, child)
        for node in spans.nodes:
            for child in links.record((tenant_id, node.trace_id), node.span_id, node.run_id):
                run_id, start = child
                fields = {"id": run_id, "parent_run_id": node.run_id, "start_time": start}
                patches.append(RunOp("patch", run_id, fields))
                released.append(((tenant_id, node.trace_id), node.span_id, child))
    posts = [
        RunOp("post", node.run_id, node.fields) for node in spans.nodes if node.packed is None and not node.presumed
    ]
    packed = [node.packed for node in spans.nodes if node.packed is not None]
    return Mapped(
        ops=posts + patches,
        packed=packed,
        fresh=spans.fresh,
        fresh_runs=spans.fresh_runs,
        rejected=spans.rejected,
        notes=spans.notes,
        released=released,
    )


def _invalid(span: Span) -> str | None:
    if not ids.valid_trace_id(span.trace_id):
        return f"span {span.name!r:.80}: trace_id must be 16 bytes, not all zero"
    if not ids.valid_span_id(span.span_id):
        return f"span {span.name!r:.80}: span_id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name!r:.80}: parent_span_id must be 8 bytes or empty"
    if span.start_time_unix_nano == 0:
        return f"span {span.name!r:.80}: start_time_unix_nano is required"
    return None


def _node(
    span: Span,
    resource: dict[str, Any],
    scope: dict[str, Any],
    runtime: dict[str, Any],
    default_project: str | None,
) -> Node:
    attrs = Attrs(span.attributes)
    events = [
        {"name": e.name, "time": format_time(to_time(e.time_unix_nano)), "kwargs": e.attributes} for e in span.events
    ]
    session_id, session_name = conventions.project(attrs)
    run_type = conventions.run_type(attrs)
    fields: dict[str, Any] = {"name": conventions.name(attrs, span.name, run_type), "run_type": run_type}
    start = to_time(span.start_time_unix_nano)
    fields["start_time"] = format_time(start)
    if span.end_time_unix_nano:
        fields["end_time"] = format_time(to_time(max(span.end_time_unix_nano, span.start_time_unix_nano)))
    if session_id:
        fields["session_id"] = session_id  # the batcher resolves the project by this id: validated as a UUID
    if session_name or (default_project and not session_id):
        fields["session_name"] = session_name or default_project
    if tags := conventions.tags(attrs):
        fields["tags"] = tags
    metadata = conventions.metadata(attrs)
    for key, value in conventions.model(attrs).items():
        metadata.setdefault(key, value)
    usage = conventions.usage(attrs)
    if usage and not isinstance(metadata.get("usage_metadata"), dict):
        metadata["usage_metadata"] = usage
    params = conventions.invocation_params(attrs)
    if serialized := conventions.serialized(attrs):
        fields["serialized"] = serialized
    reference = attrs.pop("langsmith.reference_example_id", None)
    if isinstance(reference, str) and _is_uuid(reference):  # one that is not a UUID costs the link, not the span
        fields["reference_example_id"] = reference
    inputs = conventions.inputs(attrs, events, run_type)
    outputs = conventions.outputs(attrs, events)
    fields["inputs"] = inputs if inputs is not None else {}
    if outputs is not None:
        fields["outputs"] = outputs
    error = _error(span, events)
    if error is not None:
        fields["error"] = error
    for key, attribute in attrs.items():
        if not key.startswith("langsmith."):  # the SDK's internals (runtime, request headers) stay out
            metadata.setdefault(key, attribute)

    otel: dict[str, Any] = {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "kind": _KINDS.get(span.kind, "unspecified"),
        "resource": resource,
        "scope": scope,
    }
    if span.parent_span_id:
        otel["parent_span_id"] = span.parent_span_id.hex()
    if span.trace_state:
        otel["trace_state"] = span.trace_state
    if span.status_message:
        otel["status_message"] = span.status_message
    if span.links:
        otel["links"] = [
            {"trace_id": lk.trace_id.hex(), "span_id": lk.span_id.hex(), "attributes": lk.attributes}
            for lk in span.links
        ]
    extra: dict[str, Any] = {"metadata": metadata, "runtime": runtime, "otel": otel}
    if params:
        extra["invocation_params"] = params
    fields["extra"] = extra
    fields["events"] = [e for e in events if e["name"] not in _MESSAGE_EVENTS]
    # The guarantees of a LangSmith op, from the same code: JSON text in attributes can nest deeper than storage
    # writes, a project or example id can come in any UUID form. The run's own ids and dotted order are added
    # later, from the OTel ids, already canonical.
    texts = _payload_texts(fields)
    checked = checked_fields(fields, f"span {span.name!r:.80}", depth_checked=texts is not None)
    return Node(span.trace_id, span.span_id, span.parent_span_id, start, checked, texts=texts or {})


def _payload_texts(fields: dict[str, Any]) -> dict[str, bytes] | None:
    """The JSON text of each payload, or None when one of them might nest too deep to store. A row stores these
    texts, so dumping them here costs nothing more, and their brackets bound the nesting as a multipart part's do
    (`validate.shallow`): walking the values for it was a fifth of mapping a span (measured). None sends the
    values to the walk."""
    texts = {}
    for name in fresh.PAYLOADS:
        value = fields.get(name)
        if value is None:
            continue
        try:
            text = jsonutil.dumps(value)
        except (TypeError, ValueError, RecursionError):  # too deep for the serialisers: the walk says so
            return None
        if not shallow(text):
            return None
        texts[name] = text
    return texts


def _error(span: Span, events: list[dict[str, Any]]) -> str | None:
    """The exception event's message (with its stack trace), else the status message, for ERROR spans; an
    exception event on a span whose status is not ERROR is kept as an event only (it was handled)."""
    if span.status_code != _ERROR:
        return None
    # events[::-1] rather than reversed(events): mypyc (setup.py) fails on reversed() in a generator expression
    exception = next((e["kwargs"] for e in events[::-1] if e["name"] == "exception"), None) or {}
    kind = exception.get("exception.type")
    message = exception.get("exception.message") or span.status_message or kind or "span status is ERROR"
    text = str(message)
    stack = exception.get("exception.stacktrace")
    if isinstance(stack, str) and stack.strip() and stack.strip() != f"{kind}: {message}" and stack not in text:
        text = f"{text}\n\n{stack}"
    return text


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _assign_ids(nodes: list[Node]) -> None:
    """A root span's run id is the trace UUID (the first root of a trace, if a request carries two); every
    other span's is derived from (trace id, span id)."""
    traces: dict[bytes, str] = {}
    roots: set[bytes] = set()
    for node in nodes:
        trace = traces.get(node.trace_id)
        if trace is None:
            trace = traces[node.trace_id] = str(ids.trace_uuid(node.trace_id))
        node.fields["trace_id"] = trace
        if not node.parent_span_id and node.trace_id not in roots:
            roots.add(node.trace_id)
            node.run_id = trace
        else:
            node.run_id = str(ids.span_uuid(node.trace_id, node.span_id))
        node.fields["id"] = node.run_id


def _link_within(nodes: dict[tuple[bytes, bytes], Node]) -> None:
    """Sets `parent_run_id` for parents in this request and `dotted_order` where the chain reaches the root;
    marks the spans whose parent is elsewhere (`outside`): their dotted order is left to the batcher."""
    dotted: dict[tuple[bytes, bytes], str | None] = {}
    for key, node in nodes.items():
        if not node.parent_span_id:
            continue
        parent = nodes.get((node.trace_id, node.parent_span_id))
        if parent is not None:
            node.fields["parent_run_id"] = parent.run_id
        else:
            node.outside = True
            dotted[key] = None
    for key, node in nodes.items():
        order = _dotted_order(key, nodes, dotted)
        if order is not None:
            node.fields["dotted_order"] = order


def _dotted_order(
    key: tuple[bytes, bytes], nodes: dict[tuple[bytes, bytes], Node], memo: dict[tuple[bytes, bytes], str | None]
) -> str | None:
    """The chain of segments up to the root, when the whole chain is in this request (iterative: chains can
    be long, and a cycle in hostile input must end)."""
    path: list[tuple[bytes, bytes]] = []
    seen: set[tuple[bytes, bytes]] = set()
    current = key
    base: str | None
    while True:
        if current in memo:
            base = memo[current]
            break
        node = nodes.get(current)
        if node is None or current in seen:
            base = None
            break
        seen.add(current)
        path.append(current)
        if "parent_run_id" not in node.fields:
            base = "" if not node.parent_span_id else None
            break
        current = (node.trace_id, node.parent_span_id)
    for step in reversed(path):
        node = nodes[step]
        if base is not None:
            own = segment(node.start, node.run_id)
            base = f"{base}.{own}" if base else own
        memo[step] = base
    return base
