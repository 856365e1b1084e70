"""Creating and updating projects, for v1's `/sessions` and v2's `/api/v2/sessions`: names are unique per tenant,
so both versions refuse a name taken by another project in the same way, and an upsert is an update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas import ApiError
from schemas.projects import Project
from storage.projects import ProjectRepository


class ProjectWrites:
    def __init__(self, projects: ProjectRepository) -> None:
        self._projects = projects

    def create(self, project: Project, upsert: Callable[[Project], dict[str, Any]] | None) -> tuple[Project, bool]:
        """The project as stored, and whether it is new. A project of the same name is a 409, unless `upsert`
        gives the changes to make to it (from the request that would have created it)."""
        found = self._projects.find_by_name(project.tenant_id, project.name)
        if found is not None:
            if upsert is None:
                raise ApiError(409, f"a project named {project.name!r} already exists", detail={"id": str(found.id)})
            return self.update(found, upsert(found)), False
        if self._projects.get(project.tenant_id, project.id) is not None:
            raise ApiError(409, f"project {project.id} already exists under another name")
        self._projects.save(project)
        return project, True

    def update(self, project: Project, changes: dict[str, Any]) -> Project:
        """`project` with `changes` (Project fields), stored unless nothing changed."""
        name = changes.get("name")
        if name is not None and name != project.name and self._projects.find_by_name(project.tenant_id, name):
            raise ApiError(409, f"a project named {name!r} already exists")
        updated = project.model_copy(update=changes)
        if updated != project:
            self._projects.save(updated)
        return updated
