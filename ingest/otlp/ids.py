"""OTel ids as run UUIDs.

A trace id (16 bytes) is the trace UUID as is, and a trace's root span gets the trace UUID as its run id (the
LangSmith invariant `trace_id == root run id`). Any other span gets a UUID that a child can compute from its
parent span id alone: the 8 span-id bytes followed by 8 bytes of a hash of (trace id, span id), so that run ids
stay unique across traces and the span id can still be read off the first half of the run id.
"""

from __future__ import annotations

import hashlib
import uuid

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def valid_trace_id(raw: bytes) -> bool:
    return len(raw) == 16 and raw != _ZERO_TRACE


def valid_span_id(raw: bytes) -> bool:
    return len(raw) == 8 and raw != _ZERO_SPAN


def trace_uuid(trace_id: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=trace_id)


def span_uuid(trace_id: bytes, span_id: bytes) -> uuid.UUID:
    tail = bytearray(hashlib.blake2b(trace_id + span_id, digest_size=8).digest())
    tail[0] = (tail[0] & 0x3F) | 0x80  # RFC 4122 variant, so tools that check it accept the id
    return uuid.UUID(bytes=span_id + bytes(tail))
