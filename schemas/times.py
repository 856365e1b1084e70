"""Timestamps as the API reads them: naive ones are UTC (protocol §5.3), aware ones are converted to UTC."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


def assume_utc(value: datetime) -> datetime:
    """A naive time is UTC: the protocol's rule for clients, and what ClickHouse means by the naive times it
    returns from `DateTime64(6, 'UTC')` columns. An aware time keeps its offset: where it must be UTC, or must
    first be checked against a range (converting can overflow at datetime's edges), the caller converts."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def times_as_utc(row: dict[str, Any], keys: Iterable[str]) -> None:
    """Mark a result row's naive times (those of `keys` it holds) as the UTC they are."""
    for key in keys:
        value = row.get(key)
        if isinstance(value, datetime):
            row[key] = assume_utc(value)


def as_utc(value: datetime) -> datetime:
    """Raises ValueError, like an unparsable time, where converting overflows: an offset can move a time at the
    very start or end of datetime's range (`0001-01-01T00:00:00+00:01`) out of it, and the OverflowError that
    `astimezone` raises would otherwise surface as a 500 (tests/fuzz/test_openapi.py found one). Where a range is
    checked anyway, checking it before converting avoids the overflow too (`ingest.validate.parse_time`)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of range in UTC") from None
