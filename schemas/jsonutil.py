"""JSON with orjson speed and full Unicode fidelity.

orjson rejects lone surrogates (`"\\ud800"`), which the LangSmith SDK can send and which must round-trip
(protocol §5.3: every code point). Both directions fall back to the standard library for those rare
documents; `dumps` then escapes non-ASCII so the bytes are always valid UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TypeVar

import orjson

from schemas.errors import ApiError

T = TypeVar("T")

_OPTIONS = orjson.OPT_NON_STR_KEYS
# Nesting of a stored JSON value (run payloads, feedback values). Deeper documents parse (orjson reads 1,024
# levels) but cannot be stored: orjson writes at most 254 levels and the stdlib fallback overflows the stack,
# which would fail the batch in the batcher after the ack, or every later read. Real payloads nest a few dozen
# levels.
MAX_NESTING = 200
# JSON containers, for isinstance: a tuple, as `dict | list` is built anew at every evaluation (4x slower).
CONTAINERS = (dict, list)


def loads(data: bytes | str) -> Any:
    """Raises ValueError for anything that is not JSON, including nesting deeper than the parsers allow
    (orjson stops at 1024 levels, the stdlib at the interpreter's recursion limit)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)  # raises json.JSONDecodeError (a ValueError) on truly malformed input
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def loads_with_text(data: bytes) -> tuple[Any, bytes | None]:
    """`loads`, and `data` itself when it can be stored as the value's JSON text as sent: strict JSON (orjson
    reads it), so valid UTF-8 without lone surrogates. Saves dumping a payload again that arrived as text."""
    try:
        return orjson.loads(data), data
    except orjson.JSONDecodeError:
        return loads(data), None


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether `value` has more than `limit` levels of nested dicts/lists; level by level, no recursion."""
    level = [value] if isinstance(value, CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v) if isinstance(c, CONTAINERS)]
    return False


def within_nesting(value: T, field: str) -> T:
    """`value`, or a 422 naming `field` when it nests deeper than MAX_NESTING: such a value parses, but storing it
    fails (after the ack, or on every read), and so does str() or repr() of it, which error messages use."""
    if too_deep(value):
        raise ApiError(422, f"{field} is nested deeper than {MAX_NESTING} levels", detail={"field": field})
    return value


def members_within_nesting(document: T) -> T:
    """`document` with each member checked by `within_nesting`, named by its key (`<index>.<key>` in an array of
    objects): one check for a whole request body, so that no route meets a value it cannot store or print."""
    for field, value in _members(document):
        within_nesting(value, field)
    return document


def _members(document: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(document, dict):
        yield from ((str(key), value) for key, value in document.items())
    elif isinstance(document, list):
        for index, item in enumerate(document):
            if isinstance(item, dict):
                yield from ((f"{index}.{key}", value) for key, value in item.items())
            else:
                yield str(index), item


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_OPTIONS, default=_default)
    except TypeError:
        return json.dumps(value, ensure_ascii=True, default=_default, separators=(",", ":")).encode()


def dumps_str(value: Any) -> str:
    return dumps(value).decode()


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
