"""Statistics over filtered runs (`POST /runs/stats`), feedback statistics over time buckets
(`POST /feedback/stats`), and deleting runs (`POST /runs/delete`)."""

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from query.run_reads import JSON_BODY, JsonBody, json_response
from query.run_search import RunQuery, RunSearch
from schemas import ApiError, Tenant
from schemas.tenancy import current_tenant
from schemas.times import assume_utc
from storage import Storage
from storage.deletes import Deleter
from storage.feedback import of_runs, stats_entry
from storage.run_queries import RunReader
from storage.stats import RunStats

CurrentTenant = Annotated[Tenant, Depends(current_tenant)]
MAX_DELETE_TRACES = 1000
_BUCKET = re.compile(r"(\d+)\s*(m|h|d)")
_UNITS = {"m": "MINUTE", "h": "HOUR", "d": "DAY"}


def router(storage: Storage) -> APIRouter:
    api = APIRouter(tags=["stats"])
    search = RunSearch(RunReader(storage.clickhouse))
    stats = RunStats(storage.clickhouse)
    deleter = Deleter(storage.clickhouse, storage.blobs)

    @api.post("/runs/stats", summary="Statistics of the runs a runs-query body selects", openapi_extra=JSON_BODY)
    def run_stats(tenant: CurrentTenant, body: JsonBody) -> Response:
        built = search.where(tenant.id, RunQuery.parse_body(body if body is not None else {}))
        where, params = built if built is not None else ("0", {})
        out = stats.over(tenant.id, where, params, roots=False)
        out["feedback_stats"] = storage.feedback.stats_by_key(tenant.id, of_runs(where), params)
        return json_response(out)

    @api.post("/feedback/stats", summary="Feedback statistics per key over time buckets", openapi_extra=JSON_BODY)
    def feedback_stats(tenant: CurrentTenant, body: JsonBody) -> Response:
        if not isinstance(body, dict):
            raise ApiError(422, "the body must be a JSON object")
        match = _BUCKET.fullmatch(str(body.get("bucket", "1d")).strip())
        if not match or not 1 <= int(match.group(1)) <= 10_000:
            raise ApiError(422, "bucket must look like 15m, 1h or 1d", detail={"field": "bucket"})
        query = RunQuery.parse_body({k: body[k] for k in ("session", "filter", "run_type", "is_root") if k in body})
        conds, params = [], {}
        if query.sessions or query.filter or query.run_type or query.is_root is not None:
            built = search.where(tenant.id, query)
            if built is None:
                return json_response([])
            conds.append(of_runs(built[0]))
            params.update(built[1])
        for bound, op in (("start_time", ">="), ("end_time", "<")):
            if body.get(bound):
                try:
                    at = datetime.fromisoformat(str(body[bound]))
                except ValueError:
                    raise ApiError(422, f"{bound} is not an ISO 8601 timestamp", detail={"field": bound}) from None
                conds.append(f"created_at {op} {{{bound}:DateTime64(6, 'UTC')}}")
                params[bound] = assume_utc(at)
        group = f"toStartOfInterval(created_at, INTERVAL {int(match.group(1))} {_UNITS[match.group(2)]})"
        buckets: dict[Any, dict[str, Any]] = {}
        for row in storage.feedback.stats(tenant.id, " AND ".join(conds) or "1", params, group):
            buckets.setdefault(row["grp"], {})[row["key"]] = stats_entry(row)
        return json_response(
            [
                {"start": assume_utc(start).isoformat(), "feedback_stats": per_key}
                for start, per_key in sorted(buckets.items())
            ]
        )

    @api.post(
        "/runs/delete",
        summary="Delete traces of a project, or runs by metadata, with feedback and blobs",
        openapi_extra=JSON_BODY,
    )
    def delete_runs(tenant: CurrentTenant, body: JsonBody) -> Response:
        if not isinstance(body, dict):
            raise ApiError(422, "the body must be a JSON object")
        if body.get("metadata") is not None:
            metadata = body["metadata"]
            if not isinstance(metadata, dict) or not metadata:
                raise ApiError(422, "metadata must be a non-empty JSON object", detail={"field": "metadata"})
            return json_response({"deleted_runs": deleter.by_metadata(tenant.id, metadata)})
        traces = body.get("trace_ids")
        if not isinstance(traces, list) or not traces or body.get("session_id") is None:
            raise ApiError(422, "give trace_ids with session_id, or metadata")
        if len(traces) > MAX_DELETE_TRACES:
            raise ApiError(422, f"at most {MAX_DELETE_TRACES} trace_ids per request", detail={"field": "trace_ids"})
        try:
            project_id = uuid.UUID(str(body["session_id"]))
            trace_ids = [uuid.UUID(str(t)) for t in traces]
        except ValueError:
            raise ApiError(422, "session_id and trace_ids must be UUIDs") from None
        return json_response({"deleted_runs": deleter.traces(tenant.id, project_id, trace_ids)})

    return api
