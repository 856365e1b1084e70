"""OTLP request decoding: protobuf and OTLP/JSON with its quirks, content types, the response encoding."""

from __future__ import annotations

import base64

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from ingest.otlp import Encoding, encode, encoding_of, parse
from ingest.otlp.values import Request, Span
from schemas import ApiError, jsonutil
from tests.otlp_payloads import request, span

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
PARENT = "eee19b7ec3c1b173"


def first_span(request: Request) -> Span:
    _, scopes = request[0]
    return scopes[0][3][0]


def test_json_ids_are_hex_and_int64_may_be_strings_or_numbers() -> None:
    body = request([span(TRACE, SPAN, "a", {"n": 5}, parent=PARENT, start_ns=1544712660000000000)])
    got = first_span(parse(body, Encoding.JSON))
    assert got.trace_id.hex() == TRACE
    assert got.span_id.hex() == SPAN
    assert got.parent_span_id.hex() == PARENT
    assert got.start_time_unix_nano == 1544712660000000000
    assert got.attributes == {"n": 5}
    numeric = body.replace(b'"1544712660000000000"', b"1544712660000000000")
    assert first_span(parse(numeric, Encoding.JSON)).start_time_unix_nano == 1544712660000000000


def test_json_accepts_base64_ids_snake_case_and_enum_numbers_and_ignores_unknown_fields() -> None:
    trace, span_id = (base64.b64encode(bytes.fromhex(x)).decode() for x in (TRACE, SPAN))
    body = jsonutil.dumps_str(
        {
            "resource_spans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": trace,
                                    "span_id": span_id,
                                    "name": "b",
                                    "kind": 3,
                                    "start_time_unix_nano": "1",
                                    "futureField": 1,
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    got = first_span(parse(body.encode(), Encoding.JSON))
    assert (got.trace_id.hex(), got.span_id.hex(), got.kind) == (TRACE, SPAN, 3)


def test_protobuf_round_trip() -> None:
    message = ExportTraceServiceRequest()
    json_format.ParseDict(
        {
            "resourceSpans": [
                {"scopeSpans": [{"spans": [{"name": "c", "traceId": base64.b64encode(b"x" * 16).decode()}]}]}
            ]
        },
        message,
    )
    assert first_span(parse(message.SerializeToString(), Encoding.PROTOBUF)).name == "c"


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (b"\xff\xff\xff", Encoding.PROTOBUF),
        (b"{not json", Encoding.JSON),
        (b"[1, 2]", Encoding.JSON),
        (b'{"resourceSpans": 5}', Encoding.JSON),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz!"}]}]}]}', Encoding.JSON),
    ],
)
def test_undecodable_bodies_are_400(body: bytes, encoding: Encoding) -> None:
    with pytest.raises(ApiError) as caught:
        parse(body, encoding)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-protobuf", Encoding.PROTOBUF),
        ("application/protobuf", Encoding.PROTOBUF),
        ("Application/JSON; charset=utf-8", Encoding.JSON),
    ],
)
def test_content_types(content_type: str, expected: Encoding) -> None:
    assert encoding_of(content_type) is expected


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", "multipart/form-data; boundary=x", "application/grpc"]
)
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        encoding_of(content_type)
    assert caught.value.status == 415


def test_response_in_the_request_encoding() -> None:
    assert encode(Encoding.PROTOBUF) == b""
    assert encode(Encoding.JSON) == b"{}"
    partial = ExportTraceServiceResponse()
    partial.ParseFromString(encode(Encoding.PROTOBUF, rejected=2, message="bad ids"))
    assert (partial.partial_success.rejected_spans, partial.partial_success.error_message) == (2, "bad ids")
    as_json = json_format.Parse(encode(Encoding.JSON, rejected=3, message="m"), ExportTraceServiceResponse())
    assert as_json.partial_success.rejected_spans == 3
