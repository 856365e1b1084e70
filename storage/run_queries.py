"""Tenant-scoped reads of `runs` (and the `run_ids` locator): the only place run SQL is executed.

Callers pass a WHERE fragment built from bound parameters (the query service's filter compiler); this module adds
the tenant scope, the collapse of a run's versions to its latest (deleted runs vanish at once) and the column
list, so a caller can neither forget the tenant nor read payload columns it did not ask for.

Versions are collapsed after filtering instead of with `FINAL`: `FINAL` merges every granule the primary key
selects, and with more than one part it adds back every range that overlaps a granule a skip index kept, so a
trace, a run by id or a selective filter read the whole time range (measured on 1M runs: a 1,000-run trace read
57,000 rows with FINAL, 4,200 without; newest 100 runs with a selective metadata filter 763,000 rows vs 119,000;
and `ORDER BY start_time DESC LIMIT` stops early only without FINAL). Filtering first is exact when the
filter tests only what every version of a run shares (`latest`); for any other filter (`newest`) the matching
version must also be the run's latest, which a second, key-bounded read checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.times import times_as_utc
from storage import row_meta
from storage.clickhouse import ClickHouse
from storage.runs import RUN_COLUMNS

# Columns every run read returns. Payload columns are added only on request (they dominate the bytes read).
PAYLOAD_COLUMNS = ("inputs", "outputs", "extra", "events", "serialized")
_NOT_RETURNED = (
    "tenant_id",
    "metadata",
    "inputs_kv",
    "outputs_kv",
    "ttl_days",
    "version",
    "is_deleted",
)  # filters only
META_COLUMNS = tuple(c for c in RUN_COLUMNS if c not in PAYLOAD_COLUMNS + _NOT_RETURNED)
TREE_COLUMNS = ("id", "parent_run_id", "parent_run_ids", "dotted_order", "start_time")

# Children can start a little before their parent when clocks of distributed services disagree; trace reads
# look back this far from the root's start (the trace_id bloom filter removes the rest).
TRACE_CLOCK_SKEW = timedelta(minutes=5)

_TENANT = "{tenant:UUID}"


def _quantiles(value: str, condition: str) -> str:
    """SQL for the exact p50 and p99 of `value` over the rows where `condition` holds, [] when it holds for none:
    ClickHouse's exact quantiles of no value are 0, which would pass for a measured figure."""
    return f"if(countIf({condition}) > 0, quantilesExactIf(0.5, 0.99)({value}, {condition}), [])"


_RUN_LATENCY = _quantiles(
    "(toUnixTimestamp64Micro(end_time) - toUnixTimestamp64Micro(start_time)) / 1e6", "is_root AND end_time IS NOT NULL"
)
# What `RunReader.threads` aggregates per thread. The figures read narrow columns only.
_THREAD_FIGURES = f"""
    uniqExactIf(trace_id, is_root) AS trace_count,
    count() AS run_count,
    minIf(start_time, is_root) AS first_start_time,
    maxIf(start_time, is_root) AS last_start_time,
    max(end_time) AS last_end_time,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(total_tokens) AS total_tokens,
    sum(prompt_cost) AS prompt_cost,
    sum(completion_cost) AS completion_cost,
    sum(total_cost) AS total_cost,
    countIf(is_root AND status = 'error') AS error_count,
    {_RUN_LATENCY} AS latency,
    any(session_id) AS thread_session_id"""
# The sort keys of a thread's first and last root, whose inputs and outputs are its previews.
_THREAD_ENDS = """
    argMinIf((session_id, start_time, id), start_time, is_root) AS first_root,
    argMaxIf((session_id, start_time, id), start_time, is_root) AS last_root"""
# A run's details are the JSON text of a flat object (category -> count or cost), '' when absent: summed per
# category. Strings and nested objects are left out.
_DETAIL_TYPES = {
    "prompt_token_details": "Int64",
    "completion_token_details": "Int64",
    "prompt_cost_details": "Float64",
    "completion_cost_details": "Float64",
}
_THREAD_DETAILS = ",".join(
    f"\n    sumMap(CAST(JSONExtractKeysAndValues({column}, '{t}'), 'Map(String, {t})')) AS {column}"
    for column, t in _DETAIL_TYPES.items()
)

_TRACE_LATENCY = _quantiles(
    "(toUnixTimestamp64Micro(root_end) - toUnixTimestamp64Micro(root_start)) / 1e6", "has_root AND root_end IS NOT NULL"
)
_TRACE_FIRST_TOKEN = _quantiles(
    "(toUnixTimestamp64Micro(first_token_time) - toUnixTimestamp64Micro(root_start)) / 1e6",
    "has_root AND first_token_time IS NOT NULL",
)
# What `RunReader.thread_totals` reads per trace of a thread (one group per thread id and trace id), and then
# aggregates over those traces. A trace counts when its root is among the runs read; its first token is the
# earliest of its runs'; tokens and costs are summed over every run read, whether or not its root was.
_TRACE_FIGURES = """
    max(is_root) AS has_root,
    anyIf(start_time, is_root) AS root_start,
    anyIf(end_time, is_root) AS root_end,
    countIf(is_root AND status = 'error') > 0 AS errored,
    min(first_token_time) AS first_token_time,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(total_tokens) AS trace_tokens,
    sum(prompt_cost) AS prompt_cost,
    sum(completion_cost) AS completion_cost,
    sum(total_cost) AS total_cost"""
# An alias of the outer query must not name a column that another of its aggregates reads: ClickHouse would
# substitute the aggregate (hence `trace_tokens`, and `first_token` for the quantiles of `first_token_time`).
_TOTALS = f"""
    uniqExactIf(thread_id, has_root) AS thread_count,
    countIf(has_root) AS trace_count,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(trace_tokens) AS total_tokens,
    sum(prompt_cost) AS prompt_cost,
    sum(completion_cost) AS completion_cost,
    sum(total_cost) AS total_cost,
    countIf(has_root AND errored) / nullIf(countIf(has_root), 0) AS error_rate,
    countIf(has_root AND root_end IS NOT NULL AND first_token_time IS NOT NULL)
        / nullIf(countIf(has_root AND root_end IS NOT NULL), 0) AS streaming_rate,
    {_TRACE_LATENCY} AS latency,
    {_TRACE_FIRST_TOKEN} AS first_token,
    if(countIf(has_root) > 0, quantileExactIf(0.5)(trace_tokens, has_root), NULL) AS median_tokens"""


class TooManyRows(Exception):
    """A read bounded by `max_rows` found more rows: answering would hold them all in memory at once."""


@dataclass(frozen=True, slots=True)
class RunLocation:
    """Where a run lives in `runs`' sort key, from the `run_ids` table."""

    id: uuid.UUID
    session_id: uuid.UUID
    start_time: datetime
    trace_id: uuid.UUID


class RunReader:
    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch

    def _query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        result = self._ch.client().query(sql, parameters=params)
        names = result.column_names
        rows = [dict(zip(names, row, strict=True)) for row in result.result_rows]
        for row in rows:
            times_as_utc(row, ("start_time", "end_time", "first_token_time", "created_at"))
        return rows

    def locate(self, tenant_id: uuid.UUID, run_ids: list[uuid.UUID]) -> list[RunLocation]:
        if not run_ids:
            return []
        # A run's location never changes between versions, so only whether its latest version is deleted needs
        # the collapse: grouping the few matching rows is cheaper than FINAL, which merges a granule of every part.
        rows = self._query(
            "SELECT id, any(session_id) AS session_id, any(start_time) AS start_time, any(trace_id) AS trace_id "
            f"FROM run_ids WHERE tenant_id = {_TENANT} AND id IN {{ids:Array(UUID)}} "
            "GROUP BY id HAVING NOT argMax(is_deleted, version)",
            {"tenant": tenant_id, "ids": run_ids},
        )
        return [RunLocation(**row) for row in rows]

    def latest(
        self,
        tenant_id: uuid.UUID,
        *,
        where: str,
        params: dict[str, Any],
        columns: tuple[str, ...] = META_COLUMNS,
        order_by: str | None = "start_time DESC, id DESC",
        match: str | None = None,
        max_rows: int | None = None,
        scattered: bool = False,
    ) -> list[dict[str, Any]]:
        """Latest versions of the runs matching `where`, which must test only columns that every version of a run
        shares (sort key, trace_id, parent ids): then all versions of a run match or none does, and collapsing
        the matching rows is what FINAL returns. `match`, any condition, is evaluated on every version and
        returned, of the latest one, as the boolean column `_match`.

        The versions are collapsed here, not with `LIMIT 1 BY id` in SQL, where ClickHouse sorted the wide rows
        twice (a 1,000-run trace: 30 -> 20 ms). `order_by` must keep a run's versions together (any order of
        sort-key columns or `dotted_order` does); None returns the runs in no particular order. More than
        `max_rows` matching rows (versions, so at most as many runs) raise TooManyRows. `scattered`: the runs lie
        far apart in the table, so the columns `row_meta` holds are read through it."""
        read = row_meta.select(columns) if scattered else columns
        select = ", ".join(dict.fromkeys((*read, "id", "version", "is_deleted")))
        matched = f", ({match}) AS _match" if match else ""
        order = f" ORDER BY {order_by}" if order_by else ""
        limit = f" LIMIT {int(max_rows) + 1}" if max_rows is not None else ""
        rows = self._query(
            f"SELECT {select}{matched} FROM runs WHERE tenant_id = {_TENANT} AND ({where}){order}{limit}",
            {**params, "tenant": tenant_id},
        )
        if max_rows is not None and len(rows) > max_rows:
            raise TooManyRows(max_rows)
        latest: dict[uuid.UUID, dict[str, Any]] = {}
        for row in rows:
            kept = latest.get(row["id"])
            if kept is None or row["version"] > kept["version"]:
                latest[row["id"]] = row  # a dict keeps the key's first position: the SQL order stands
        found = [row for row in latest.values() if not row["is_deleted"]]
        if scattered:
            for row in found:
                row_meta.expand(row)
        return found

    def newest(
        self,
        tenant_id: uuid.UUID,
        *,
        where: str,
        params: dict[str, Any],
        columns: tuple[str, ...] = META_COLUMNS,
        descending: bool = True,
        limit: int,
        shared: bool = False,
        on_candidates: Callable[[list[uuid.UUID]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The first `limit` runs in (start_time, id) order whose latest version matches `where` (any condition).

        Late materialisation: the filter runs over the narrow key columns without FINAL, reading in key order
        and stopping at `limit` matches; then the full rows of just those keys are read, collapsed to their
        latest version, and a run counts only if that latest version is the one that matched and is not
        deleted. Runs dropped by that check (an older version matched) are replaced by reading further.

        `shared`: `where` tests only columns every version of a run shares, so all versions of a run match or
        none does; then one query reads the full rows in key order (a run's versions are adjacent there) and
        they are collapsed here, which saves the second read (measured on 1M runs: newest 100 roots 42 -> 25 ms
        of SQL).

        `on_candidates` is told the ids of each batch of matches before their rows are read (not with `shared`),
        so that a caller can start reading what it needs of them meanwhile."""
        direction = "DESC" if descending else "ASC"
        if shared:
            return self._newest_shared(tenant_id, where, params, columns, direction, limit)
        found: list[dict[str, Any]] = []
        seen: set[uuid.UUID] = set()
        bound, bound_params = "", {}
        while len(found) < limit:
            keys = self._query(
                "SELECT session_id, start_time, id, version FROM runs "
                f"WHERE tenant_id = {_TENANT} AND ({where}){bound} "
                f"ORDER BY start_time {direction}, id {direction} LIMIT {int(limit)}",
                {**params, **bound_params, "tenant": tenant_id},
            )
            matched: dict[uuid.UUID, int] = {}
            for key in keys:
                if key["id"] not in seen:
                    matched[key["id"]] = max(key["version"], matched.get(key["id"], 0))
            if matched:
                if on_candidates is not None:
                    on_candidates(list(matched))
                rows = self.latest(
                    tenant_id,
                    where="(session_id, start_time, id) IN {keys:Array(Tuple(UUID, DateTime64(6, 'UTC'), UUID))}",
                    params={"keys": [(k["session_id"], k["start_time"], k["id"]) for k in keys]},
                    columns=columns,
                    order_by=f"start_time {direction}, id {direction}",
                    scattered=True,
                )
                found.extend(row for row in rows if row["version"] == matched.get(row["id"]))
                seen.update(matched)
            if len(keys) < limit:
                break
            bound, bound_params = _after(keys[-1], descending)
        return found[:limit]  # batches come in key order, and each batch is ordered by ClickHouse

    def _newest_shared(
        self,
        tenant_id: uuid.UUID,
        where: str,
        params: dict[str, Any],
        columns: tuple[str, ...],
        direction: str,
        limit: int,
    ) -> list[dict[str, Any]]:
        """`newest` for a `where` every version of a run satisfies alike: versions collapsed in key order."""
        select = ", ".join(dict.fromkeys((*columns, "id", "start_time", "version", "is_deleted")))
        found: list[dict[str, Any]] = []
        bound, bound_params = "", {}
        batch = 2 * limit  # room for unmerged versions (the newest runs are the likeliest to have several)
        while len(found) < limit:
            rows = self._query(
                f"SELECT {select} FROM runs WHERE tenant_id = {_TENANT} AND ({where}){bound} "
                f"ORDER BY start_time {direction}, id {direction} LIMIT {int(batch)}",
                {**params, **bound_params, "tenant": tenant_id},
            )
            runs: list[dict[str, Any]] = []  # latest version of each run, in key order
            for row in rows:
                if runs and runs[-1]["id"] == row["id"]:
                    if row["version"] > runs[-1]["version"]:
                        runs[-1] = row
                else:
                    runs.append(row)
            exhausted = len(rows) < batch
            if not exhausted:
                runs.pop()  # the limit may have cut this run's versions short: read it again with the next batch
                if not runs:  # one run has more versions than the batch holds
                    batch *= 2
                    continue
            found.extend(run for run in runs if not run["is_deleted"])
            if exhausted:
                break
            bound, bound_params = _after(runs[-1], direction == "DESC")
        return found[:limit]

    def trace_scope(self, tenant_id: uuid.UUID, trace_id: uuid.UUID) -> tuple[str, dict[str, Any]]:
        """A WHERE fragment for all runs of a trace that uses the sort-key prefix when the root is known."""
        root = self.locate(tenant_id, [trace_id])
        if not root:  # root not ingested (yet): the bloom filter on trace_id is all there is
            return "trace_id = {trace:UUID}", {"trace": trace_id}
        return (
            "session_id = {trace_session:UUID} AND start_time >= {trace_start:DateTime64(6, 'UTC')} "
            "AND trace_id = {trace:UUID}",
            {
                "trace": trace_id,
                "trace_session": root[0].session_id,
                "trace_start": root[0].start_time - TRACE_CLOCK_SKEW,
            },
        )

    def threads(
        self,
        tenant_id: uuid.UUID,
        *,
        where: str,
        params: dict[str, Any],
        having: str,
        limit: int,
        previews: bool = True,
        details: bool = False,
    ) -> list[dict[str, Any]]:
        """Runs grouped by thread id: per-thread counts, time span, token/cost totals and latency quantiles.
        Traces and latencies come from the root runs, tokens and cost from every run carrying the thread id.
        `previews` adds the first trace's inputs and the last one's outputs (`first_inputs`, `last_outputs` and
        the `payload_refs` of each, `first_refs` and `last_refs`); `details` the per-category sums of the token
        and cost details."""
        aggregates = [
            _THREAD_FIGURES,
            *([_THREAD_ENDS] if previews else []),
            *([_THREAD_DETAILS] if details else []),
        ]
        sql = f"""
            SELECT thread_id, {", ".join(aggregates)}
            FROM runs FINAL
            WHERE tenant_id = {_TENANT} AND thread_id != '' AND ({where})
            GROUP BY thread_id
            HAVING trace_count > 0 AND ({having})
            ORDER BY last_start_time DESC, thread_id DESC
            LIMIT {int(limit)}
        """
        rows = self._query(sql, {**params, "tenant": tenant_id})
        for row in rows:
            times_as_utc(row, ("first_start_time", "last_start_time", "last_end_time"))
        if previews and rows:
            self._add_previews(tenant_id, rows)
        return rows

    def _add_previews(self, tenant_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
        """The payloads of the page's first and last roots, read by their sort keys once the page is known:
        aggregating the payload columns themselves read them for every run in the window (measured on 1M runs,
        the v2 thread list of a 10-day window: 490 -> 250 ms; of the default day: 105 -> 95 ms)."""
        ends = [(row.pop("first_root"), row.pop("last_root")) for row in rows]
        found = {
            run["id"]: run
            for run in self.latest(
                tenant_id,
                where="(session_id, start_time, id) IN {ends:Array(Tuple(UUID, DateTime64(6, 'UTC'), UUID))}",
                params={"ends": list({key for pair in ends for key in pair})},
                columns=("inputs", "outputs", "payload_refs"),
                order_by=None,
            )
        }
        for row, (first_key, last_key) in zip(rows, ends, strict=True):
            first, last = found.get(first_key[2], {}), found.get(last_key[2], {})
            row.update(
                first_inputs=first.get("inputs", ""),
                first_refs=first.get("payload_refs", {}),
                last_outputs=last.get("outputs"),
                last_refs=last.get("payload_refs", {}),
            )

    def thread_totals(
        self, tenant_id: uuid.UUID, *, where: str, params: dict[str, Any], details: bool = False
    ) -> dict[str, Any]:
        """Figures over every thread whose runs `where` selects, computed per trace first: the trace figures
        (latency, first token, error, tokens) are a trace's, not a run's, and a thread's traces are many groups
        of runs. `latency` and `first_token` are [p50, p99] in seconds, [] when there is no value; `details`
        adds the per-category sums of the token and cost details."""
        per_trace = f"{_TRACE_FIGURES},{_THREAD_DETAILS}" if details else _TRACE_FIGURES
        totals = _TOTALS + "".join(f",\n    sumMap({column}) AS {column}" for column in _DETAIL_TYPES if details)
        sql = f"""
            SELECT {totals}
            FROM (
                SELECT thread_id, {per_trace}
                FROM runs FINAL
                WHERE tenant_id = {_TENANT} AND thread_id != '' AND ({where})
                GROUP BY thread_id, trace_id
            )
        """
        return self._query(sql, {**params, "tenant": tenant_id})[0]


def _after(key: dict[str, Any], descending: bool) -> tuple[str, dict[str, Any]]:
    """A WHERE fragment for the keys after `key` in (start_time, id) order, and its parameters."""
    after = "<" if descending else ">"
    t = "{after_t:DateTime64(6, 'UTC')}"
    return (
        f" AND start_time {after}= {t} AND (start_time {after} {t} OR id {after} {{after_id:UUID}})",
        {"after_t": key["start_time"], "after_id": key["id"]},
    )
