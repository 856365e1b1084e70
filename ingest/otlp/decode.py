"""OTLP/HTTP request bodies (already decompressed) to an `ExportTraceServiceRequest`.

Binary protobuf is parsed as is. OTLP/JSON differs from protobuf's canonical JSON mapping in one way that
matters: trace and span ids are hex strings, not base64 (OTLP spec, "JSON Protobuf Encoding"). They are
rewritten to base64 before `json_format` parses the document; camelCase or snake_case field names, enum names
or numbers and 64-bit integers as strings or numbers are all accepted by `json_format` itself.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import Enum
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingest.otlp import values
from ingest.otlp.values import Request
from schemas import ApiError, jsonutil
from schemas.jsonutil import CONTAINERS


class Encoding(Enum):
    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf"})
_HEX = re.compile(r"[0-9a-fA-F]*")
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def encoding_of(content_type: str | None) -> Encoding:
    """The body's encoding from `Content-Type`, or 415 naming what is accepted."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _PROTOBUF_TYPES:
        return Encoding.PROTOBUF
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return Encoding.JSON
    raise ApiError(
        415,
        f"unsupported Content-Type {media or '(none)'!r}; OTLP/HTTP takes application/x-protobuf or application/json",
        detail={"content_type": media},
    )


def parse(body: bytes, encoding: Encoding) -> Request:
    """The request's resource spans as plain values, or 400 when the body is not an ExportTraceServiceRequest in
    that encoding. Protobuf is read in C where it can be (`values.read`)."""
    request = ExportTraceServiceRequest()
    if encoding is Encoding.PROTOBUF:
        read = values.read(body)
        if read is not None:
            return read
        try:
            request.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise ApiError(400, f"body is not a protobuf ExportTraceServiceRequest: {exc}") from None
        return values.from_message(request)
    try:
        document = jsonutil.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "body must be a JSON object (an OTLP ExportTraceServiceRequest)")
    try:
        json_format.ParseDict(_hex_ids_to_base64(document), request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise ApiError(400, f"body is not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None
    return values.from_message(request)


def _hex_ids_to_base64(node: Any) -> Any:
    """Rewrites every id field in place. A value that is not hex of an id's length is left for protobuf's
    base64 parser, so documents written by protobuf's own JSON printer are accepted too."""
    if isinstance(node, dict):
        for key, item in node.items():
            if key in _ID_KEYS and isinstance(item, str):
                node[key] = _id_to_base64(item)
            elif isinstance(item, CONTAINERS):
                _hex_ids_to_base64(item)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, CONTAINERS):
                _hex_ids_to_base64(item)
    return node


def _id_to_base64(text: str) -> str:
    if len(text) in (16, 32) and _HEX.fullmatch(text):
        try:
            return base64.b64encode(binascii.unhexlify(text)).decode()
        except binascii.Error:
            return text
    return text
