"""`runs.row_meta`: a run's returned columns other than its sort key, as one JSON array that ClickHouse computes
at insert (migration 0070), for reads of scattered runs.

A read of a few runs spread over the table (the page of a selective filter) decompresses one granule of every
column it selects for each run, and that per-granule cost, not the bytes, is what such a read spends: measured on
1M runs, the 58 runs of a metadata filter took 35 ms to read through the 34 returned columns and 21 ms through
`row_meta`, the sort key and the payloads. Reads of contiguous runs (a trace, the newest runs of a project) read
few granules per column and keep the columns. Parts written before the migration compute the array when read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from schemas import jsonutil
from storage.runs import from_ticks


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


def _time(micros: int | str | None) -> datetime | None:
    """DateTime64(6) as microseconds since the epoch (64-bit integers may be quoted, per the format settings)."""
    return None if micros is None else from_ticks(int(micros))


def _same(value: Any) -> Any:
    return value


# (column, how to turn its JSON value into what the driver returns for the column), in the array's order. The
# migration's expression must list the same columns in this order; tests/unit/test_row_meta.py checks it.
_DECODERS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("trace_id", uuid.UUID),
    ("parent_run_id", _uuid),
    ("parent_run_ids", lambda ids: [uuid.UUID(i) for i in ids]),
    ("dotted_order", _same),
    ("is_root", _same),
    ("name", _same),
    ("run_type", _same),
    ("status", _same),
    ("end_time", _time),
    ("first_token_time", _time),
    ("error", _same),
    ("payload_refs", _same),
    ("attachments", _same),
    ("tags", _same),
    ("thread_id", _same),
    ("reference_example_id", _uuid),
    ("prompt_tokens", int),
    ("completion_tokens", int),
    ("total_tokens", int),
    ("prompt_cost", _same),  # NaN and infinities read back as None: JSON has no such numbers, nor do responses
    ("completion_cost", _same),
    ("total_cost", _same),
    ("prompt_token_details", _same),
    ("completion_token_details", _same),
    ("prompt_cost_details", _same),
    ("completion_cost_details", _same),
)
COLUMNS = tuple(name for name, _ in _DECODERS)
_TIMES = frozenset({"end_time", "first_token_time"})
# The migration's expression, as ClickHouse reports it back (system.columns.default_expression).
EXPRESSION = "toJSONString(tuple({}))".format(
    ", ".join(f"toUnixTimestamp64Micro({c})" if c in _TIMES else c for c in COLUMNS)
)


def select(columns: tuple[str, ...]) -> tuple[str, ...]:
    """`columns` with those in `row_meta` read through it, when it holds all of them (else as they are)."""
    if not set(COLUMNS) <= set(columns):
        return columns
    return (*(c for c in columns if c not in COLUMNS), "row_meta")


def expand(row: dict[str, Any]) -> None:
    """Replaces a row's `row_meta` with the columns it holds, typed as the driver types them."""
    text = row.pop("row_meta", None)
    if text is None:
        return
    for (name, decode), value in zip(_DECODERS, jsonutil.loads(text), strict=True):
        row[name] = decode(value)
