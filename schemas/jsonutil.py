"""JSON with orjson speed and full Unicode fidelity.

orjson rejects lone surrogates (`"\\ud800"`), which the LangSmith SDK can send and which must round-trip
(protocol §5.3: every code point). Both directions fall back to the standard library for those rare
documents; `dumps` then escapes non-ASCII so the bytes are always valid UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


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
