"""Validation and normalisation of run fields, at request time, so that bad input is rejected before the ack
and everything spooled is already well-formed (the batcher never meets a value it cannot store)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas import ApiError
from schemas.jsonutil import MAX_NESTING, too_deep
from schemas.runs import CANONICAL_UUID, EARLIEST_TIME, LATEST_TIME, RUN_TYPES, OpKind, RunOp
from schemas.times import assume_utc

# The run fields `checked_fields` keeps, by kind: one lookup per field instead of testing it against each kind's
# tuple in turn (decoding an SDK request in one thread: 31.1 -> 30.7 µs per run).
_UUID, _TIME, _DICT, _STRING, _RUN_TYPE, _TAGS, _EVENTS, _ERROR = range(8)
_FIELD_KINDS: dict[str, int] = {
    **dict.fromkeys(("trace_id", "parent_run_id", "session_id", "reference_example_id"), _UUID),
    **dict.fromkeys(("start_time", "end_time"), _TIME),
    **dict.fromkeys(("inputs", "outputs", "extra", "serialized"), _DICT),
    **dict.fromkeys(("name", "dotted_order", "session_name"), _STRING),
    "run_type": _RUN_TYPE,
    "tags": _TAGS,
    "events": _EVENTS,
    "error": _ERROR,
}


def _openings(data: bytes) -> int:
    return data.count(b"{") + data.count(b"[")


try:  # the same count in one vectorised pass (ingest/_fresh.c), where a C compiler is available (setup.py)
    from ingest._fresh import openings
except ImportError:
    openings = _openings


def shallow(data: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether valid JSON text cannot nest deeper than `limit`: it opens at most `limit` containers, which text
    of at most 2 * limit + 1 bytes cannot (each container it opens it also closes). Counting bytes is ~50x cheaper
    than walking the parsed value, and SDK payload parts always pass it."""
    return len(data) <= 2 * limit + 1 or openings(data) <= limit


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


def uuid_text(value: Any, part: str, field: str) -> str:
    """Canonical text of a UUID. The SDK always sends the canonical form, which a regex accepts in a fraction
    of `uuid.UUID`'s time (measured: it was the largest cost of validating a run); others are parsed."""
    if isinstance(value, str) and CANONICAL_UUID.fullmatch(value):
        return value
    return str(parse_uuid(value, part, field))


def time_text(value: Any, part: str, field: str) -> str:
    """Canonical UTC ISO text; the SDK's own form (`…ffffff+00:00`) is checked and kept as it is."""
    if isinstance(value, str) and len(value) == 32 and value.endswith("+00:00"):
        try:
            _stored_range(datetime.fromisoformat(value), part, field)
        except ValueError:
            raise invalid(part, field, f"is not an ISO 8601 timestamp: {value!r:.80}") from None
        return value
    return format_time(parse_time(value, part, field))


def parse_time(value: Any, part: str, field: str) -> datetime:
    """ISO 8601; naive timestamps are UTC (protocol §5.3); within the range ClickHouse stores."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # In range first: converting a time at the edge of datetime's range to UTC can overflow it.
            return _stored_range(assume_utc(parsed), part, field).astimezone(UTC)
    raise invalid(part, field, f"is not an ISO 8601 timestamp: {value!r:.80}")


def _stored_range(value: datetime, part: str, field: str) -> datetime:
    if not EARLIEST_TIME <= value <= LATEST_TIME:
        years = f"{EARLIEST_TIME.year} and {LATEST_TIME.year}"
        raise invalid(part, field, f"must be between {years}, got {value.isoformat()}")
    return value


def format_time(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def normalise(kind: OpKind, run_id: Any, fields: dict[str, Any], part: str, *, depth_checked: bool = False) -> RunOp:
    """A validated RunOp. `None` values are dropped: in a patch they mean "unchanged", in a post "absent".
    `depth_checked`: the caller saw the JSON text and knows no value can be too deep (see `shallow`)."""
    if not isinstance(fields, dict):
        raise invalid(part, "body", "must be a JSON object")
    given = run_id if run_id is not None else fields.get("id")
    if given is None and kind == "post":
        given = str(uuid.uuid4())  # LangSmith's RunCreate makes the id optional: the server picks one
    rid_text = uuid_text(given, part, "id")
    body_id = fields.get("id")
    if body_id is not None and body_id != rid_text and uuid_text(body_id, part, "id") != rid_text:
        raise invalid(part, "id", f"does not match the run id {rid_text} in the part name or path")
    out: dict[str, Any] = {"id": rid_text}
    out.update(checked_fields(fields, part, depth_checked=depth_checked))
    if kind == "post":
        for required in ("name", "run_type"):
            if required not in out:
                raise invalid(part, required, "is required")
        if "start_time" not in out:  # not setdefault: formatting the time is ~1 µs, and clients send one
            out["start_time"] = format_time(datetime.now(UTC))
    if "dotted_order" in out:
        _check_dotted_order(out["dotted_order"], rid_text, part, (out.get("trace_id"), out.get("parent_run_id")))
    return RunOp(kind=kind, run_id=rid_text, fields=out)


def checked_fields(fields: dict[str, Any], part: str, *, depth_checked: bool = False) -> dict[str, Any]:
    """The run fields `normalise` knows, each validated and in its normal form; `id` is left to the caller (an
    OTLP span's run id is derived from its OTel ids, after its fields are checked)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        kind = _FIELD_KINDS.get(key)
        if kind is None or value is None:
            continue
        if kind == _UUID:
            out[key] = uuid_text(value, part, key)
        elif kind == _TIME:
            out[key] = time_text(value, part, key)
        elif kind == _DICT:
            if not isinstance(value, dict):
                raise invalid(part, key, "must be a JSON object")
            if not depth_checked:
                _check_nesting(value, part, key)
            out[key] = value
        elif kind == _STRING:
            if not isinstance(value, str):
                raise invalid(part, key, "must be a string")
            out[key] = value
        elif kind == _RUN_TYPE:
            if not isinstance(value, str) or value not in RUN_TYPES:  # a list or dict is unhashable
                raise invalid(part, key, f"must be one of {sorted(RUN_TYPES)}, got {value!r:.40}")
            out[key] = value
        elif kind == _TAGS:
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise invalid(part, key, "must be a list of strings")
            out[key] = value
        elif kind == _EVENTS:
            if not isinstance(value, list):
                raise invalid(part, key, "must be a JSON array")
            if not depth_checked:
                _check_nesting(value, part, key)
            out[key] = value
        else:
            out[key] = value if isinstance(value, str) else str(value)
    return out


def _check_nesting(value: Any, part: str, field: str) -> None:
    if too_deep(value):
        raise invalid(part, field, f"is nested deeper than {MAX_NESTING} levels")


def _check_dotted_order(dotted_order: str, run_id: str, part: str, checked: tuple[str | None, ...]) -> None:
    """Segments `YYYYMMDDTHHMMSSffffffZ<uuid>`, root first; the last one is this run (protocol §5.3). A segment
    naming the run, its trace or its parent (`checked`: UUIDs already validated) is not parsed again."""
    segments = dotted_order.split(".")
    for segment in segments:
        if len(segment) < 23 or segment[21] != "Z" or not segment[:8].isdigit():
            raise invalid(part, "dotted_order", f"has a malformed segment {segment[:80]!r}")
        last = segment[22:]
        if last != run_id and last not in checked:
            last = uuid_text(last, part, "dotted_order")
    if last != run_id:
        raise invalid(part, "dotted_order", "must end with the run's own id")
