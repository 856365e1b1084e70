"""Timestamps as the API reads them: naive ones are UTC (protocol §5.3), aware ones are converted to UTC."""

from __future__ import annotations

from datetime import UTC, datetime


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
