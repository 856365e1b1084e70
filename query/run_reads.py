"""What every run read route shares: the reader, the query builder, JSON serialisation and feedback stats."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Annotated, Any, Protocol

import orjson
from fastapi import Depends, Request, Response

from query.run_search import RunSearch
from query.serialize import RawJson, RunSerializer
from query.signing import Signer
from schemas import ApiError, Tenant, jsonutil
from schemas.tenancy import current_tenant
from storage import Storage
from storage.run_queries import META_COLUMNS, PAYLOAD_COLUMNS, RunReader, TooManyRows

CurrentTenant = Annotated[Tenant, Depends(current_tenant)]


async def json_body(request: Request) -> Any:
    """The body parsed by jsonutil, like every ingest body, not by FastAPI: its stdlib parser gives up on
    documents ~1,000 levels deep with a bare 400 before validation can name the field that is too deep, and it
    answers other bad JSON in its own error shape. Members nested deeper than MAX_NESTING are a 422 naming the
    member here, for every route: they could not be stored, and str() of one in a route's own check overflows
    the stack. None when there is no body."""
    data = await request.body()
    if not data:
        return None
    try:
        body = jsonutil.loads(data)
    except ValueError as exc:
        raise ApiError(422, f"body: invalid JSON: {exc}", detail={"part": "body"}) from None
    return jsonutil.members_within_nesting(body)


JsonBody = Annotated[Any, Depends(json_body)]
# OpenAPI of a JsonBody route (FastAPI documents only the bodies it parses itself)
JSON_BODY = {"requestBody": {"content": {"application/json": {"schema": {}}}, "required": True}}
OPTIONAL_JSON_BODY = {"requestBody": {"content": {"application/json": {"schema": {}}}}}


class FeedbackStats(Protocol):
    def stats_for_runs(self, tenant_id: uuid.UUID, run_ids: list[uuid.UUID]) -> dict[Any, dict[str, Any]]: ...


def json_response(value: Any, status_code: int = 200) -> Response:
    """Payload-carrying reads go through jsonutil (lone surrogates must round-trip, protocol §5.3); the raw payload
    text of `RunSerializer.run` is written as it is, and parsed only for jsonutil's stdlib fallback."""
    try:
        body = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=_raw)
    except TypeError:
        body = jsonutil.dumps(_parsed(value))
    return Response(body, status_code=status_code, media_type="application/json")


def _raw(value: Any) -> orjson.Fragment:
    if isinstance(value, RawJson):
        return orjson.Fragment(value.text)
    raise TypeError(type(value).__name__)


def _parsed(value: Any) -> Any:
    if isinstance(value, RawJson):
        return jsonutil.loads(value.text)
    if isinstance(value, dict):
        return {k: _parsed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_parsed(v) for v in value]
    return value


def feedback_repository(storage: Storage) -> FeedbackStats | None:
    """Hook for `storage.feedback.FeedbackRepository.stats_for_runs`, owned by the feedback service: runs show
    `feedback_stats: null` until that repository exists."""
    repo = getattr(storage, "feedback", None)
    if repo is None:
        try:
            from storage.feedback import FeedbackRepository  # type: ignore[import-not-found]
        except ImportError:
            return None
        repo = FeedbackRepository(storage.clickhouse)
    return repo if hasattr(repo, "stats_for_runs") else None


class FeedbackPrefetch:
    """The feedback stats of a page's runs, read while the page's rows are: the runs are known once the filter has
    matched (`RunReader.newest`'s `on_candidates`), and the stats query, ~5 ms mostly spent planning it, then
    overlaps the read of the rows instead of following it."""

    def __init__(self, reads: RunReads, tenant_id: uuid.UUID) -> None:
        self._reads = reads
        self._tenant_id = tenant_id
        self._pending: list[tuple[set[uuid.UUID], Future[dict[str, dict[str, Any]] | None]]] = []

    def start(self, run_ids: list[uuid.UUID]) -> None:
        future = self._reads.background.submit(self._reads.feedback_stats, self._tenant_id, run_ids)
        self._pending.append((set(run_ids), future))

    def stats(self, run_ids: list[uuid.UUID]) -> dict[str, dict[str, Any]] | None:
        """Stats of `run_ids`: from the reads started for them, the rest read now (a read that has not started,
        because the pool is busy, is read now too rather than waited for)."""
        found: dict[str, dict[str, Any]] = {}
        covered: set[uuid.UUID] = set()
        for ids, future in self._pending:
            if future.cancel():
                continue
            result = future.result()
            if result is None:
                return None
            found.update(result)
            covered |= ids
        missing = [run_id for run_id in run_ids if run_id not in covered]
        if missing:
            rest = self._reads.feedback_stats(self._tenant_id, missing)
            if rest is None:
                return None
            found.update(rest)
        return found


class RunReads:
    def __init__(self, storage: Storage, secret_key: bytes, *, max_trace_runs: int) -> None:
        self.storage = storage
        self.max_trace_runs = max_trace_runs
        self.reader = RunReader(storage.clickhouse)
        self.search = RunSearch(self.reader)
        # Without a configured key, signed URLs are valid for this process's lifetime only.
        self.signer = Signer(secret_key or secrets.token_bytes(32))
        self.serializer = RunSerializer(storage.blobs, self.signer)
        self.feedback = feedback_repository(storage)
        # Reads that overlap a request's own (`FeedbackPrefetch`); each thread has its own ClickHouse client.
        self.background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="query-background")

    def trace_rows(
        self,
        tenant_id: uuid.UUID,
        trace_id: uuid.UUID,
        *,
        where: str,
        params: dict[str, Any],
        columns: tuple[str, ...],
        order_by: str | None,
        match: str | None = None,
    ) -> list[dict[str, Any]]:
        """The rows of a whole trace (`RunReader.latest`), refused above `max_trace_runs`: a response holds the
        whole trace in memory, so one runaway agent's trace must not take the query server with it."""
        try:
            return self.reader.latest(
                tenant_id,
                where=where,
                params=params,
                columns=columns,
                order_by=order_by,
                match=match,
                max_rows=self.max_trace_runs,
            )
        except TooManyRows:
            raise ApiError(
                422,
                f"trace {trace_id} has more than {self.max_trace_runs:,} runs, more than one response holds: "
                "page through it with POST /runs/query and `trace`",
                detail={"trace_id": str(trace_id), "max_trace_runs": self.max_trace_runs},
            ) from None

    def feedback_stats(self, tenant_id: uuid.UUID, run_ids: list[uuid.UUID]) -> dict[str, dict[str, Any]] | None:
        if self.feedback is None or not run_ids:
            return None
        return {str(k): v for k, v in self.feedback.stats_for_runs(tenant_id, run_ids).items()}

    def to_json(
        self,
        tenant_id: uuid.UUID,
        rows: list[dict[str, Any]],
        *,
        payloads: Iterable[str] = PAYLOAD_COLUMNS,
        with_feedback: bool = True,
        prefetched: FeedbackPrefetch | None = None,
    ) -> list[dict[str, Any]]:
        payloads = tuple(payloads)
        ids = [row["id"] for row in rows]
        stats = None
        if with_feedback:
            stats = prefetched.stats(ids) if prefetched is not None else self.feedback_stats(tenant_id, ids)
        texts: dict[uuid.UUID, str] = {}  # UUID text, shared by the runs of one response
        return [
            self.serializer.run(
                tenant_id,
                row,
                payloads=payloads,
                feedback_stats=None if stats is None else stats.get(str(row["id"]), {}),
                ids=texts,
            )
            for row in rows
        ]

    def get_row(
        self, tenant_id: uuid.UUID, run_id: uuid.UUID, columns: tuple[str, ...] = META_COLUMNS + PAYLOAD_COLUMNS
    ) -> dict[str, Any] | None:
        """One run through its `run_ids` location: a one-granule read of `runs`."""
        found = self.reader.locate(tenant_id, [run_id])
        if not found:
            return None
        loc = found[0]
        rows = self.reader.latest(
            tenant_id,
            where="session_id = {s:UUID} AND start_time = {t:DateTime64(6, 'UTC')} AND id = {id:UUID}",
            params={"s": loc.session_id, "t": loc.start_time, "id": run_id},
            columns=columns,
        )
        return rows[0] if rows else None
