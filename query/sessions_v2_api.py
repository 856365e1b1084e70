"""The v2 sessions routes of the generated SDK client: `POST /api/v2/sessions` (`client.sessions.create_v2`),
`GET /api/v2/sessions` (`list_v2`), `GET` and `PATCH /api/v2/sessions/{session_id}` (`retrieve_v2`, `update_v2`).

A session is a project (`query.projects_api`), created and updated through the same rules (`ProjectWrites`) and
with the same statistics (`ProjectStats`). v2 differs in its shape: a `type`, which is `EXPERIMENT` for a project
with a reference dataset (as in LangSmith) and `PROJECT` otherwise, upper-case trace tiers, and feedback stats as
`SessionFeedbackStat`. Its update clears what is sent as null and merges `extra` by top-level key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from query.project_stats import ProjectStats
from query.project_writes import ProjectWrites
from query.projects_api import LONG_LIVED_TIER, MAX_TTL_DAYS, checked_metadata, existing, project_json
from query.run_reads import CurrentTenant, JsonBody, json_response
from query.run_search import UtcTime
from query.runs_v2_shape import feedback_stats_v2
from query.serialize import iso
from query.v2_requests import (
    decode_position,
    encode_position,
    invalid_cursor,
    openapi_body,
    parse_body,
    unsupported,
)
from schemas import ApiError, jsonutil
from schemas.projects import Project
from schemas.times import assume_utc
from storage import Storage
from storage.projects import ProjectOrder

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_NO_DATASETS = "tracehouse keeps no datasets"
_NO_EXPERIMENT_PROGRESS = "tracehouse keeps no experiment progress"
REFUSED_ON_CREATE = {
    "default_dataset_id": _NO_DATASETS,
    "evaluator_keys": _NO_EXPERIMENT_PROGRESS,
    "num_examples": _NO_EXPERIMENT_PROGRESS,
    "num_repetitions": _NO_EXPERIMENT_PROGRESS,
    "kicked_off_by": "who kicked off an experiment is not kept",
    "tag_value_ids": "tracehouse keeps no resource tags",
}
REFUSED_ON_LIST = {
    "filter": "filters over projects are not compiled; name, name_contains, metadata, id and type select them",
    "dataset_version": _NO_DATASETS,
    "tag_value_id": "tracehouse keeps no resource tags",
    "sort_by_feedback_key": "sorting by feedback is not supported",
    "sort_by_feedback_source": "sorting by feedback is not supported",
}
SORTED_IN_STORAGE: dict[str, Literal["name", "start_time"]] = {"NAME": "name", "START_TIME": "start_time"}
_LIST_MEMBERS = ("id", "reference_dataset_id", "stats_select", "tag_value_id", "type")
# The statistics a session carries with include_stats, which `stats_select` picks from.
STATS = (
    "run_count",
    "latency_p50",
    "latency_p99",
    "first_token_p50",
    "first_token_p99",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_cost",
    "completion_cost",
    "total_cost",
    "error_rate",
    "streaming_rate",
    "last_run_start_time",
    "last_run_start_time_live",
    "feedback_stats",
    "session_feedback_stats",
)

SessionType = Literal["PROJECT", "AGENT", "EXPERIMENT"]
TraceTier = Literal["LONG_LIVED", "SHORT_LIVED"]
Name = Annotated[str, StringConstraints(pattern=r"\S")]
TtlDays = Annotated[int, Field(ge=1, le=MAX_TTL_DAYS)]


class SessionCreateV2(BaseModel):
    """The body of `POST /api/v2/sessions` (`types/session_create_v2_params.py`) less the refused members."""

    model_config = ConfigDict(extra="forbid")

    type: SessionType
    name: Name
    id: uuid.UUID | None = None
    description: str | None = None
    start_time: UtcTime = None
    end_time: UtcTime = None
    extra: dict[str, Any] | None = None
    reference_dataset_id: uuid.UUID | None = None
    longlived_ttl_days: TtlDays | None = None
    trace_tier: TraceTier | None = None


class SessionUpdateV2(BaseModel):
    """The body of `PATCH /api/v2/sessions/{session_id}` (`types/session_update_v2_params.py`)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: str | None = None
    end_time: UtcTime = None
    extra: dict[str, Any] | None = None
    longlived_ttl_days: TtlDays | None = None
    trace_tier: TraceTier | None = None
    default_dataset_id: uuid.UUID | None = None


class SessionListV2(BaseModel):
    """The query of `GET /api/v2/sessions` (`types/session_list_v2_params.py`) less the refused parameters."""

    model_config = ConfigDict(extra="forbid")

    id: list[uuid.UUID] = []
    name: str | None = None
    name_contains: str | None = None
    metadata: str | None = None
    reference_dataset_id: list[uuid.UUID] = []
    type: list[SessionType] = []
    include_stats: bool = False
    include_facets: bool = False
    stats_select: list[str] = []
    stats_start_time: UtcTime = None
    stats_filter: str | None = None
    use_approx_stats: bool = False  # exact statistics are always computed, and are what it approximates
    sort_by: Literal[
        "NAME", "START_TIME", "LAST_RUN_START_TIME", "ERROR_RATE", "LATENCY_P50", "LATENCY_P99", "FEEDBACK"
    ] = "START_TIME"
    sort_order: Literal["asc", "desc"] = "desc"
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None

    def reference_free(self) -> bool | None:
        """The `type` filter in terms of reference datasets. tracehouse has no Agent projects, so `AGENT` adds
        none: only `AGENT` selects nothing (see `selects_nothing`)."""
        kinds = set(self.type) - {"AGENT"}
        return None if len(kinds) != 1 else kinds == {"PROJECT"}

    def selects_nothing(self) -> bool:
        return set(self.type) == {"AGENT"}


def session_json(project: Project) -> dict[str, Any]:
    return {
        **project_json(project),
        "type": "EXPERIMENT" if project.reference_dataset_id else "PROJECT",
        "trace_tier": "SHORT_LIVED",
    }


def stats_json(figures: dict[str, Any], wanted: tuple[str, ...]) -> dict[str, Any]:
    """The `wanted` members of `STATS` from `ProjectStats.of`. The figures are computed on request, so the
    `_live` start time is the same one. Feedback is kept on runs, never on a session as such."""
    last = iso(assume_utc(figures["last_run_start_time"])) if figures["last_run_start_time"] else None
    feedback = feedback_stats_v2(figures["feedback_stats"])
    out = {
        **figures,
        "last_run_start_time": last,
        "last_run_start_time_live": last,
        "feedback_stats": {key: {**entry, "type": "PRIMARY"} for key, entry in feedback.items()},
        "session_feedback_stats": {},
    }
    return {name: out[name] for name in wanted}


def _stats_select(names: list[str]) -> tuple[str, ...]:
    wanted = tuple(name.lower() for name in names) or STATS
    for name in wanted:
        if name not in STATS:
            raise ApiError(
                422, f"unknown stats_select {name!r}: one of {', '.join(STATS)}", detail={"field": "stats_select"}
            )
    return wanted


def _metadata(text: str | None) -> dict[str, Any] | None:
    try:
        wanted = jsonutil.loads(text) if text else None
    except ValueError:
        wanted = []
    if wanted is not None and not isinstance(wanted, dict):
        raise ApiError(422, "metadata must be a JSON object", detail={"field": "metadata"})
    return jsonutil.within_nesting(wanted, "metadata")


def _refuse_long_lived(body: Any) -> None:
    if isinstance(body, dict) and body.get("trace_tier") == "LONG_LIVED":
        raise unsupported("trace_tier", LONG_LIVED_TIER)


def _merged_extra(current: dict[str, Any] | None, sent: dict[str, Any]) -> dict[str, Any]:
    """`current` with the top-level keys of `sent`, those sent as null removed."""
    merged = {k: v for k, v in {**(current or {}), **sent}.items() if v is not None}
    checked_metadata(merged)
    return merged


def _update_changes(body: dict[str, Any], project: Project) -> dict[str, Any]:
    """The Project fields an update body sets: the members sent, null clearing the clearable ones."""
    q = parse_body(SessionUpdateV2, body, {"default_dataset_id": _NO_DATASETS})
    if body.get("name", "") is None:
        raise ApiError(422, "name cannot be cleared", detail={"field": "name"})
    cleared = {k for k, v in body.items() if v is None}
    changes: dict[str, Any] = {key: None for key in cleared & {"description", "end_time"}}
    changes.update(q.model_dump(include={"name", "description", "end_time"}, exclude_none=True))
    if "extra" in cleared:
        changes["extra"] = {}
    elif q.extra is not None:
        changes["extra"] = _merged_extra(project.extra, q.extra)
    if "longlived_ttl_days" in cleared or q.longlived_ttl_days is not None:
        changes["long_ttl_days"] = q.longlived_ttl_days
    return changes


def _create_changes(q: SessionCreateV2, project: Project) -> dict[str, Any]:
    """What an upsert changes in the project of the same name: the members sent, but its identity and start."""
    changes = q.model_dump(include={"description", "end_time", "reference_dataset_id"}, exclude_none=True)
    if q.extra is not None:
        changes["extra"] = _merged_extra(project.extra, q.extra)
    if q.longlived_ttl_days is not None:
        changes["long_ttl_days"] = q.longlived_ttl_days
    return changes


def _check_type(q: SessionCreateV2) -> None:
    if q.type == "AGENT":
        raise unsupported("type", "Agent tracing projects are not kept; create a PROJECT")
    if (q.type == "EXPERIMENT") != (q.reference_dataset_id is not None):
        raise ApiError(422, "an EXPERIMENT has a reference_dataset_id and a PROJECT has none", detail={"field": "type"})


def _order(q: SessionListV2) -> ProjectOrder:
    """The storage order of the list, after the cursor's position. A cursor holds its sort too, and answers 400
    with another sort: a position in one order means nothing in another."""
    column = SORTED_IN_STORAGE.get(q.sort_by)
    if column is None:
        raise unsupported("sort_by", "sorting by a run statistic would compute the statistics of every project")
    order = ProjectOrder(column, q.sort_order == "desc")
    if q.cursor is None:
        return order
    try:
        sort_by, sort_order, value, after_id = jsonutil.loads(decode_position(q.cursor))
        if (sort_by, sort_order) != (q.sort_by, q.sort_order):
            raise ValueError("a cursor of another sort")
        after = datetime.fromisoformat(value) if column == "start_time" else str(value)
        return ProjectOrder(order.column, order.descending, (after, uuid.UUID(after_id)))
    except (ValueError, TypeError):
        raise invalid_cursor() from None


def _next_cursor(q: SessionListV2, last: Project) -> str:
    value = last.name if q.sort_by == "NAME" else iso(last.start_time)
    return encode_position(jsonutil.dumps_str([q.sort_by, q.sort_order, value, str(last.id)]))


def _list_query(request: Request) -> SessionListV2:
    """The query string as a body: repeated parameters (`id=…&id=…`, as the SDK sends lists) are lists."""
    params = request.query_params
    raw = {k: params.getlist(k) if k in _LIST_MEMBERS else params[k] for k in params}
    return parse_body(SessionListV2, raw, REFUSED_ON_LIST)


def router(storage: Storage) -> APIRouter:
    api = APIRouter(prefix="/api/v2/sessions", tags=["sessions v2"])
    projects = storage.projects
    writes = ProjectWrites(projects)
    stats = ProjectStats(storage)

    def answer(
        tenant_id: uuid.UUID,
        found: list[Project],
        q: SessionListV2 | None,
    ) -> list[dict[str, Any]]:
        """The sessions, with the statistics and facets the list or retrieve query `q` asks for."""
        out = [session_json(p) for p in found]
        if q is None or not found or not (q.include_stats or q.include_facets):
            return out
        if q.include_stats:
            wanted = _stats_select(q.stats_select)
            ids = [p.id for p in found]
            figures = stats.of(tenant_id, ids, since=q.stats_start_time, runs_filter=q.stats_filter)
            for item, project in zip(out, found, strict=True):
                item.update(stats_json(figures[project.id], wanted))
        if q.include_facets:
            for item, project in zip(out, found, strict=True):
                item["run_facets"] = stats.facets(tenant_id, project.id)
        return out

    @api.post(
        "",
        summary="Create a session (409 when the name exists, unless upsert, which updates it)",
        openapi_extra=openapi_body(SessionCreateV2),
    )
    def create_session(tenant: CurrentTenant, body: JsonBody, upsert: bool = False) -> Response:
        _refuse_long_lived(body)
        q = parse_body(SessionCreateV2, body, REFUSED_ON_CREATE)
        _check_type(q)
        project = Project(
            id=q.id or uuid.uuid4(),
            tenant_id=tenant.id,
            name=q.name,
            description=q.description,
            start_time=q.start_time or datetime.now(UTC),
            end_time=q.end_time,
            extra=_merged_extra(None, q.extra or {}),
            reference_dataset_id=q.reference_dataset_id,
            long_ttl_days=q.longlived_ttl_days,
        )
        stored, created = writes.create(project, (lambda found: _create_changes(q, found)) if upsert else None)
        return json_response(session_json(stored), status_code=201 if created else 200)

    @api.get("", summary="A page of sessions, with their statistics on request")
    def list_sessions(tenant: CurrentTenant, request: Request) -> Response:
        q = _list_query(request)
        order = _order(q)
        if q.selects_nothing():
            return json_response({"items": [], "next_cursor": None})
        found = projects.list(
            tenant.id,
            ids=q.id or None,
            name=q.name,
            name_contains=q.name_contains,
            metadata=_metadata(q.metadata),
            reference_dataset_ids=q.reference_dataset_id or None,
            reference_free=q.reference_free(),
            limit=q.page_size + 1,
            order=order,
        )
        page = found[: q.page_size]
        next_cursor = _next_cursor(q, page[-1]) if len(found) > q.page_size else None
        return json_response({"items": answer(tenant.id, page, q), "next_cursor": next_cursor})

    @api.get("/{session_id}", summary="A session, with its statistics on request (404 when missing)")
    def retrieve_session(
        tenant: CurrentTenant,
        session_id: uuid.UUID,
        include_stats: bool = False,
        stats_start_time: Annotated[UtcTime, Query()] = None,
    ) -> Response:
        q = SessionListV2(include_stats=include_stats, stats_start_time=stats_start_time)
        return json_response(answer(tenant.id, [existing(projects, tenant.id, session_id)], q)[0])

    @api.patch(
        "/{session_id}",
        summary="Update a session: members sent are set, null clears, extra merges by key",
        openapi_extra=openapi_body(SessionUpdateV2),
    )
    def update_session(tenant: CurrentTenant, session_id: uuid.UUID, body: JsonBody) -> Response:
        _refuse_long_lived(body)
        if not isinstance(body, dict):
            raise ApiError(422, "the body must be a JSON object")
        project = existing(projects, tenant.id, session_id)
        return json_response(session_json(writes.update(project, _update_changes(body, project))))

    return api
