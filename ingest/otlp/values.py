"""OTLP requests as plain Python values, the form every later step works on: resource spans as
`Request`, spans as `Span` tuples, attributes (`AnyValue`/`KeyValue` lists) as dicts.

A protobuf body is read by `ingest/_otlp.c` straight from the wire; whatever it declines (and every OTLP/JSON
body) is parsed by protobuf and converted here (`from_message`), to the same values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage

_SCALARS = frozenset({str, int, float, bool})


class Event(NamedTuple):
    time_unix_nano: int
    name: str
    attributes: dict[str, Any]


class Link(NamedTuple):
    trace_id: bytes
    span_id: bytes
    attributes: dict[str, Any]


class Span(NamedTuple):
    """A span's fields the mapping reads (`Status` flattened into the last two)."""

    trace_id: bytes
    span_id: bytes
    trace_state: str
    parent_span_id: bytes
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    events: list[Event]
    links: list[Link]
    status_code: int
    status_message: str


# (scope name, scope version, scope attributes, spans) per ScopeSpans; (resource attributes, scopes) per
# ResourceSpans.
Scope = tuple[str, str, dict[str, Any], list[Span]]
Request = list[tuple[dict[str, Any], list[Scope]]]

try:  # built where a C compiler is available (setup.py)
    from ingest._otlp import EVENT_FIELDS, LINK_FIELDS, SPAN_FIELDS, read_request
except ImportError:
    read_request = None
else:
    if (Span._fields, Event._fields, Link._fields) != (SPAN_FIELDS, EVENT_FIELDS, LINK_FIELDS):
        raise RuntimeError("ingest/_otlp.c fills other fields than ingest.otlp.values's tuples: mend it")


def read(body: bytes) -> Request | None:
    """A protobuf request read in C, or None where protobuf must parse it (or without the C module)."""
    return None if read_request is None else read_request(body, Span, Event, Link)


def from_message(request: ExportTraceServiceRequest) -> Request:
    return [
        (
            attributes(resource_spans.resource.attributes),
            [
                (
                    scope_spans.scope.name,
                    scope_spans.scope.version,
                    attributes(scope_spans.scope.attributes),
                    [_span(span) for span in scope_spans.spans],
                )
                for scope_spans in resource_spans.scope_spans
            ],
        )
        for resource_spans in request.resource_spans
    ]


def _span(span: SpanMessage) -> Span:
    return Span(
        span.trace_id,
        span.span_id,
        span.trace_state,
        span.parent_span_id,
        span.name,
        span.kind,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        attributes(span.attributes),
        [Event(event.time_unix_nano, event.name, attributes(event.attributes)) for event in span.events],
        [Link(link.trace_id, link.span_id, attributes(link.attributes)) for link in span.links],
        span.status.code,
        span.status.message,
    )


def value(v: AnyValue) -> Any:
    # ListFields() is the one call that yields the set member of the oneof: about a third cheaper than
    # WhichOneof() plus a getattr.
    fields = v.ListFields()
    if not fields:
        return None
    found = fields[0][1]
    if type(found) in _SCALARS:
        return found
    if isinstance(found, bytes):
        return found.hex()
    if isinstance(found, ArrayValue):
        return [value(item) for item in found.values]
    return attributes(found.values)


class Attrs(dict[str, Any]):
    """A span's attributes, plus the set of their two-segment families (`gen_ai.prompt.`, `llm.token_count.`),
    so that a convention can tell in O(1) that none of its indexed keys are present: most spans carry one
    convention and most lookups miss."""

    __slots__ = ("families",)

    def __init__(self, items: dict[str, Any]) -> None:
        super().__init__(items)
        # key up to and including its second dot ("" when it has fewer than two dots)
        self.families = {key[: key.find(".", key.find(".") + 1) + 1] for key in items}


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}
