"""`POST /runs/query`: the request body of protocol §6.4 -> one keyset-paginated SQL query over `runs`.

Scope comes first so that ClickHouse reads as little as possible: project ids, a trace or parent located through
`run_ids` (session + start time = sort-key prefix), then the plain arguments and the compiled filters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from query.cursors import Cursor
from query.filter import FilterError, Node, Params, Search, compile_filter, parse
from schemas import ApiError
from schemas.runs import EARLIEST_TIME, LATEST_TIME
from schemas.times import assume_utc
from storage.run_queries import META_COLUMNS, PAYLOAD_COLUMNS, TRACE_CLOCK_SKEW, RunLocation, RunReader

MAX_LIMIT = 100
_TIME = "DateTime64(6, 'UTC')"


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, (str, uuid.UUID)) else value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    value = assume_utc(value)
    if not EARLIEST_TIME <= value <= LATEST_TIME:  # first: converting a time at datetime's edge can overflow
        raise ValueError("must be between 1900 and 2299")
    return value.astimezone(UTC)


# Body field types shared by the run and thread queries: one id or a list of them; naive times are UTC, within
# the range ClickHouse stores.
UuidList = Annotated[list[uuid.UUID] | None, BeforeValidator(_one_or_many)]
UtcTime = Annotated[datetime | None, AfterValidator(_utc)]


class RunQuery(BaseModel):
    """The body of `POST /runs/query`; unknown keys are ignored (the SDK passes **kwargs through)."""

    model_config = ConfigDict(extra="ignore")

    session: UuidList = None
    session_id: UuidList = None
    id: UuidList = None
    trace: uuid.UUID | None = None
    parent_run: uuid.UUID | None = None
    run_type: str | None = None
    is_root: bool | None = None
    execution_order: int | None = Field(None, ge=1)
    error: bool | None = None
    start_time: UtcTime = None
    end_time: UtcTime = None
    reference_example: UuidList = None
    query: str | None = None
    filter: str | None = None
    trace_filter: str | None = None
    tree_filter: str | None = None
    select: list[str] | None = None
    limit: int = Field(MAX_LIMIT, ge=1)
    cursor: str | None = None
    order: Literal["asc", "desc"] = "desc"

    @field_validator("limit", mode="after")
    @classmethod
    def _cap(cls, value: int) -> int:
        return min(value, MAX_LIMIT)  # the SDK pages on; a larger request simply gets 100 per page

    @classmethod
    def parse_body(cls, body: Any) -> RunQuery:
        if not isinstance(body, dict):
            raise ApiError(422, "the body must be a JSON object")
        try:
            return cls.model_validate({k: v for k, v in body.items() if v is not None})
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ApiError(422, f"invalid {field}: {first['msg']}", detail={"field": field}) from None

    @property
    def sessions(self) -> list[uuid.UUID]:
        return list(dict.fromkeys([*(self.session or []), *(self.session_id or [])]))

    @property
    def versions_alike(self) -> bool:
        """Whether every version of a run matches alike: the arguments test only what a patch never changes
        (project, ids, start time, ancestry), so the latest version needs no check of its own. `trace_filter`
        and `tree_filter` would qualify too (they look at other runs through `trace_id`), but their matches are
        sparse, and reading full rows while scanning for them costs more than the check (measured: 450 ms vs
        300 ms for a rare tree_filter on 1M runs)."""
        return not (
            self.trace_filter
            or self.tree_filter
            or self.run_type
            or self.error is not None
            or self.end_time
            or self.reference_example
            or self.query
            or self.filter
        )

    @property
    def payloads(self) -> tuple[str, ...]:
        """Payload columns to read: all of them without `select`, else the selected ones (the rest of the run is
        always returned, since clients read fields they did not select)."""
        if self.select is None:
            return PAYLOAD_COLUMNS
        return tuple(c for c in PAYLOAD_COLUMNS if c in self.select)


def parse_filter(text: str, argument: str) -> Node:
    try:
        return parse(text)
    except FilterError as error:
        raise _filter_error(error, argument, text) from None


def compile_argument(text: str, argument: str, params: Params) -> str:
    try:
        return compile_filter(parse_filter(text, argument), params)
    except FilterError as error:
        raise _filter_error(error, argument, text) from None


def _filter_error(error: FilterError, argument: str, text: str) -> ApiError:
    return ApiError(
        400,
        f"invalid {argument}: {error.message} at position {error.pos}",
        detail={"field": argument, "position": error.pos, "filter": text},
    )


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    next: str | None
    prev: str | None


class RunSearch:
    def __init__(self, reader: RunReader) -> None:
        self.reader = reader

    def where(self, tenant_id: uuid.UUID, q: RunQuery) -> tuple[str, dict[str, Any]] | None:
        """The WHERE for `q` (without cursor), or None when it can match nothing (unknown ids)."""
        params = Params("q")
        extra: dict[str, Any] = {}
        conds: list[str] = []
        sessions = q.sessions
        session_sql = ""
        if len(sessions) == 1:  # equality fixes the key prefix, so ClickHouse reads in key order and stops early
            session_sql = f"session_id = {params.add(sessions[0], 'UUID')}"
        elif sessions:
            session_sql = f"session_id IN {params.add(sessions, 'Array(UUID)')}"
        if session_sql:
            conds.append(session_sql)
        if q.id:
            found = self.reader.locate(tenant_id, q.id)
            if not found:
                return None
            conds.append(self._located(found, params))
            conds.append(f"id IN {params.add([loc.id for loc in found], 'Array(UUID)')}")
        if q.trace:
            trace_sql, trace_params = self.reader.trace_scope(tenant_id, q.trace)
            conds.append(trace_sql)
            extra.update(trace_params)
        if q.parent_run:
            parent = self.reader.locate(tenant_id, [q.parent_run])
            if parent:
                conds.append(self._located(parent, params, descendants=True))
                conds.append(f"trace_id = {params.add(parent[0].trace_id, 'UUID')}")
            conds.append(f"parent_run_id = {params.add(q.parent_run, 'UUID')}")
        if q.run_type:
            conds.append(f"run_type = {params.add(q.run_type, 'String')}")
        if q.is_root is not None:
            conds.append(f"is_root = {int(q.is_root)}")
        if q.execution_order is not None:
            conds.append(
                "is_root = 1"
                if q.execution_order == 1
                else f"length(parent_run_ids) + 1 = {params.add(q.execution_order, 'UInt32')}"
            )
        if q.error is not None:
            conds.append("error IS NOT NULL" if q.error else "error IS NULL")
        if q.start_time:
            conds.append(f"start_time >= {params.add(q.start_time, _TIME)}")
        if q.end_time:
            bound = params.add(q.end_time, _TIME)
            conds.append(f"start_time <= {bound} AND ifNull(end_time <= {bound}, 0)")
        if q.reference_example:
            conds.append(f"reference_example_id IN {params.add(q.reference_example, 'Array(UUID)')}")
        if q.query:
            try:
                conds.append(compile_filter(Search(q.query, None, 0), params))
            except FilterError as error:
                raise _filter_error(error, "query", q.query) from None
        if q.filter:
            conds.append(compile_argument(q.filter, "filter", params))
        scope = f"tenant_id = {{tenant:UUID}}{' AND ' + session_sql if session_sql else ''}"
        if q.trace_filter:
            root = compile_argument(q.trace_filter, "trace_filter", params)
            conds.append(f"trace_id IN (SELECT id FROM runs FINAL WHERE {scope} AND is_root = 1 AND {root})")
        if q.tree_filter:
            tree = compile_argument(q.tree_filter, "tree_filter", params)
            conds.append(f"trace_id IN (SELECT trace_id FROM runs FINAL WHERE {scope} AND {tree})")
        return " AND ".join(conds) or "1", {**params.values, **extra}

    @staticmethod
    def _located(found: list[RunLocation], params: Params, *, descendants: bool = False) -> str:
        """Sort-key bounds for the located runs themselves, or (`descendants`) for runs under them."""
        sessions = params.add(sorted({loc.session_id for loc in found}, key=str), "Array(UUID)")
        low = min(loc.start_time for loc in found)
        if descendants:
            return f"session_id IN {sessions} AND start_time >= {params.add(low - TRACE_CLOCK_SKEW, _TIME)}"
        high = max(loc.start_time for loc in found)
        return f"session_id IN {sessions} AND start_time BETWEEN {params.add(low, _TIME)} AND {params.add(high, _TIME)}"

    def page(
        self, tenant_id: uuid.UUID, q: RunQuery, on_candidates: Callable[[list[uuid.UUID]], None] | None = None
    ) -> Page:
        """`on_candidates`: see `RunReader.newest`."""
        cursor = Cursor.decode(q.cursor, q.order) if q.cursor else None
        built = self.where(tenant_id, q)
        if built is None:
            return Page([], None, None)
        where, params = built
        backwards = cursor is not None and cursor.direction == "prev"
        if cursor is not None:
            cond, cursor_params = cursor.condition()
            where = f"{where} AND {cond}"
            params.update(cursor_params)
        rows = self.reader.newest(
            tenant_id,
            where=where,
            params=params,
            columns=META_COLUMNS + q.payloads,
            descending=(q.order == "desc") != backwards,
            limit=q.limit + 1,
            shared=q.versions_alike,
            on_candidates=on_candidates,
        )
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        if backwards:
            rows.reverse()
        if not rows:
            return Page([], None, None)
        first, last = rows[0], rows[-1]
        has_next = more if not backwards else True
        has_prev = cursor is not None and (more if backwards else True)
        return Page(
            rows,
            Cursor(last["start_time"], last["id"], "next", q.order).encode() if has_next else None,
            Cursor(first["start_time"], first["id"], "prev", q.order).encode() if has_prev else None,
        )
