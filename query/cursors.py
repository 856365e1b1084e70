"""Opaque keyset cursors over (start_time, id): a page boundary that stays put while new runs arrive.

A cursor names a row and a direction (`next`: rows after it in the query's order, `prev`: rows before it); the
row's key is the sort key, and ties on start_time are broken by id, so paging never repeats or skips a run.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from schemas import ApiError, jsonutil
from schemas.runs import EARLIEST_TIME, LATEST_TIME

Direction = Literal["next", "prev"]
Order = Literal["asc", "desc"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Cursor:
    start_time: datetime
    id: uuid.UUID
    direction: Direction
    order: Order

    def encode(self) -> str:
        raw = jsonutil.dumps({"t": _micros(self.start_time), "i": str(self.id), "d": self.direction, "o": self.order})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, order: Order) -> Cursor:
        try:
            raw = jsonutil.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(
                start_time=_EPOCH + timedelta(microseconds=int(raw["t"])),
                id=uuid.UUID(raw["i"]),
                direction=raw["d"],
                order=raw["o"],
            )
            if not EARLIEST_TIME <= cursor.start_time <= LATEST_TIME:
                raise ValueError("cursor time out of range")
        except (ValueError, KeyError, TypeError, OverflowError) as error:
            raise ApiError(
                400, "invalid cursor: pass back a cursor from a previous response", detail={"field": "cursor"}
            ) from error
        if cursor.direction not in ("next", "prev") or cursor.order != order:
            raise ApiError(400, "cursor belongs to a query with another order", detail={"field": "cursor"})
        return cursor

    def condition(self) -> tuple[str, dict[str, object]]:
        """SQL selecting the rows beyond this cursor; `start_time` bounds first so the primary key prunes."""
        forward = (self.order == "desc") == (self.direction == "next")
        cmp = "<" if forward else ">"
        t = "{cursor_t:DateTime64(6, 'UTC')}"
        sql = f"start_time {cmp}= {t} AND (start_time {cmp} {t} OR id {cmp} {{cursor_id:UUID}})"
        return sql, {"cursor_t": self.start_time, "cursor_id": self.id}


def _micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
