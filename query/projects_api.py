"""Projects (`/sessions`, protocol §7): create, read by id or name, list, update, delete with cascade; stats
computed in ClickHouse on request (`include_stats`).

Retention is tracehouse's own: a trace is kept `short_ttl_days`, and `long_ttl_days` once it has feedback. That is
LangSmith's `shortlived` trace tier with its `longlived_ttl_days`, which the generated client's methods send and
read. Its `longlived` tier, every trace kept long, has no counterpart, and asking for it is a 422."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from query.project_stats import ProjectStats
from query.project_writes import ProjectWrites
from query.run_reads import JSON_BODY, JsonBody, json_response
from query.run_search import UtcTime
from query.v2_requests import unsupported
from schemas import ApiError, Tenant, jsonutil
from schemas.projects import DEFAULT_PROJECT_NAME, Project
from schemas.tenancy import current_tenant
from schemas.times import assume_utc
from storage import Storage
from storage.deletes import Deleter
from storage.projects import ProjectRepository

CurrentTenant = Annotated[Tenant, Depends(current_tenant)]
_FACETS_UP_TO = 10  # run facets cost one query per project: only for small result sets
MAX_TTL_DAYS = 36_500
LONG_LIVED_TIER = (
    "every trace kept for the long-lived period has no counterpart: traces are short-lived until they get feedback"
)


def project_json(project: Project) -> dict[str, Any]:
    """TracerSession: `tenant_id` and `reference_dataset_id` must be present (the SDK requires the keys)."""
    return {
        "id": str(project.id),
        "tenant_id": str(project.tenant_id),
        "name": project.name,
        "description": project.description,
        "start_time": project.start_time.isoformat(),
        "end_time": project.end_time.isoformat() if project.end_time else None,
        "extra": project.extra,
        "reference_dataset_id": str(project.reference_dataset_id) if project.reference_dataset_id else None,
        "default_dataset_id": None,
        "short_ttl_days": project.short_ttl_days,
        "long_ttl_days": project.long_ttl_days,
        "longlived_ttl_days": project.long_ttl_days,
        "trace_tier": "shortlived",
    }


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object")
    return body


def _uuid(value: Any, field: str) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ApiError(422, f"{field} is not a valid UUID", detail={"field": field}) from None


def _time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ApiError(422, f"{field} is not an ISO 8601 timestamp", detail={"field": field}) from None
    return assume_utc(parsed)


def _ttl(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TTL_DAYS:
        raise ApiError(422, f"{field} must be a number of days between 1 and {MAX_TTL_DAYS}", detail={"field": field})
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "name must be a non-empty string", detail={"field": "name"})
    return value


def _description(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ApiError(422, "description must be a string", detail={"field": "description"})
    return value


def _extra(body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any] | None:
    """`extra`, with a top-level `metadata` (as some clients send) folded into `extra.metadata`: a level deeper
    than it was sent, so its nesting is checked again."""
    extra = body.get("extra")
    for field, value in (("extra", extra), ("metadata", body.get("metadata"))):
        if value is not None and not isinstance(value, dict):
            raise ApiError(422, f"{field} must be a JSON object", detail={"field": field})
    checked_metadata(extra)
    if body.get("metadata") is not None:
        extra = jsonutil.within_nesting({**(extra or current or {}), "metadata": body["metadata"]}, "metadata")
    return extra


def checked_metadata(extra: dict[str, Any] | None) -> None:
    """Runs and lists match on `extra.metadata` as an object: anything else there would be unreachable."""
    if isinstance((extra or {}).get("metadata"), list | str | int | float | bool):
        raise ApiError(422, "extra.metadata must be a JSON object", detail={"field": "extra.metadata"})


def _long_ttl(body: dict[str, Any]) -> int | None:
    """The long-lived retention a v1 body asks for: `longlived_ttl_days` (the generated client) or
    `long_ttl_days` (tracehouse's own name). The `shortlived` tier is what tracehouse does anyway."""
    if body.get("trace_tier") not in (None, "shortlived"):
        raise unsupported("trace_tier", LONG_LIVED_TIER)
    if body.get("longlived_ttl_days") is not None:
        return _ttl(body["longlived_ttl_days"], "longlived_ttl_days")
    return _ttl(body.get("long_ttl_days"), "long_ttl_days")


def _changes(body: dict[str, Any], project: Project) -> dict[str, Any]:
    """The Project fields that a v1 update body sets (null means unchanged)."""
    changes: dict[str, Any] = {}
    if body.get("name") is not None:
        changes["name"] = _name(body["name"])
    if body.get("description") is not None:
        changes["description"] = _description(body["description"])
    extra = _extra(body, project.extra)
    if extra is not None:
        changes["extra"] = extra
    if body.get("end_time") is not None:
        changes["end_time"] = _time(body["end_time"], "end_time")
    if body.get("short_ttl_days") is not None:
        changes["short_ttl_days"] = _ttl(body["short_ttl_days"], "short_ttl_days")
    long_ttl = _long_ttl(body)
    if long_ttl is not None:
        changes["long_ttl_days"] = long_ttl
    return changes


def existing(projects: ProjectRepository, tenant_id: uuid.UUID, project_id: uuid.UUID) -> Project:
    project = projects.get(tenant_id, project_id)
    if project is None:
        raise ApiError(404, f"project {project_id} not found", detail={"project_id": str(project_id)})
    return project


def router(storage: Storage) -> APIRouter:
    api = APIRouter(tags=["projects"])
    projects = storage.projects
    stats = ProjectStats(storage)
    writes = ProjectWrites(projects)
    deleter = Deleter(storage.clickhouse, storage.blobs)

    def with_stats(
        tenant_id: uuid.UUID, found: list[Project], include_stats: bool, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        out = [project_json(p) for p in found]
        if not include_stats or not found:
            return out
        figures = stats.of(tenant_id, [p.id for p in found], since=since)
        for item, project in zip(out, found, strict=True):
            item.update(figures[project.id])
            item["session_feedback_stats"] = {}
            item["run_facets"] = stats.facets(tenant_id, project.id) if len(found) <= _FACETS_UP_TO else []
        return out

    @api.post(
        "/sessions",
        summary="Create a project (409 when the name exists, unless upsert, which updates it)",
        openapi_extra=JSON_BODY,
    )
    def create_project(tenant: CurrentTenant, body: JsonBody, upsert: bool = False) -> Response:
        body = _object(body)
        project = Project(
            id=_uuid(body.get("id"), "id") or uuid.uuid4(),
            tenant_id=tenant.id,
            name=_name(body.get("name")),
            description=_description(body.get("description")),
            start_time=_time(body.get("start_time"), "start_time") or datetime.now(UTC),
            end_time=_time(body.get("end_time"), "end_time"),
            extra=_extra(body, None) or {},
            reference_dataset_id=_uuid(body.get("reference_dataset_id"), "reference_dataset_id"),
            short_ttl_days=_ttl(body.get("short_ttl_days"), "short_ttl_days"),
            long_ttl_days=_long_ttl(body),
        )
        stored, created = writes.create(project, (lambda found: _changes(body, found)) if upsert else None)
        return json_response(project_json(stored), status_code=201 if created else 200)

    @api.get("/sessions", summary="List projects (an array; [] when a name is not found)")
    def list_projects(
        tenant: CurrentTenant,
        name: str | None = None,
        name_contains: str | None = None,
        id: Annotated[list[uuid.UUID] | None, Query()] = None,
        metadata: str | None = None,
        reference_dataset: uuid.UUID | None = None,
        reference_free: bool | None = None,
        include_stats: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        try:
            wanted = jsonutil.loads(metadata) if metadata else None
        except ValueError:
            raise ApiError(422, "metadata must be a JSON object", detail={"field": "metadata"}) from None
        if wanted is not None and not isinstance(wanted, dict):
            raise ApiError(422, "metadata must be a JSON object", detail={"field": "metadata"})
        jsonutil.within_nesting(wanted, "metadata")  # no stored metadata is deeper, and the filter would not serialise
        found = projects.list(
            tenant.id,
            ids=id,
            name=name,
            name_contains=name_contains,
            metadata=wanted,
            reference_dataset_ids=[reference_dataset] if reference_dataset else None,
            reference_free=reference_free,
            limit=limit,
            offset=offset,
        )
        return json_response(with_stats(tenant.id, found, include_stats))

    @api.get("/sessions/{project_id}", summary="Read a project (404 when missing)")
    def read_project(
        tenant: CurrentTenant,
        project_id: uuid.UUID,
        include_stats: bool = False,
        stats_start_time: Annotated[UtcTime, Query()] = None,
    ) -> Response:
        """`stats_start_time` narrows the stats to the runs that started at or after it."""
        found = [existing(projects, tenant.id, project_id)]
        return json_response(with_stats(tenant.id, found, include_stats, stats_start_time)[0])

    @api.patch("/sessions/{project_id}", summary="Update a project (null means unchanged)", openapi_extra=JSON_BODY)
    def update_project(tenant: CurrentTenant, project_id: uuid.UUID, body: JsonBody) -> Response:
        body = _object(body)
        project = existing(projects, tenant.id, project_id)
        return json_response(project_json(writes.update(project, _changes(body, project))))

    @api.delete("/sessions/{project_id}", summary="Delete a project with its runs, feedback and blobs")
    def delete_project(tenant: CurrentTenant, project_id: uuid.UUID) -> Response:
        project = existing(projects, tenant.id, project_id)
        if project.name == DEFAULT_PROJECT_NAME:
            raise ApiError(409, "the default project cannot be deleted")
        projects.delete(project)
        deleter.project(tenant.id, project.id)
        return json_response({"deleted": str(project.id)})

    return api
