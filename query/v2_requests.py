"""What the v2 routes of the generated SDK client share: strict bodies whose unsupported options are refused by
name, and the start-time window that their cursors carry.

v2 bodies refuse unknown members instead of ignoring them, as v1 does. Options that tracehouse cannot honour are
refused too, with a 422 that names the option. The request is well formed, but no retry will make it succeed. A
501 would be retried twice by the generated client, as every 5xx is, and would count as a server fault.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import ApiError, jsonutil
from schemas.runs import EARLIEST_TIME, LATEST_TIME

DEFAULT_WINDOW = timedelta(days=1)
# Options that several v2 bodies have and tracehouse refuses, with why.
NEEDS_A_MODEL = {
    "ai_search": "natural-language search needs a language model, which tracehouse does not run",
    "sem_filter": "semantic filters need a language model, which tracehouse does not run",
}
FEEDBACK_MODIFIED_AT = {
    "min_feedback_modified_at": "feedback conditions cannot be bounded by when the feedback was modified",
    "max_feedback_modified_at": "feedback conditions cannot be bounded by when the feedback was modified",
}
_TICK = timedelta(microseconds=1)  # the resolution of stored start times
Body = TypeVar("Body", bound=BaseModel)


def unsupported(name: str, why: str) -> ApiError:
    return ApiError(422, f"{name} is not supported by tracehouse: {why}", detail={"field": name, "unsupported": True})


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI of a JsonBody route whose body is `model` (FastAPI documents only the bodies it parses)."""
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}}


def parse_body(model: type[Body], body: Any, refused: Mapping[str, str]) -> Body:
    """`body` as `model`. Members sent as null count as absent, as in v1. A member named in `refused` (option ->
    why) that is set is a 422, unless it is `false`, which asks for nothing that is not done anyway."""
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object")
    for name, why in refused.items():
        if body.get(name) not in (None, False):
            raise unsupported(name, why)
    try:
        return model.model_validate({k: v for k, v in body.items() if v is not None and k not in refused})
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        raise ApiError(422, f"invalid {name}: {first['msg']}", detail={"field": name}) from None


@dataclass(frozen=True, slots=True)
class Window:
    """The start times a query covers, both bounds inclusive. Its cursors carry it, so that the defaults (the last
    day until now) do not slide while a client pages through: a run near the lower bound would drop out between
    two pages."""

    start: datetime
    end: datetime


def resolve_window(
    min_start: datetime | None,
    max_start: datetime | None,
    pinned: Window | None,
    now: datetime,
    *,
    max_exclusive: bool = False,
) -> Window:
    """The bounds given, else the cursor's (`pinned`), else the last day until `now`. `max_exclusive`: the route
    documents `max_start_time` as an exclusive bound (traces, threads), so that adjacent windows do not
    overlap."""
    start = min_start or (pinned.start if pinned else now - DEFAULT_WINDOW)
    if max_start is not None:
        end = max_start - _TICK if max_exclusive else max_start
    else:
        end = pinned.end if pinned else now
    if start > end:
        default = "" if min_start or pinned else " (by default a day before now)"
        relation = "not before" if max_exclusive and max_start is not None else "after"
        given_end = (max_start or end).isoformat()
        raise ApiError(
            422,
            f"min_start_time {start.isoformat()}{default} is {relation} max_start_time {given_end}",
            detail={"field": "min_start_time"},
        )
    return Window(start, end)


def encode_cursor(after: str, window: Window) -> str:
    """`after`, the position of the page's last item in the route's own terms, with the window."""
    return _pack({"after": after, "from": window.start.isoformat(), "to": window.end.isoformat()})


def decode_cursor(text: str) -> tuple[str, Window]:
    raw = _unpack(text)
    try:
        pinned = Window(datetime.fromisoformat(raw["from"]), datetime.fromisoformat(raw["to"]))
        if not all(t.tzinfo is not None and EARLIEST_TIME <= t <= LATEST_TIME for t in (pinned.start, pinned.end)):
            raise ValueError("not a cursor")
    except (ValueError, KeyError, TypeError):
        raise invalid_cursor() from None
    return raw["after"], pinned


def encode_position(after: str) -> str:
    """A cursor without a window, for lists whose items are not bounded by a start time (projects)."""
    return _pack({"after": after})


def decode_position(text: str) -> str:
    return _unpack(text)["after"]


def _pack(raw: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(jsonutil.dumps(raw)).decode().rstrip("=")


def _unpack(text: str) -> dict[str, Any]:
    """A cursor's members, of which `after` is a string."""
    try:
        raw = jsonutil.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(raw, dict) or not isinstance(raw.get("after"), str):
            raise ValueError("not a cursor")
    except (ValueError, TypeError):
        raise invalid_cursor() from None
    return raw


def invalid_cursor() -> ApiError:
    return ApiError(400, "invalid cursor: pass back a cursor from a previous response", detail={"field": "cursor"})
