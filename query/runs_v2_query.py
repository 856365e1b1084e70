"""`POST /api/v2/runs/query`: the v2 body (the generated SDK's `types/run_query_v2_params.py`) checked, then
answered as a v1 `RunQuery`, so that both versions share one search: the same filters, keyset cursor and SQL.

v2 differs in a bounded start-time window (default: the last day), pages of up to 1,000 runs, and a strict body
(`query.v2_requests`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from query.run_search import RunQuery, RunSearch, UtcTime
from query.runs_v2_shape import SelectField
from query.v2_requests import FEEDBACK_MODIFIED_AT, NEEDS_A_MODEL, decode_cursor, encode_cursor, resolve_window
from storage.run_queries import RunReader

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_TIME = "DateTime64(6, 'UTC')"

UNSUPPORTED = {
    **NEEDS_A_MODEL,
    "include_subtree_usage": "subtree token and cost totals are not computed; sum the trace's runs instead",
    **FEEDBACK_MODIFIED_AT,
    "reference_dataset_id": "tracehouse keeps no datasets; pass project_ids",
}

RunType = Literal["TOOL", "CHAIN", "LLM", "RETRIEVER", "EMBEDDING", "PROMPT", "PARSER"]


class StartedBy(RunSearch):
    """`RunSearch` with an upper bound on start time, which v1's arguments lack: its `end_time` bounds when a
    run ended as well, and so leaves out the runs still in progress."""

    def __init__(self, reader: RunReader, latest: datetime) -> None:
        super().__init__(reader)
        self.latest = latest

    def where(self, tenant_id: uuid.UUID, q: RunQuery) -> tuple[str, dict[str, Any]] | None:
        built = super().where(tenant_id, q)
        if built is None:
            return None
        sql, params = built
        return f"({sql}) AND start_time <= {{v2_latest:{_TIME}}}", {**params, "v2_latest": self.latest}


class RunQueryV2(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_ids: list[uuid.UUID] = Field(min_length=1)
    min_start_time: UtcTime = None
    max_start_time: UtcTime = None
    filter: str | None = None
    trace_filter: str | None = None
    tree_filter: str | None = None
    is_root: bool | None = None
    ids: list[uuid.UUID] | None = Field(None, min_length=1)
    trace_id: uuid.UUID | None = None
    run_type: RunType | None = None
    has_error: bool | None = None
    reference_examples: list[uuid.UUID] | None = Field(None, min_length=1)
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None
    selects: list[SelectField] = []

    def page(
        self, reader: RunReader, tenant_id: uuid.UUID, payloads: tuple[str, ...], *, max_exclusive: bool = False
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of rows, newest first, with payload columns `payloads`, and the cursor of the next page.
        `max_exclusive`: `max_start_time` is an exclusive bound (the traces query, which is answered by this one)."""
        after, pinned = decode_cursor(self.cursor) if self.cursor else (None, None)
        window = resolve_window(
            self.min_start_time, self.max_start_time, pinned, datetime.now(UTC), max_exclusive=max_exclusive
        )
        v1 = RunQuery(
            session=self.project_ids,
            id=self.ids,
            trace=self.trace_id,
            run_type=self.run_type.lower() if self.run_type else None,
            is_root=self.is_root,
            error=self.has_error,
            start_time=window.start,
            reference_example=self.reference_examples,
            filter=self.filter,
            trace_filter=self.trace_filter,
            tree_filter=self.tree_filter,
            select=list(payloads),
            cursor=after,
        )
        # RunQuery caps v1's limit at 100 (the v1 SDK pages on); page_size is validated above.
        found = StartedBy(reader, window.end).page(tenant_id, v1.model_copy(update={"limit": self.page_size}))
        return found.rows, encode_cursor(found.next, window) if found.next else None
