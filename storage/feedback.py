"""Feedback repository: stored, listed, updated, deleted and aggregated per tenant.

Feedback may arrive before its run (the SDK creates it as soon as it has a run id, and never must get a 404,
protocol §8.1): it is stored as is, and joined to runs at read time through `run_id`, so it links itself
when the run arrives. Updates and deletes are new versions in the ReplacingMergeTree, read with FINAL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from schemas import jsonutil
from schemas.feedback import validate_feedback, validate_patch
from schemas.times import times_as_utc
from storage.clickhouse import ClickHouse

NIL = uuid.UUID(int=0)
COLUMNS = (
    "tenant_id",
    "run_id",
    "key",
    "id",
    "trace_id",
    "session_id",
    "score",
    "value",
    "comment",
    "correction",
    "feedback_source",
    "source_type",
    "feedback_config",
    "extra",
    "error",
    "comparative_experiment_id",
    "feedback_group_id",
    "start_time",
    "created_at",
    "modified_at",
    "version",
    "is_deleted",
)
_READ = ", ".join(COLUMNS[:-2])
_JSON_COLUMNS = ("value", "correction", "feedback_config", "extra")
# `value` holds JSON text; a categorical label is a JSON string, counted by its text.
LABEL_SQL = "assumeNotNull(if(isValidJSON(value) AND JSONType(value) = 'String', JSONExtractString(value), value))"

# Per key aggregates of the feedback rows matching a WHERE, optionally per group (run, time bucket).
STATS_SQL = """
SELECT {group_select} key, count() AS n, avg(score) AS avg, stddevPopOrNull(score) AS stdev, min(score) AS min,
       max(score) AS max, countIf(error) AS errors, countIf(ifNull(comment, '') != '') AS comment_count,
       arraySlice(groupArrayIf(comment, ifNull(comment, '') != ''), 1, 10) AS comments,
       sumMap(if(value IS NULL, map(), map({label}, toUInt64(1)))) AS values
FROM feedback FINAL
WHERE tenant_id = {{tenant:UUID}} AND {where}
GROUP BY {group_by} key
"""

# Feedback of projects: by its own project column (filled at write time when the run was known), or, for
# feedback stored before its run, through the run. The inner set is only the unlinked feedback's run ids, so
# the project's key range of `runs` (one column, no FINAL: ids never change between versions) is filtered by a
# small set instead of becoming a set of every run of the project.
PROJECT_SQL = (
    "(session_id IN {sessions:Array(UUID)} OR (session_id IS NULL AND run_id IN (SELECT id FROM runs "
    "WHERE tenant_id = {tenant:UUID} AND session_id IN {sessions:Array(UUID)} AND id IN (SELECT run_id "
    "FROM feedback WHERE tenant_id = {tenant:UUID} AND session_id IS NULL))))"
)

# The run -> project map of the feedback stored before its run, for runs of these projects.
_UNLINKED_SQL = (
    "SELECT id, session_id FROM runs WHERE tenant_id = {tenant:UUID} AND session_id IN {sessions:Array(UUID)} "
    "AND id IN (SELECT run_id FROM feedback WHERE tenant_id = {tenant:UUID} AND session_id IS NULL) "
    "LIMIT 1 BY id"
)


def of_runs(where: str) -> str:
    """A feedback WHERE for the feedback of the runs that a WHERE over `runs` selects: feedback joins its run
    through `run_id` at read time, so feedback stored before its run counts as soon as the run is there."""
    return f"run_id IN (SELECT id FROM runs FINAL WHERE tenant_id = {{tenant:UUID}} AND {where})"


RetentionHook = Callable[[uuid.UUID, list[uuid.UUID], list[uuid.UUID]], None]


def stats_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": row["n"],
        "avg": row["avg"],
        "stdev": row["stdev"],
        "min": row["min"],
        "max": row["max"],
        "errors": row["errors"],
        "values": dict(row["values"]),
        "comments": list(row["comments"]),
        "comment_count": row["comment_count"],
    }


class FeedbackRepository:
    def __init__(self, ch: ClickHouse, *, on_feedback: RetentionHook | None = None) -> None:
        """`on_feedback(tenant, trace_ids, run_ids)` runs after feedback is stored: traces with feedback are
        kept for the long-lived period."""
        self._ch = ch
        self.on_feedback = on_feedback

    # -- writes ------------------------------------------------------------------------------------------

    def ingest(self, tenant_id: uuid.UUID, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store SDK feedback dicts (multipart `feedback.<id>` parts, POST /feedback). Idempotent by id."""
        stored = [validate_feedback(item) for item in items]
        self._link(tenant_id, stored)
        self._insert(tenant_id, stored)
        if self.on_feedback is not None and stored:
            traces = [f["trace_id"] for f in stored if f["trace_id"]]
            runs = [f["run_id"] for f in stored if f["run_id"] and not f["trace_id"]]
            self.on_feedback(tenant_id, traces, runs)
        return stored

    def _link(self, tenant_id: uuid.UUID, items: list[dict[str, Any]]) -> None:
        """Fill project and trace from the run when the client did not send them and the run is stored: at write
        time so that project reads find the feedback by its own columns, and again on every read for feedback
        stored before its run (project filters link it in SQL, `PROJECT_SQL`)."""
        unlinked = {f["run_id"] for f in items if f["run_id"] and not (f["session_id"] and f["trace_id"])}
        if not unlinked:
            return
        located = (
            self._ch.client()
            .query(
                "SELECT id, session_id, trace_id FROM run_ids FINAL "
                "WHERE tenant_id = {t:UUID} AND id IN {ids:Array(UUID)}",
                parameters={"t": tenant_id, "ids": list(unlinked)},
            )
            .result_rows
        )
        where = {run_id: (session_id, trace_id) for run_id, session_id, trace_id in located}
        for f in items:
            if f["run_id"] in where:
                f["session_id"] = f["session_id"] or where[f["run_id"]][0]
                f["trace_id"] = f["trace_id"] or where[f["run_id"]][1]

    def _insert(self, tenant_id: uuid.UUID, items: list[dict[str, Any]], *, deleted: bool = False) -> None:
        if not items:
            return
        version = time.time_ns()
        rows = []
        for f in items:
            source = f["feedback_source"]
            rows.append(
                [
                    tenant_id,
                    f["run_id"] or NIL,
                    f["key"],
                    f["id"],
                    f["trace_id"],
                    f["session_id"],
                    f["score"],
                    None if f["value"] is None else jsonutil.dumps_str(f["value"]),
                    f["comment"],
                    None if f["correction"] is None else jsonutil.dumps_str(f["correction"]),
                    jsonutil.dumps_str(source),
                    source["type"],
                    None if f["feedback_config"] is None else jsonutil.dumps_str(f["feedback_config"]),
                    None if f["extra"] is None else jsonutil.dumps_str(f["extra"]),
                    f["error"],
                    f["comparative_experiment_id"],
                    f["feedback_group_id"],
                    f["start_time"],
                    f["created_at"],
                    f["modified_at"],
                    version,
                    int(deleted),
                ]
            )
        self._ch.client().insert("feedback", rows, column_names=COLUMNS)

    def update(self, tenant_id: uuid.UUID, feedback_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any] | None:
        """PATCH semantics of the SDK: the keys present are set, and here `null` clears (protocol §8.2)."""
        checked = validate_patch(changes)
        current = self.get(tenant_id, feedback_id)
        if current is None:
            return None
        current.update(checked)
        current["modified_at"] = datetime.now(UTC)
        self._insert(tenant_id, [current])
        return current

    def delete(self, tenant_id: uuid.UUID, feedback_id: uuid.UUID) -> bool:
        current = self.get(tenant_id, feedback_id)
        if current is None:
            return False
        self._insert(tenant_id, [current], deleted=True)
        return True

    # -- reads -------------------------------------------------------------------------------------------

    def _select(self, where: str, params: dict[str, Any], suffix: str = "") -> list[dict[str, Any]]:
        client = self._ch.client()
        result = client.query(
            f"SELECT {_READ} FROM feedback FINAL WHERE tenant_id = {{tenant:UUID}} AND {where} {suffix}",
            parameters=params,
        )
        rows = [_from_row(dict(zip(COLUMNS, row, strict=False))) for row in result.result_rows]
        self._link(params["tenant"], rows)
        return rows

    def get(self, tenant_id: uuid.UUID, feedback_id: uuid.UUID) -> dict[str, Any] | None:
        found = self._select("id = {id:UUID}", {"tenant": tenant_id, "id": feedback_id})
        return found[0] if found else None

    def list(
        self,
        tenant_id: uuid.UUID,
        *,
        run_ids: list[uuid.UUID] | None = None,
        keys: list[str] | None = None,
        sources: list[str] | None = None,
        sessions: list[uuid.UUID] | None = None,
        has_comment: bool | None = None,
        has_score: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        conds = ["1"]
        params: dict[str, Any] = {"tenant": tenant_id, "limit": limit, "offset": offset}
        if run_ids:
            conds.append("run_id IN {runs:Array(UUID)}")
            params["runs"] = run_ids
        if keys:
            conds.append("key IN {keys:Array(String)}")
            params["keys"] = keys
        if sources:
            conds.append("source_type IN {sources:Array(String)}")
            params["sources"] = sources
        if sessions:
            conds.append(PROJECT_SQL)
            params["sessions"] = sessions
        if has_comment is not None:
            conds.append("ifNull(comment, '') != ''" if has_comment else "ifNull(comment, '') = ''")
        if has_score is not None:
            conds.append("score IS NOT NULL" if has_score else "score IS NULL")
        return self._select(
            " AND ".join(conds), params, "ORDER BY created_at, id LIMIT {limit:UInt32} OFFSET {offset:UInt32}"
        )

    def stats(
        self, tenant_id: uuid.UUID, where: str, params: dict[str, Any], group: str | None = None
    ) -> list[dict[str, Any]]:
        """Per (group, key) aggregates: n, avg, stdev, min, max, errors, categorical value counts, comments.
        A run with several feedbacks of one key counts each. `group` is an SQL expression aliased `grp`."""
        sql = STATS_SQL.format(
            group_select=f"{group} AS grp," if group else "",
            group_by="grp," if group else "",
            label=LABEL_SQL,
            where=where,
        )
        return list(self._ch.client().query(sql, parameters={"tenant": tenant_id, **params}).named_results())

    def stats_by_key(self, tenant_id: uuid.UUID, where: str, params: dict[str, Any]) -> dict[str, Any]:
        return {row["key"]: stats_entry(row) for row in self.stats(tenant_id, where, params)}

    def stats_for_projects(
        self,
        tenant_id: uuid.UUID,
        project_ids: list[uuid.UUID],
        runs_where: str | None = None,
        runs_params: dict[str, Any] | None = None,
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """Feedback stats per project, in two queries whatever the number of projects: the runs of feedback
        stored before them are mapped to their projects first (see `PROJECT_SQL`), then one grouped pass.
        `runs_where` (a WHERE over `runs`) narrows it to the feedback of the runs it selects."""
        params: dict[str, Any] = {"tenant": tenant_id, "sessions": project_ids}
        unlinked = self._ch.client().query(_UNLINKED_SQL, parameters=params).result_rows
        params.update(runs_params or {})
        params["runs"], params["run_sessions"] = [r for r, _ in unlinked], [s for _, s in unlinked]
        group = "ifNull(session_id, mapFromArrays({runs:Array(UUID)}, {run_sessions:Array(UUID)})[run_id])"
        where = "(session_id IN {sessions:Array(UUID)} OR (session_id IS NULL AND run_id IN {runs:Array(UUID)}))"
        if runs_where is not None:
            where = f"{where} AND {of_runs(runs_where)}"
        out: dict[uuid.UUID, dict[str, Any]] = {project_id: {} for project_id in project_ids}
        for row in self.stats(tenant_id, where, params, group):
            out[row["grp"]][row["key"]] = stats_entry(row)
        return out

    def stats_for_runs(self, tenant_id: uuid.UUID, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        """`feedback_stats` of each run: {run_id: {key: stats}}."""
        out: dict[uuid.UUID, dict[str, Any]] = {}
        for row in self.stats(tenant_id, "run_id IN {runs:Array(UUID)}", {"runs": run_ids}, "run_id"):
            out.setdefault(row["grp"], {})[row["key"]] = stats_entry(row)
        return out


def _from_row(row: dict[str, Any]) -> dict[str, Any]:
    row["run_id"] = None if row["run_id"] == NIL else row["run_id"]
    for key in _JSON_COLUMNS:
        row[key] = None if row[key] is None else jsonutil.loads(row[key])
    row["feedback_source"] = jsonutil.loads(row["feedback_source"]) if row["feedback_source"] else {}
    times_as_utc(row, ("start_time", "created_at", "modified_at"))
    return row


def feedback_json(f: dict[str, Any]) -> dict[str, Any]:
    """The Feedback object of protocol §8.2: `run_id`, `trace_id`, `created_at`, `modified_at` always present."""
    return {
        "id": str(f["id"]),
        "created_at": f["created_at"].isoformat(),
        "modified_at": f["modified_at"].isoformat(),
        "run_id": str(f["run_id"]) if f["run_id"] else None,
        "trace_id": str(f["trace_id"]) if f["trace_id"] else None,
        "session_id": str(f["session_id"]) if f["session_id"] else None,
        "key": f["key"],
        "score": f["score"],
        "value": f["value"],
        "comment": f["comment"],
        "correction": f["correction"],
        "feedback_source": f["feedback_source"],
        "feedback_config": f["feedback_config"],
        "extra": f["extra"],
        "error": f["error"],
        "start_time": f["start_time"].isoformat() if f["start_time"] else None,
        "comparative_experiment_id": str(f["comparative_experiment_id"]) if f["comparative_experiment_id"] else None,
        "feedback_group_id": str(f["feedback_group_id"]) if f["feedback_group_id"] else None,
    }
