"""`ExportTraceServiceResponse` in the encoding of the request (OTLP/HTTP spec)."""

from __future__ import annotations

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ingest.otlp.decode import Encoding


def encode(encoding: Encoding, *, rejected: int = 0, message: str = "") -> bytes:
    """Empty on full success; `partial_success` with the count and a message when spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding is Encoding.PROTOBUF:
        return response.SerializeToString()
    return json_format.MessageToJson(response, indent=None).encode()
