"""Feedback as the SDK sends it (protocol §8), validated into the stored form.

Categorical feedback keeps its label in `value`, numeric feedback its number in `score`. `value` and
`correction` may be any JSON and are stored as JSON text; every field nests at most `jsonutil.MAX_NESTING` levels
as run payloads do (deeper ones fail to be written, or to be read back).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from schemas.errors import ApiError
from schemas.jsonutil import members_within_nesting
from schemas.times import as_utc

SOURCE_TYPES = frozenset({"api", "model", "app"})
MAX_KEY_CHARS = 1024
# The fields PATCH /feedback/{id} changes; `null` clears them (protocol §8.2).
PATCHABLE = ("score", "value", "comment", "correction", "feedback_config", "extra")


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, f"feedback {field} {message}", detail={"field": field})


def _uuid(value: Any, field: str) -> uuid.UUID | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise _invalid(field, f"is not a valid UUID: {value!r:.60}") from None


def _time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))
    except ValueError:
        raise _invalid(field, f"is not an ISO 8601 timestamp: {value!r:.60}") from None


def source_type(value: Any) -> str:
    """`api`, `model`, `app`; also `FeedbackSourceType.API`, the SDK's str() of its enum (protocol §1.4)."""
    text = str(value or "api").rsplit(".", 1)[-1].lower()
    if text not in SOURCE_TYPES:
        raise _invalid("feedback_source.type", f"must be one of {sorted(SOURCE_TYPES)}, got {value!r:.40}")
    return text


def score_of(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float) and math.isfinite(value):
        return float(value)
    raise _invalid("score", "must be a finite number or a boolean")


def _text(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _invalid(field, "must be a string or null")


def _object(value: Any, field: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise _invalid(field, "must be a JSON object or null")


def key_of(value: Any, field: str = "key") -> str:
    """The feedback key; `field` names it where it is sent under another name (a token's `feedback_key`)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_CHARS:
        raise _invalid(field, f"is required and must be a non-empty string of at most {MAX_KEY_CHARS} characters")
    return value


def config_of(value: Any) -> dict[str, Any] | None:
    return _object(value, "feedback_config")


def validate_patch(changes: Any) -> dict[str, Any]:
    """The PATCH /feedback/{id} fields present in `changes`, checked like a new item's; others are ignored."""
    if not isinstance(changes, dict):
        raise _invalid("body", "must be a JSON object")
    members_within_nesting(changes)
    checks: dict[str, Callable[[Any], Any]] = {
        "score": score_of,
        "comment": lambda v: _text(v, "comment"),
        "feedback_config": config_of,
    }
    return {key: checks[key](changes[key]) if key in checks else changes[key] for key in PATCHABLE if key in changes}


def validate_feedback(item: Any) -> dict[str, Any]:
    """The stored form of one feedback item, or 422 naming the field. Pure: the ingest calls it at request
    time, so a bad `feedback.<id>` part rejects its request before the ack."""
    if not isinstance(item, dict):
        raise _invalid("body", "must be a JSON object")
    members_within_nesting(item)
    key = key_of(item.get("key"))
    source = _object(item.get("feedback_source"), "feedback_source") or {}
    now = datetime.now(UTC)
    created = _time(item.get("created_at"), "created_at") or now
    return {
        "id": _uuid(item.get("id"), "id") or uuid.uuid4(),
        "run_id": _uuid(item.get("run_id"), "run_id"),
        "trace_id": _uuid(item.get("trace_id"), "trace_id"),
        "session_id": _uuid(item.get("session_id") or item.get("project_id"), "session_id"),
        "key": key,
        "score": score_of(item.get("score")),
        "value": item.get("value"),
        "comment": _text(item.get("comment"), "comment"),
        "correction": item.get("correction"),
        "feedback_source": {
            "type": source_type(source.get("type")),
            "metadata": _object(source.get("metadata"), "feedback_source.metadata") or {},
            "user_id": _text(source.get("user_id"), "feedback_source.user_id"),
            "user_name": _text(source.get("user_name"), "feedback_source.user_name"),
        },
        "feedback_config": config_of(item.get("feedback_config")),
        "extra": item.get("extra"),
        "error": bool(item.get("error")),
        "comparative_experiment_id": _uuid(item.get("comparative_experiment_id"), "comparative_experiment_id"),
        "feedback_group_id": _uuid(item.get("feedback_group_id"), "feedback_group_id"),
        "start_time": _time(item.get("start_time"), "start_time"),
        "created_at": created,
        "modified_at": _time(item.get("modified_at"), "modified_at") or created,
    }
