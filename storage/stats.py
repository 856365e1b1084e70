"""Run statistics computed in ClickHouse over a tenant-scoped WHERE on `runs`: project stats, POST /runs/stats,
and the run facets of a project. Latencies are in seconds."""

from __future__ import annotations

import uuid
from typing import Any

from storage.clickhouse import ClickHouse

# The aliases reuse column names (`total_tokens`), so the runs are selected in a subquery: a WHERE beside them would
# name the alias, an aggregate (a filter on tokens or cost failed so), and the aggregates qualify columns (`r.`).
# `{roots}` narrows latency, first-token, error and streaming figures (project stats use root runs, the traces;
# stats over a filtered run set use every matched run). Token and cost totals always sum every matched run.
_RUN_STATS = """
SELECT {group_select}
    count() AS run_count,
    quantilesIf(0.5, 0.99)(dateDiff('microsecond', r.start_time, r.end_time) / 1e6,
        {roots} AND r.end_time IS NOT NULL) AS latency,
    quantilesIf(0.5, 0.99)(dateDiff('microsecond', r.start_time, r.first_token_time) / 1e6,
        {roots} AND r.first_token_time IS NOT NULL) AS first_token,
    sum(r.total_tokens) AS total_tokens, sum(r.prompt_tokens) AS prompt_tokens,
    sum(r.completion_tokens) AS completion_tokens, medianIf(r.total_tokens, {roots}) AS median_tokens,
    sum(r.total_cost) AS total_cost, sum(r.prompt_cost) AS prompt_cost, sum(r.completion_cost) AS completion_cost,
    countIf({roots} AND r.error IS NOT NULL) / nullIf(countIf({roots}), 0) AS error_rate,
    countIf({roots} AND r.first_token_time IS NOT NULL) / nullIf(countIf({roots}), 0) AS streaming_rate,
    max(r.start_time) AS last_run_start_time
FROM (SELECT * FROM runs FINAL WHERE tenant_id = {{tenant:UUID}} AND {where}) AS r
{group_by}
"""

# One FINAL pass for every facet (four UNION ALL passes took twice as long on 1M runs). The counts are
# approximate for high-cardinality columns (names), exact for the few values of the others.
_FACETS = """
SELECT approx_top_count(20)(toString(run_type)) AS run_type, approx_top_count(20)(name) AS name,
       approx_top_count(20)(toString(status)) AS status, approx_top_countArray(20)(tags) AS tags
FROM runs FINAL
WHERE tenant_id = {tenant:UUID} AND session_id = {project:UUID}
"""


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    latency, first_token = row.pop("latency"), row.pop("first_token")
    if not row["run_count"]:
        latency = first_token = [None, None]
    row.update(
        latency_p50=latency[0], latency_p99=latency[1], first_token_p50=first_token[0], first_token_p99=first_token[1]
    )
    for key, value in row.items():
        if isinstance(value, float) and value != value:  # NaN from quantiles/median over nothing
            row[key] = None
    if row.get("last_run_start_time") is not None and not row["run_count"]:
        row["last_run_start_time"] = None
    return row


class RunStats:
    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch

    def over(self, tenant_id: uuid.UUID, where: str, params: dict[str, Any], *, roots: bool) -> dict[str, Any]:
        """Stats of the runs matching `where` (bound parameters only)."""
        sql = _RUN_STATS.format(group_select="", roots="r.is_root" if roots else "1", where=where, group_by="")
        rows = list(self._ch.client().query(sql, parameters={"tenant": tenant_id, **params}).named_results())
        return _shape(rows[0])

    def per_project(
        self, tenant_id: uuid.UUID, project_ids: list[uuid.UUID], where: str = "1", params: dict[str, Any] | None = None
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """Stats of each project's runs that `where` (bound parameters only) selects as well."""
        sql = _RUN_STATS.format(
            group_select="session_id,",
            roots="r.is_root",
            where=f"session_id IN {{projects:Array(UUID)}} AND {where}",
            group_by="GROUP BY session_id",
        )
        parameters = {"tenant": tenant_id, "projects": project_ids, **(params or {})}
        result = self._ch.client().query(sql, parameters=parameters)
        return {row.pop("session_id"): _shape(row) for row in result.named_results()}

    def facets(self, tenant_id: uuid.UUID, project_id: uuid.UUID) -> list[dict[str, Any]]:
        """Most frequent values of run_type, name, status and tags, each with the filter that selects them."""
        (row,) = (
            self._ch.client().query(_FACETS, parameters={"tenant": tenant_id, "project": project_id}).named_results()
        )
        out = []
        for key, top in row.items():
            for entry in top:
                value = entry["item"]
                quoted = value.replace("\\", "\\\\").replace('"', '\\"')
                query = f'has(tags, "{quoted}")' if key == "tags" else f'eq({key}, "{quoted}")'
                out.append({"key": key, "value": value, "count": entry["count"], "query": query})
        return out
