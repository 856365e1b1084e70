"""`ingest/_otlp.c` reads protobuf requests into the values protobuf's own parser and `values.from_message` make,
or declines them to that path: on random requests, on damaged ones, and on each kind of input it must decline."""

from __future__ import annotations

import random
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from ingest.otlp import Encoding, parse
from ingest.otlp.values import Span, from_message, read, read_request
from schemas import ApiError

pytestmark = pytest.mark.skipif(read_request is None, reason="ingest/_otlp.c is not built (no C compiler)")

# What ingest/_otlp.c reads, by message: field number -> (name, protobuf type, repeated). Any other field makes it
# decline; a field of another type here would be read wrongly, so the installed package must define these.
_STRING, _BYTES, _MESSAGE, _UINT32, _FIXED32, _ENUM, _FIXED64, _BOOL, _INT64, _DOUBLE, _INT32 = (
    9, 12, 11, 13, 7, 14, 6, 8, 3, 1, 5,
)  # fmt: skip
KNOWN = {
    "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest": {1: ("resource_spans", _MESSAGE, True)},
    "opentelemetry.proto.trace.v1.ResourceSpans": {
        1: ("resource", _MESSAGE, False),
        2: ("scope_spans", _MESSAGE, True),
        3: ("schema_url", _STRING, False),
    },
    "opentelemetry.proto.resource.v1.Resource": {
        1: ("attributes", _MESSAGE, True),
        2: ("dropped_attributes_count", _UINT32, False),
        3: ("entity_refs", _MESSAGE, True),  # declined
    },
    "opentelemetry.proto.trace.v1.ScopeSpans": {
        1: ("scope", _MESSAGE, False),
        2: ("spans", _MESSAGE, True),
        3: ("schema_url", _STRING, False),
    },
    "opentelemetry.proto.common.v1.InstrumentationScope": {
        1: ("name", _STRING, False),
        2: ("version", _STRING, False),
        3: ("attributes", _MESSAGE, True),
        4: ("dropped_attributes_count", _UINT32, False),
    },
    "opentelemetry.proto.trace.v1.Span": {
        1: ("trace_id", _BYTES, False),
        2: ("span_id", _BYTES, False),
        3: ("trace_state", _STRING, False),
        4: ("parent_span_id", _BYTES, False),
        5: ("name", _STRING, False),
        6: ("kind", _ENUM, False),
        7: ("start_time_unix_nano", _FIXED64, False),
        8: ("end_time_unix_nano", _FIXED64, False),
        9: ("attributes", _MESSAGE, True),
        10: ("dropped_attributes_count", _UINT32, False),
        11: ("events", _MESSAGE, True),
        12: ("dropped_events_count", _UINT32, False),
        13: ("links", _MESSAGE, True),
        14: ("dropped_links_count", _UINT32, False),
        15: ("status", _MESSAGE, False),
        16: ("flags", _FIXED32, False),
    },
    "opentelemetry.proto.trace.v1.Span.Event": {
        1: ("time_unix_nano", _FIXED64, False),
        2: ("name", _STRING, False),
        3: ("attributes", _MESSAGE, True),
        4: ("dropped_attributes_count", _UINT32, False),
    },
    "opentelemetry.proto.trace.v1.Span.Link": {
        1: ("trace_id", _BYTES, False),
        2: ("span_id", _BYTES, False),
        3: ("trace_state", _STRING, False),
        4: ("attributes", _MESSAGE, True),
        5: ("dropped_attributes_count", _UINT32, False),
        6: ("flags", _FIXED32, False),
    },
    "opentelemetry.proto.trace.v1.Status": {2: ("message", _STRING, False), 3: ("code", _ENUM, False)},
    "opentelemetry.proto.common.v1.KeyValue": {
        1: ("key", _STRING, False),
        2: ("value", _MESSAGE, False),
        3: ("key_strindex", _INT32, False),  # declined
    },
    "opentelemetry.proto.common.v1.AnyValue": {
        1: ("string_value", _STRING, False),
        2: ("bool_value", _BOOL, False),
        3: ("int_value", _INT64, False),
        4: ("double_value", _DOUBLE, False),
        5: ("array_value", _MESSAGE, False),
        6: ("kvlist_value", _MESSAGE, False),
        7: ("bytes_value", _BYTES, False),
        8: ("string_value_strindex", _INT32, False),  # declined
    },
    "opentelemetry.proto.common.v1.ArrayValue": {1: ("values", _MESSAGE, True)},
    "opentelemetry.proto.common.v1.KeyValueList": {1: ("values", _MESSAGE, True)},
    "opentelemetry.proto.common.v1.EntityRef": {
        1: ("schema_url", _STRING, False),
        2: ("type", _STRING, False),
        3: ("id_keys", _STRING, True),
        4: ("description_keys", _STRING, True),
    },
}


def test_the_installed_messages_are_the_ones_the_reader_knows() -> None:
    found: dict[str, dict[int, tuple[str, int, bool]]] = {}
    pending = [ExportTraceServiceRequest.DESCRIPTOR]
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name in found:
            continue
        found[descriptor.full_name] = {f.number: (f.name, f.type, f.is_repeated) for f in descriptor.fields}
        pending.extend(f.message_type for f in descriptor.fields if f.message_type is not None)
    assert found == KNOWN


def by_protobuf(body: bytes) -> Any:
    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    return from_message(message)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
_SCALAR = st.one_of(
    st.builds(lambda v: AnyValue(string_value=v), _TEXT),
    st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
    st.builds(lambda v: AnyValue(int_value=v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: AnyValue(double_value=v), st.floats(allow_nan=False)),
    st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=6)),
    st.just(AnyValue()),
)


def _array(items: list[AnyValue]) -> AnyValue:
    value = AnyValue()
    value.array_value.values.extend(items)
    return value


def _kvlist(items: list[KeyValue]) -> AnyValue:
    value = AnyValue()
    value.kvlist_value.values.extend(items)
    return value


_ANY = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(_array),
        st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), _TEXT, inner), max_size=3).map(_kvlist),
    ),
    max_leaves=6,
)
_KEY_VALUE = st.one_of(
    st.builds(lambda k, v: KeyValue(key=k, value=v), st.sampled_from(["a", "b", "gen_ai.x", ""]) | _TEXT, _ANY),
    st.builds(lambda k: KeyValue(key=k), _TEXT),  # no value
)
_ATTRIBUTES = st.lists(_KEY_VALUE, max_size=4)
_INT32 = st.integers(-(2**31), 2**31 - 1)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    message = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_spans = message.resource_spans.add()
        if draw(st.booleans()):
            resource_spans.resource.attributes.extend(draw(_ATTRIBUTES))
            resource_spans.resource.dropped_attributes_count = draw(st.integers(0, 2**32 - 1))
        resource_spans.schema_url = draw(_TEXT)
        for _ in range(draw(st.integers(0, 2))):
            scope_spans = resource_spans.scope_spans.add()
            if draw(st.booleans()):
                scope_spans.scope.name, scope_spans.scope.version = draw(_TEXT), draw(_TEXT)
                scope_spans.scope.attributes.extend(draw(_ATTRIBUTES))
            scope_spans.schema_url = draw(_TEXT)
            for _ in range(draw(st.integers(0, 3))):
                span = scope_spans.spans.add()
                span.trace_id, span.span_id = draw(st.binary(max_size=17)), draw(st.binary(max_size=9))
                span.parent_span_id, span.trace_state, span.name = draw(st.binary(max_size=9)), draw(_TEXT), draw(_TEXT)
                span.kind = draw(_INT32)
                span.start_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                span.end_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                span.flags = draw(st.integers(0, 2**32 - 1))
                span.dropped_attributes_count = draw(st.integers(0, 9))
                span.attributes.extend(draw(_ATTRIBUTES))
                for _ in range(draw(st.integers(0, 2))):
                    event = span.events.add(time_unix_nano=draw(st.integers(0, 2**64 - 1)), name=draw(_TEXT))
                    event.attributes.extend(draw(_ATTRIBUTES))
                for _ in range(draw(st.integers(0, 2))):
                    link = span.links.add(trace_id=draw(st.binary(max_size=16)), span_id=draw(st.binary(max_size=8)))
                    link.trace_state, link.flags = draw(_TEXT), draw(st.integers(0, 2**32 - 1))
                    link.attributes.extend(draw(_ATTRIBUTES))
                if draw(st.booleans()):
                    span.status.code, span.status.message = draw(_INT32), draw(_TEXT)
    return message.SerializeToString()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_random_requests_read_as_protobuf_reads_them(body: bytes) -> None:
    read_in_c = read(body)
    assert read_in_c is not None  # protobuf wrote it: nothing to decline
    assert read_in_c == by_protobuf(body)
    spans = [span for _, scopes in read_in_c for _, _, _, spans in scopes for span in spans]
    assert all(type(span) is Span for span in spans)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.randoms(use_true_random=False))
def test_damaged_requests_are_read_as_protobuf_reads_them_or_declined(body: bytes, rng: random.Random) -> None:
    damaged = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(damaged) + 1)
        action = rng.choice(("flip", "cut", "insert"))
        if action == "flip" and at < len(damaged):
            damaged[at] = rng.randrange(256)
        elif action == "cut":
            del damaged[at : at + rng.randint(1, 8)]
        else:
            damaged[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    read_in_c = read(bytes(damaged))
    try:
        expected = by_protobuf(bytes(damaged))
    except DecodeError:
        assert read_in_c is None
        return
    assert read_in_c is None or read_in_c == expected


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _span_with(*fields: bytes) -> bytes:
    """A request of one span whose encoding ends with these raw fields."""
    message = ExportTraceServiceRequest()
    message.resource_spans.add().scope_spans.add().spans.add(name="s", trace_id=b"t" * 16)
    span = message.resource_spans[0].scope_spans[0].spans[0].SerializeToString() + b"".join(fields)
    scope = b"\x12" + _varint(len(span)) + span
    resource = b"\x12" + _varint(len(scope)) + scope
    return b"\x0a" + _varint(len(resource)) + resource


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _nested(levels: int) -> bytes:
    """A request whose one attribute nests `levels` ArrayValues (written by hand: protobuf refuses to build it)."""
    value = AnyValue(string_value="x").SerializeToString()
    for _ in range(levels):
        array = b"\x0a" + _varint(len(value)) + value  # ArrayValue.values
        value = b"\x2a" + _varint(len(array)) + array  # AnyValue.array_value
    key_value = b"\x0a\x01k\x12" + _varint(len(value)) + value
    return _span_with(_field(9, 2, _varint(len(key_value)) + key_value))


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_span_with(_field(5, 2, b"\x01z")), "the name again: protobuf keeps the last"),
        (_span_with(_field(15, 2, b"\x02\x12\x00"), _field(15, 2, b"\x02\x18\x02")), "status twice: merged"),
        (_span_with(_field(6, 2, b"\x00")), "kind as a string: an unknown field to protobuf"),
        (_span_with(_field(99, 0, b"\x01")), "a field of a newer protocol"),
        (_span_with(_field(9, 2, b"\x07\x12\x05\x0a\x01a\x10\x01")), "an AnyValue with two members"),
        (_span_with(_field(9, 2, b"\x05\x12\x03\x40\x80\x01")), "string_value_strindex"),
        (_span_with(_field(9, 2, b"\x03\x18\x80\x01")), "key_strindex"),
        (_nested(40), "deeper than the reader goes, not than protobuf does"),
    ],
)
def test_what_the_reader_declines_protobuf_reads(body: bytes, why: str) -> None:
    assert read(body) is None, why
    assert parse(body, Encoding.PROTOBUF) == by_protobuf(body)


@pytest.mark.parametrize(
    "body",
    [
        _span_with(_field(5, 2, b"\x02\xc3\x28")),  # a name that is not UTF-8
        _span_with(_field(5, 2, b"\x05ab")),  # a length past the end
        _nested(60),  # deeper than protobuf reads
        b"\x0a\x05\x12\x03\x12\x01",  # truncated
    ],
)
def test_what_protobuf_refuses_the_reader_declines_and_the_request_is_a_400(body: bytes) -> None:
    assert read(body) is None
    with pytest.raises(ApiError) as refused:
        parse(body, Encoding.PROTOBUF)
    assert refused.value.status == 400


def test_nesting_the_reader_goes_to_is_read_as_protobuf_reads_it() -> None:
    body = _nested(29)  # 63 messages deep, within MAX_DEPTH
    assert read(body) is not None
    assert read(body) == by_protobuf(body)
