"""Validation and normalisation of run fields, at request time, so that bad input is rejected before the ack
and everything spooled is already well-formed (the batcher never meets a value it cannot store)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas import ApiError
from schemas.runs import RUN_TYPES, OpKind, RunOp

_UUID_FIELDS = ("trace_id", "parent_run_id", "session_id", "reference_example_id")
_TIME_FIELDS = ("start_time", "end_time")
_DICT_FIELDS = ("inputs", "outputs", "extra", "serialized")
_STRING_FIELDS = ("name", "dotted_order", "session_name")
KNOWN_FIELDS = frozenset(
    {"id", "run_type", "tags", "events", "error", *_UUID_FIELDS, *_TIME_FIELDS, *_DICT_FIELDS, *_STRING_FIELDS}
)


def invalid(part: str, field: str, message: str) -> ApiError:
    return ApiError(422, f"{part}: {field} {message}", detail={"part": part, "field": field})


def parse_uuid(value: Any, part: str, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise invalid(part, field, f"is not a valid UUID: {value!r:.80}")


def parse_time(value: Any, part: str, field: str) -> datetime:
    """ISO 8601; naive timestamps are UTC (protocol §5.3)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise invalid(part, field, f"is not an ISO 8601 timestamp: {value!r:.80}")


def format_time(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def normalise(kind: OpKind, run_id: Any, fields: dict[str, Any], part: str) -> RunOp:
    """A validated RunOp. `None` values are dropped: in a patch they mean "unchanged", in a post "absent"."""
    if not isinstance(fields, dict):
        raise invalid(part, "body", "must be a JSON object")
    rid = parse_uuid(run_id if run_id is not None else fields.get("id"), part, "id")
    if "id" in fields and fields["id"] is not None and parse_uuid(fields["id"], part, "id") != rid:
        raise invalid(part, "id", f"does not match the run id {rid} in the part name or path")
    out: dict[str, Any] = {"id": str(rid)}
    for key, value in fields.items():
        if value is None or key not in KNOWN_FIELDS or key == "id":
            continue
        if key in _UUID_FIELDS:
            out[key] = str(parse_uuid(value, part, key))
        elif key in _TIME_FIELDS:
            out[key] = format_time(parse_time(value, part, key))
        elif key in _DICT_FIELDS:
            if not isinstance(value, dict):
                raise invalid(part, key, "must be a JSON object")
            out[key] = value
        elif key in _STRING_FIELDS:
            if not isinstance(value, str):
                raise invalid(part, key, "must be a string")
            out[key] = value
        elif key == "run_type":
            if value not in RUN_TYPES:
                raise invalid(part, key, f"must be one of {sorted(RUN_TYPES)}, got {value!r:.40}")
            out[key] = value
        elif key == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise invalid(part, key, "must be a list of strings")
            out[key] = value
        elif key == "events":
            if not isinstance(value, list):
                raise invalid(part, key, "must be a JSON array")
            out[key] = value
        elif key == "error":
            out[key] = value if isinstance(value, str) else str(value)
    if kind == "post":
        for required in ("name", "run_type"):
            if required not in out:
                raise invalid(part, required, "is required")
        out.setdefault("start_time", format_time(datetime.now(UTC)))
    if "dotted_order" in out:
        _check_dotted_order(out["dotted_order"], rid, part)
    return RunOp(kind=kind, run_id=rid, fields=out)


def _check_dotted_order(dotted_order: str, run_id: uuid.UUID, part: str) -> None:
    """Segments `YYYYMMDDTHHMMSSffffffZ<uuid>`, root first; the last one is this run (protocol §5.3)."""
    segments = dotted_order.split(".")
    for segment in segments:
        if len(segment) < 23 or segment[21] != "Z":
            raise invalid(part, "dotted_order", f"has a malformed segment {segment[:80]!r}")
        parse_uuid(segment[22:], part, "dotted_order")
    if uuid.UUID(segments[-1][22:]) != run_id:
        raise invalid(part, "dotted_order", "must end with the run's own id")
