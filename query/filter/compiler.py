"""AST -> ClickHouse SQL condition over the `runs` table. Every user value becomes a bound parameter.

Semantics the oracle tests pin down:
* Every comparison is a plain boolean: a NULL column (a pending run's `end_time`, an unknown cost) compares
  false, and `neq(f, v)` is exactly `not(eq(f, v))`, so `not(...)` never meets SQL's three-valued logic.
* Key/value pairs (`metadata_key`/`metadata_value`, `input_*`, `output_*`, `feedback_key`/`feedback_score`/
  `feedback_value`) written as siblings in one `and(...)` describe the same entry. Within such a group
  `neq(<family>_key, k)` means "has no entry k"; the other conditions must hold for one entry together
  (there `neq` on a value means "that entry's value differs"); a group made only of `neq` on values means
  "no entry has that value". A pair condition on its own is a group of one.
* `search("text")` splits the text like the full-text index does and needs every word as a whole token in the
  run's name, error, metadata values and input/output values (any order, ASCII case-insensitive).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from query.filter.ast import And, Compare, Literal, Node, Not, Or, Search
from query.filter.lexer import FilterError
from schemas.times import as_utc

LATENCY_SQL = "(toUnixTimestamp64Micro(end_time) - toUnixTimestamp64Micro(start_time)) / 1e6"

# The expression the full-text index of migration 0010 is built on; `search()` must use it verbatim.
SEARCH_SQL = (
    "lower(concat(name, ' ', ifNull(error, ''), ' ', arrayStringConcat(mapValues(metadata), ' '), ' ', "
    "arrayStringConcat(mapValues(inputs_kv), ' '), ' ', arrayStringConcat(mapValues(outputs_kv), ' ')))"
)

# The expression the metadata index of migration 0080 is built on: each value, and each entry as `key=value`.
METADATA_ENTRIES_SQL = (
    "arrayConcat(mapValues(metadata), arrayMap((k, v) -> concat(k, '=', v), mapKeys(metadata), mapValues(metadata)))"
)


@dataclass(frozen=True, slots=True)
class Field:
    sql: str
    kind: str  # uuid | string | time | number | bool | tags | payload
    nullable: bool = False


FIELDS: dict[str, Field] = {
    "id": Field("id", "uuid"),
    "trace_id": Field("trace_id", "uuid"),
    "session_id": Field("session_id", "uuid"),
    "parent_run_id": Field("parent_run_id", "uuid", nullable=True),
    "reference_example_id": Field("reference_example_id", "uuid", nullable=True),
    "name": Field("name", "string"),
    "run_type": Field("run_type", "string"),
    "status": Field("status", "string"),
    "thread_id": Field("thread_id", "string"),
    "dotted_order": Field("dotted_order", "string"),
    "error": Field("error", "string", nullable=True),
    "start_time": Field("start_time", "time"),
    "end_time": Field("end_time", "time", nullable=True),
    "first_token_time": Field("first_token_time", "time", nullable=True),
    "latency": Field(LATENCY_SQL, "latency", nullable=True),
    "prompt_tokens": Field("prompt_tokens", "number"),
    "completion_tokens": Field("completion_tokens", "number"),
    "total_tokens": Field("total_tokens", "number"),
    "prompt_cost": Field("prompt_cost", "number", nullable=True),
    "completion_cost": Field("completion_cost", "number", nullable=True),
    "total_cost": Field("total_cost", "number", nullable=True),
    "execution_order": Field("(length(parent_run_ids) + 1)", "number"),
    "is_root": Field("is_root", "bool"),
    "tags": Field("tags", "tags"),
    "inputs": Field("inputs", "payload"),
    "outputs": Field("outputs", "payload", nullable=True),
}

# Pair families: field name -> (family, role). Roles: key, value, score.
_PAIRS: dict[str, tuple[str, str]] = {
    "metadata_key": ("metadata", "key"),
    "metadata_value": ("metadata", "value"),
    "input_key": ("inputs_kv", "key"),
    "input_value": ("inputs_kv", "value"),
    "output_key": ("outputs_kv", "key"),
    "output_value": ("outputs_kv", "value"),
    "feedback_key": ("feedback", "key"),
    "feedback_score": ("feedback", "score"),
    "feedback_value": ("feedback", "value"),
}
_ORDERING = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIME_TYPE = "DateTime64(6, 'UTC')"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# ClickHouse's splitByNonAlpha: separators are the ASCII characters that are not letters or digits.
_TOKEN_SEPARATORS = re.compile(r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")


class Params:
    """Collects bound parameters; `add` returns the `{name:Type}` placeholder to put in the SQL."""

    def __init__(self, prefix: str = "p") -> None:
        self.prefix = prefix
        self.values: dict[str, Any] = {}

    def add(self, value: Any, ch_type: str) -> str:
        name = f"{self.prefix}{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{ch_type}}}"


def search_tokens(text: str) -> list[str]:
    """The words `search(text)` looks for, split and lower-cased exactly as the full-text index does."""
    return [t for t in _TOKEN_SEPARATORS.split(text.translate(_ASCII_LOWER)) if t]


def compile_filter(node: Node, params: Params, *, tenant: str = "{tenant:UUID}") -> str:
    """SQL for `node` over a `runs` row; `tenant` is the placeholder the feedback subquery is scoped with."""
    return _Compiler(params, tenant).node(node)


class _Compiler:
    def __init__(self, params: Params, tenant: str) -> None:
        self.params = params
        self.tenant = tenant

    def node(self, node: Node) -> str:
        if isinstance(node, And):
            return self._and(node.items)
        if isinstance(node, Or):
            return "(" + " OR ".join(self.node(item) for item in node.items) + ")"
        if isinstance(node, Not):
            return f"NOT ({self.node(node.item)})"
        if isinstance(node, Search):
            return self.search(node)
        if node.field in _PAIRS:
            return self._pair_group(_PAIRS[node.field][0], [node])
        if node.field == "metadata" and node.op == "has":
            return self._has_metadata(node)
        return self.compare(node)

    def _and(self, items: tuple[Node, ...]) -> str:
        parts: list[str] = []
        groups: dict[str, list[Compare]] = {}
        for item in items:
            if isinstance(item, Compare) and item.field in _PAIRS:
                groups.setdefault(_PAIRS[item.field][0], []).append(item)
            else:
                parts.append(self.node(item))
        parts.extend(self._pair_group(family, group) for family, group in groups.items())
        return "(" + " AND ".join(parts) + ")"

    # -- plain fields -------------------------------------------------------------------------------------

    def compare(self, node: Compare) -> str:
        field = FIELDS.get(node.field)
        if field is None:
            raise FilterError(f"unknown field {node.field!r}", node.pos)
        if node.op == "neq":
            return f"NOT {self.compare(Compare('eq', node.field, node.value, node.pos))}"
        if field.kind == "tags":
            return self._tags(node)
        if field.kind == "bool":
            if node.op != "eq":
                raise FilterError(f"{node.field} supports eq and neq only", node.pos)
            return f"({field.sql} = {int(_bool(node.value))})"
        if node.value.value is None:
            if node.op != "eq":
                raise FilterError(f"{node.op}() cannot compare with null", node.value.pos)
            return f"isNull({field.sql})" if field.nullable else "0"
        if node.op == "has":
            raise FilterError("has() applies to tags and metadata", node.pos)
        ch_type, convert = _converter(field, node)
        if node.op == "in":
            values = [convert(Literal(v, node.value.pos)) for v in _list(node.value)]
            sql = f"{field.sql} IN {self.params.add(values, f'Array({ch_type})')}"
        elif node.op == "like":
            if field.kind not in ("string", "payload"):
                raise FilterError(f"like() applies to text fields, not {node.field}", node.pos)
            sql = f"{field.sql} LIKE {self.params.add(_text(node.value), 'String')}"
        elif node.op in _ORDERING:
            if field.kind == "uuid":
                raise FilterError(f"{node.field} supports eq, neq and in", node.pos)
            sql = f"{field.sql} {_ORDERING[node.op]} {self.params.add(convert(node.value), ch_type)}"
        else:
            sql = f"{field.sql} = {self.params.add(convert(node.value), ch_type)}"
        return f"ifNull({sql}, 0)" if field.nullable else f"({sql})"

    def _tags(self, node: Compare) -> str:
        if node.op in ("eq", "has"):
            return f"has(tags, {self.params.add(_text(node.value), 'String')})"
        if node.op == "in":
            return f"hasAny(tags, {self.params.add([str(v) for v in _list(node.value)], 'Array(String)')})"
        if node.op == "like":
            return f"arrayExists(t -> t LIKE {self.params.add(_text(node.value), 'String')}, tags)"
        raise FilterError(f"tags supports has, eq, neq, in and like, not {node.op}", node.pos)

    def _has_metadata(self, node: Compare) -> str:
        raw = node.value.value
        if not isinstance(raw, str):
            raise FilterError("has(metadata, ...) takes a JSON object or a key as a string", node.value.pos)
        try:
            wanted = json.loads(raw)
        except ValueError:
            wanted = None
        if not isinstance(wanted, dict):
            return f"has(mapKeys(metadata), {self.params.add(raw, 'String')})"
        if not wanted:
            raise FilterError("has(metadata, '{}') needs at least one key", node.value.pos)
        parts = []
        for key, value in wanted.items():
            text = _kv_text(value)
            k = self.params.add(str(key), "String")
            v = self.params.add(text, "String")
            entry = self.params.add(f"{key}={text}", "String")
            parts.append(f"has({METADATA_ENTRIES_SQL}, {entry}) AND metadata[{k}] = {v}")
        return "(" + " AND ".join(parts) + ")"

    def search(self, node: Search) -> str:
        if node.field is None:
            tokens = search_tokens(node.text)
            if not tokens:
                raise FilterError("search() text has no words to look for", node.pos)
            return f"hasAllTokens({SEARCH_SQL}, {self.params.add(tokens, 'Array(String)')})"
        field = FIELDS.get(node.field)
        if field is None or field.kind not in ("string", "payload", "tags"):
            raise FilterError(f"search() applies to text fields, not {node.field!r}", node.pos)
        needle = self.params.add(node.text, "String")
        if field.kind == "tags":
            return f"arrayExists(t -> positionCaseInsensitiveUTF8(t, {needle}) > 0, tags)"
        return f"ifNull(positionCaseInsensitiveUTF8({field.sql}, {needle}) > 0, 0)"

    # -- key/value pairs ----------------------------------------------------------------------------------

    def _pair_group(self, family: str, group: list[Compare]) -> str:
        absent_keys = [c for c in group if _PAIRS[c.field][1] == "key" and c.op == "neq"]
        entry = [c for c in group if c not in absent_keys]
        parts = [self._no_entry(family, [Compare("eq", c.field, c.value, c.pos)]) for c in absent_keys]
        if entry and all(c.op == "neq" for c in entry):
            parts.extend(self._no_entry(family, [Compare("eq", c.field, c.value, c.pos)]) for c in entry)
        elif entry:
            parts.append(self._some_entry(family, entry))
        return "(" + " AND ".join(parts) + ")"

    def _no_entry(self, family: str, conditions: list[Compare]) -> str:
        if family == "feedback":
            return f"id NOT IN ({self._feedback_runs(conditions)})"
        return f"NOT {self._some_entry(family, conditions)}"

    def _some_entry(self, family: str, conditions: list[Compare]) -> str:
        if family == "feedback":
            return f"id IN ({self._feedback_runs(conditions)})"
        preds: list[str] = []
        equal: dict[str, list[tuple[Compare, str]]] = {"key": [], "value": []}  # eq conditions, their placeholders
        for c in conditions:
            role = _PAIRS[c.field][1]
            pred, value = self._entry_condition(c, "k" if role == "key" else "v", kv=True)
            preds.append(pred)
            if c.op == "eq" and role in equal:
                equal[role].append((c, value))
        hints = self._metadata_hints(equal["key"], equal["value"]) if family == "metadata" else []
        exists = f"arrayExists((k, v) -> {' AND '.join(preds)}, mapKeys({family}), mapValues({family}))"
        return "(" + " AND ".join([*hints, exists]) + ")"

    def _metadata_hints(self, keys: list[tuple[Compare, str]], values: list[tuple[Compare, str]]) -> list[str]:
        """Conditions that let the metadata indexes skip granules (the entry's own condition decides): an entry
        named by key and value is looked up as `key=value` in the entries index, a value alone as itself, a key
        alone in the bloom filter of keys."""
        if len(keys) == 1 and len(values) == 1:
            entry = f"{_kv_text(keys[0][0].value)}={_kv_text(values[0][0].value)}"
            return [f"has({METADATA_ENTRIES_SQL}, {self.params.add(entry, 'String')})"]
        return [f"has(mapKeys(metadata), {value})" for _, value in keys] + [
            f"has({METADATA_ENTRIES_SQL}, {value})" for _, value in values
        ]

    def _feedback_runs(self, conditions: list[Compare]) -> str:
        preds = []
        for c in conditions:
            role = _PAIRS[c.field][1]
            column = {"key": "key", "score": "score", "value": "value"}[role]
            preds.append(self._entry_condition(c, column, kv=False)[0])
        where = " AND ".join(preds)
        return f"SELECT run_id FROM feedback FINAL WHERE tenant_id = {self.tenant} AND {where}"

    def _entry_condition(self, c: Compare, column: str, *, kv: bool) -> tuple[str, str]:
        """One condition on a pair entry's key, value or score; returns the SQL and the bound value's placeholder."""
        if c.op == "neq":
            sql, value = self._entry_condition(Compare("eq", c.field, c.value, c.pos), column, kv=kv)
            return f"NOT {sql}", value
        role = _PAIRS[c.field][1]
        if c.op == "has":
            raise FilterError(f"has() does not apply to {c.field}", c.pos)
        if role == "score":
            if c.op in ("like", "in") or (c.value.value is None and c.op != "eq"):
                raise FilterError(f"feedback_score supports eq, neq, gt, gte, lt and lte, not {c.op}", c.pos)
            if c.value.value is None:
                return "isNull(score)", ""
            value = self.params.add(_number(c.value), "Float64")
            return f"ifNull(score {_ORDERING.get(c.op, '=')} {value}, 0)", value
        if c.op == "in":
            texts = [_kv_text(v) for v in _list(c.value)]
            if not kv and role == "value":
                texts += [json.dumps(t) for t in texts if isinstance(t, str)]
            value = self.params.add(texts, "Array(String)")
            return f"ifNull({column} IN {value}, 0)", value
        if c.op == "like":
            value = self.params.add(_text(c.value), "String")
            return f"ifNull({column} LIKE {value}, 0)", value
        if c.op in _ORDERING:
            if role == "key":
                raise FilterError(f"{c.field} supports eq, neq, in and like", c.pos)
            if isinstance(c.value.value, (int, float)) and not isinstance(c.value.value, bool):
                value = self.params.add(float(c.value.value), "Float64")
                return f"ifNull(toFloat64OrNull({column}) {_ORDERING[c.op]} {value}, 0)", value
            value = self.params.add(_text(c.value), "String")
            return f"ifNull({column} {_ORDERING[c.op]} {value}, 0)", value
        text = _kv_text(c.value.value)
        value = self.params.add(text, "String")
        if not kv and role == "value":  # feedback values may be stored as JSON text or as the plain string
            alt = self.params.add(json.dumps(text), "String")
            return f"ifNull({column} IN ({value}, {alt}), 0)", value
        return f"ifNull({column} = {value}, 0)", value


# -- literal conversion ---------------------------------------------------------------------------------------


def _converter(field: Field, node: Compare) -> tuple[str, Any]:
    kind = field.kind
    if kind == "uuid":
        return "UUID", _uuid
    if kind == "time":
        return _TIME_TYPE, _time
    if kind == "latency":
        return "Float64", _duration
    if kind == "number":
        return "Float64", _number
    return "String", _text


def _list(lit: Literal) -> list[Any]:
    if not isinstance(lit.value, list):
        raise FilterError('in() takes a list such as ["a", "b"]', lit.pos)
    if not lit.value:
        raise FilterError("in() needs at least one value", lit.pos)
    return lit.value


def _text(lit: Literal) -> str:
    value = lit.value
    if isinstance(value, list) or value is None:
        raise FilterError("expected a string", lit.pos)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kv_text(value: Any) -> str:
    """Metadata and input/output values are stored as strings as-is and JSON text otherwise."""
    if isinstance(value, Literal):
        value = value.value
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _uuid(lit: Literal) -> uuid.UUID:
    try:
        return uuid.UUID(str(lit.value))
    except ValueError:
        raise FilterError(f"{lit.value!r} is not a UUID", lit.pos) from None


def _time(lit: Literal) -> datetime:
    if not isinstance(lit.value, str):
        raise FilterError("expected an ISO 8601 timestamp string", lit.pos)
    try:
        return as_utc(datetime.fromisoformat(lit.value.strip()))
    except ValueError:
        raise FilterError(f"{lit.value!r} is not an ISO 8601 timestamp", lit.pos) from None


def _number(lit: Literal) -> float:
    value = lit.value
    if isinstance(value, bool) or value is None or isinstance(value, list):
        raise FilterError("expected a number", lit.pos)
    try:
        return float(value)
    except ValueError:
        raise FilterError(f"{value!r} is not a number", lit.pos) from None


def _duration(lit: Literal) -> float:
    """Latency in seconds: a number, or a string such as "2s", "500ms", "1.5m"."""
    if isinstance(lit.value, str):
        m = _DURATION.match(lit.value)
        if not m:
            raise FilterError(f'{lit.value!r} is not a duration such as "2s" or "500ms"', lit.pos)
        return float(m.group(1)) * _DURATION_SECONDS[(m.group(2) or "s").lower()]
    return _number(lit)


def _bool(lit: Literal) -> bool:
    value = lit.value
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise FilterError("expected true or false", lit.pos)
