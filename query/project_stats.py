"""The run and feedback statistics of projects, for v1's and v2's `include_stats`: the figures of every project of
a page in one grouped pass over runs and one over feedback, whatever the number of projects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from query.filter import Params
from query.run_search import compile_argument
from storage import Storage
from storage.stats import RunStats

_TIME = "DateTime64(6, 'UTC')"


class ProjectStats:
    def __init__(self, storage: Storage) -> None:
        self._runs = RunStats(storage.clickhouse)
        self._feedback = storage.feedback

    def of(
        self,
        tenant_id: uuid.UUID,
        project_ids: list[uuid.UUID],
        *,
        since: datetime | None = None,
        runs_filter: str | None = None,
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """Per project, the run stats and `feedback_stats` (v1's shape, per key) of the runs that started at or
        after `since` and pass `runs_filter` (the argument v2 calls `stats_filter`), feedback of those runs only.
        A project without such runs has a run count of 0 and null figures."""
        params = Params("stats")
        conds = []
        if since is not None:
            conds.append(f"start_time >= {params.add(since, _TIME)}")
        if runs_filter is not None:
            conds.append(compile_argument(runs_filter, "stats_filter", params))
        where = " AND ".join(conds) or "1"
        run_stats = self._runs.per_project(tenant_id, project_ids, where, params.values)
        runs_where = f"session_id IN {{sessions:Array(UUID)}} AND {where}" if conds else None
        feedback = self._feedback.stats_for_projects(tenant_id, project_ids, runs_where, params.values)
        empty: dict[str, Any] | None = None
        out = {}
        for project_id in project_ids:
            figures = run_stats.get(project_id)
            if figures is None:
                empty = empty or self._runs.over(tenant_id, "0", {}, roots=True)
                figures = dict(empty)
            out[project_id] = {**figures, "feedback_stats": feedback.get(project_id) or {}}
        return out

    def facets(self, tenant_id: uuid.UUID, project_id: uuid.UUID) -> list[dict[str, Any]]:
        return self._runs.facets(tenant_id, project_id)
