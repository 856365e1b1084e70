"""`POST /api/v2/runs/query`: the v2 body (the generated SDK's `types/run_query_v2_params.py`) checked, then
answered as a v1 `RunQuery`, so that both versions share one search: the same filters, keyset cursor and SQL.

v2 differs in a bounded start-time window (default: the last day), pages of up to 1,000 runs, and a body whose
unknown members are refused rather than ignored. Its options that tracehouse cannot honour are refused too,
with a 422 naming the option: the request is well formed, but no retry will make it succeed. (A 501 would be
retried twice by the generated client, as every 5xx is, and would count as a server fault.)
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from query.cursors import EARLIEST, LATEST
from query.run_search import RunQuery, RunSearch, UtcTime
from query.runs_v2_shape import SelectField
from schemas import ApiError, jsonutil
from storage.run_queries import RunReader

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DEFAULT_WINDOW = timedelta(days=1)
_TIME = "DateTime64(6, 'UTC')"

UNSUPPORTED = {
    "ai_search": "natural-language search needs a language model, which tracehouse does not run",
    "sem_filter": "semantic filters need a language model, which tracehouse does not run",
    "include_subtree_usage": "subtree token and cost totals are not computed; sum the trace's runs instead",
    "min_feedback_modified_at": "feedback conditions cannot be bounded by when the feedback was modified",
    "max_feedback_modified_at": "feedback conditions cannot be bounded by when the feedback was modified",
    "reference_dataset_id": "tracehouse keeps no datasets; pass project_ids",
}

RunType = Literal["TOOL", "CHAIN", "LLM", "RETRIEVER", "EMBEDDING", "PROMPT", "PARSER"]


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, why in UNSUPPORTED.items():
        value = body.get(name)
        if value is not None and value is not False:  # include_subtree_usage=false asks for what is done anyway
            raise ApiError(
                422, f"{name} is not supported by tracehouse: {why}", detail={"field": name, "unsupported": True}
            )


@dataclass(frozen=True, slots=True)
class Window:
    """The start times a query covers. Its cursors carry it, so that the defaults (the last day until now) do
    not slide while a client pages through: a run near the lower bound would drop out between two pages."""

    start: datetime
    end: datetime


def _encode_cursor(after: str, window: Window) -> str:
    """`after`, the v1 keyset cursor of the page's last run, with the window."""
    raw = jsonutil.dumps({"after": after, "from": window.start.isoformat(), "to": window.end.isoformat()})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[str, Window]:
    try:
        raw = jsonutil.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        window = Window(datetime.fromisoformat(raw["from"]), datetime.fromisoformat(raw["to"]))
        if not isinstance(raw["after"], str) or not all(
            t.tzinfo is not None and EARLIEST <= t <= LATEST for t in (window.start, window.end)
        ):
            raise ValueError("not a cursor")
    except (ValueError, KeyError, TypeError):
        raise ApiError(
            400, "invalid cursor: pass back a cursor from a previous response", detail={"field": "cursor"}
        ) from None
    return raw["after"], window


class _StartedBy(RunSearch):
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

    @classmethod
    def parse_body(cls, body: Any) -> RunQueryV2:
        """Members sent as null count as absent, as in v1."""
        if not isinstance(body, dict):
            raise ApiError(422, "the body must be a JSON object")
        _refuse_unsupported(body)
        try:
            return cls.model_validate({k: v for k, v in body.items() if v is not None and k not in UNSUPPORTED})
        except ValidationError as error:
            first = error.errors()[0]
            name = ".".join(str(p) for p in first["loc"])
            raise ApiError(422, f"invalid {name}: {first['msg']}", detail={"field": name}) from None

    def window(self, pinned: Window | None, now: datetime) -> Window:
        """The bounds given, else the cursor's, else the last day until `now`."""
        window = Window(
            self.min_start_time or (pinned.start if pinned else now - DEFAULT_WINDOW),
            self.max_start_time or (pinned.end if pinned else now),
        )
        if window.start > window.end:
            default = "" if self.min_start_time or pinned else " (by default a day before now)"
            raise ApiError(
                422,
                f"min_start_time {window.start.isoformat()}{default} is after max_start_time {window.end.isoformat()}",
                detail={"field": "min_start_time"},
            )
        return window

    def page(
        self, reader: RunReader, tenant_id: uuid.UUID, payloads: tuple[str, ...]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of rows, newest first, with payload columns `payloads`, and the cursor of the next page."""
        after, pinned = _decode_cursor(self.cursor) if self.cursor else (None, None)
        window = self.window(pinned, datetime.now(UTC))
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
        found = _StartedBy(reader, window.end).page(tenant_id, v1.model_copy(update={"limit": self.page_size}))
        return found.rows, _encode_cursor(found.next, window) if found.next else None
