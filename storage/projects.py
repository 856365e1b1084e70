"""Project repository: the one place projects are read and written, always scoped to a tenant."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from schemas.projects import DEFAULT_PROJECT_NAME, Project, project_id_for_name
from schemas.times import times_as_utc
from storage.clickhouse import ClickHouse, storable

_COLUMNS = [
    "tenant_id",
    "id",
    "name",
    "description",
    "extra",
    "start_time",
    "end_time",
    "reference_dataset_id",
    "short_ttl_days",
    "long_ttl_days",
    "version",
    "is_deleted",
]
_SELECT = ", ".join(_COLUMNS[:-2])


def next_version() -> int:
    """ReplacingMergeTree version: wall-clock nanoseconds, so the latest write of a row wins across processes."""
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class ProjectOrder:
    """A keyset order over projects: by `column`, ties broken by id, after the position (value, id) if given."""

    column: Literal["name", "start_time"]
    descending: bool
    after: tuple[str | datetime, uuid.UUID] | None = None

    @property
    def sql_type(self) -> str:
        return "String" if self.column == "name" else "DateTime64(6, 'UTC')"


class ProjectRepository:
    """Projects per tenant. Ingest resolves `session_name` on every batch, so names are cached in memory;
    the cache only ever maps a name to the id it had when read, and is dropped on every write here."""

    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch
        self._by_name: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        self._by_id: dict[tuple[uuid.UUID, uuid.UUID], Project | None] = {}
        self._lock = threading.RLock()

    def _rows(
        self,
        tenant_id: uuid.UUID,
        where: str = "",
        params: dict[str, Any] | None = None,
        page: str = "",
        order: str = "start_time, id",
    ) -> list[Project]:
        sql = f"SELECT {_SELECT} FROM projects FINAL WHERE tenant_id = {{tenant:UUID}} {where} ORDER BY {order} {page}"
        result = self._ch.client().query(sql, parameters={"tenant": tenant_id, **(params or {})})
        return [_project(dict(zip(_COLUMNS, row, strict=False))) for row in result.result_rows]

    def get(self, tenant_id: uuid.UUID, project_id: uuid.UUID) -> Project | None:
        found = self._rows(tenant_id, "AND id = {id:UUID}", {"id": project_id})
        return found[0] if found else None

    def find_by_name(self, tenant_id: uuid.UUID, name: str) -> Project | None:
        found = self._rows(tenant_id, "AND name = {name:String}", {"name": name})
        return found[0] if found else None

    def cached(self, tenant_id: uuid.UUID, project_id: uuid.UUID) -> Project | None:
        """`get` through a cache dropped on every write here (ingest asks for every batch)."""
        key = (tenant_id, project_id)
        if key not in self._by_id:
            self._by_id[key] = self.get(tenant_id, project_id)
        return self._by_id[key]

    def list(
        self,
        tenant_id: uuid.UUID,
        *,
        ids: list[uuid.UUID] | None = None,
        name: str | None = None,
        name_contains: str | None = None,
        metadata: dict[str, Any] | None = None,
        reference_dataset_ids: list[uuid.UUID] | None = None,
        reference_free: bool | None = None,
        limit: int = 100,
        offset: int = 0,
        order: ProjectOrder | None = None,
    ) -> list[Project]:
        """The projects that every condition given selects, in `order` (by default oldest first)."""
        conds: list[str] = []
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if ids:
            conds.append("AND id IN {ids:Array(UUID)}")
            params["ids"] = ids
        if name is not None:
            conds.append("AND name = {name:String}")
            params["name"] = name
        if name_contains:
            conds.append("AND positionCaseInsensitiveUTF8(name, {contains:String}) > 0")
            params["contains"] = name_contains
        for index, (key, value) in enumerate((metadata or {}).items()):
            conds.append(f"AND JSONExtractRaw(extra, 'metadata', {{mk{index}:String}}) = {{mv{index}:String}}")
            params[f"mk{index}"], params[f"mv{index}"] = str(key), orjson.dumps(value).decode()
        if reference_dataset_ids:
            conds.append("AND reference_dataset_id IN {datasets:Array(UUID)}")
            params["datasets"] = reference_dataset_ids
        if reference_free is not None:
            conds.append(
                "AND reference_dataset_id IS NULL" if reference_free else "AND reference_dataset_id IS NOT NULL"
            )
        page = "LIMIT {limit:UInt32} OFFSET {offset:UInt32}"
        if order is None:
            return self._rows(tenant_id, " ".join(conds), params, page)
        direction = "DESC" if order.descending else "ASC"
        if order.after is not None:
            beyond = "<" if order.descending else ">"
            conds.append(f"AND ({order.column}, id) {beyond} ({{after:{order.sql_type}}}, {{after_id:UUID}})")
            params["after"], params["after_id"] = order.after
        return self._rows(tenant_id, " ".join(conds), params, page, f"{order.column} {direction}, id {direction}")

    def delete(self, project: Project) -> None:
        self.save(project, deleted=True)

    def save(self, project: Project, *, deleted: bool = False) -> None:
        row = [
            project.tenant_id,
            project.id,
            project.name,
            project.description,
            orjson.dumps(project.extra or {}).decode(),
            project.start_time,
            project.end_time,
            project.reference_dataset_id,
            project.short_ttl_days,
            project.long_ttl_days,
            next_version(),
            int(deleted),
        ]
        self._ch.client().insert("projects", [row], column_names=_COLUMNS)
        with self._lock:
            self._by_name = {k: v for k, v in self._by_name.items() if v != project.id}
            self._by_id.pop((project.tenant_id, project.id), None)

    def resolve_name(self, tenant_id: uuid.UUID, name: str) -> uuid.UUID:
        """The id of the project called `name`, creating it on first use (runs may name unknown projects)."""
        name = storable(name)
        cached = self._by_name.get((tenant_id, name))
        if cached is not None:
            return cached
        with self._lock:
            cached = self._by_name.get((tenant_id, name))
            if cached is not None:
                return cached
            existing = self.find_by_name(tenant_id, name)
            if existing is None:
                existing = Project(
                    id=project_id_for_name(tenant_id, name),
                    tenant_id=tenant_id,
                    name=name,
                    start_time=datetime.now(UTC),
                )
                self.save(existing)
            self._by_name[(tenant_id, name)] = existing.id
            return existing.id

    def ensure_default(self, tenant_id: uuid.UUID) -> uuid.UUID:
        return self.resolve_name(tenant_id, DEFAULT_PROJECT_NAME)


def _project(row: dict[str, Any]) -> Project:
    row["extra"] = orjson.loads(row["extra"]) if row["extra"] else {}
    times_as_utc(row, ("start_time", "end_time"))
    return Project.model_validate(row)
