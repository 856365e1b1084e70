"""Feedback (protocol §8): create (never 404 for an unknown run), list, read, update (null clears), delete,
and presigned feedback tokens whose URLs work without auth until they expire."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from query.run_reads import JSON_BODY, JsonBody, json_response
from schemas import ApiError, Tenant
from schemas.feedback import config_of, key_of, source_type
from schemas.tenancy import current_tenant
from schemas.times import assume_utc
from storage import Storage
from storage.feedback import feedback_json
from storage.feedback_tokens import FeedbackTokens

CurrentTenant = Annotated[Tenant, Depends(current_tenant)]
DEFAULT_TOKEN_LIFETIME = timedelta(hours=3)


def _token_json(request: Request, token: dict[str, Any]) -> dict[str, Any]:
    """`url` ends with the token id and is on the API's own host and prefix: the SDK takes its last segment."""
    prefix = "/api/v1" if request.url.path.startswith("/api/v1/") else ""
    return {
        "id": str(token["id"]),
        "url": f"{str(request.base_url).rstrip('/')}{prefix}/feedback/tokens/{token['id']}",
        "expires_at": token["expires_at"].isoformat() if token["expires_at"] else None,
        "run_id": str(token["run_id"]),
        "feedback_key": token["feedback_key"],
    }


def _expiry(spec: dict[str, Any]) -> datetime:
    if spec.get("expires_at"):
        try:
            at = datetime.fromisoformat(str(spec["expires_at"]))
        except ValueError:
            raise ApiError(422, "expires_at is not an ISO 8601 timestamp", detail={"field": "expires_at"}) from None
        return assume_utc(at)
    delta = spec.get("expires_in")
    if isinstance(delta, dict):
        try:
            return datetime.now(UTC) + timedelta(**{k: float(v) for k, v in delta.items() if v})
        except (TypeError, ValueError, OverflowError):
            raise ApiError(422, "expires_in must be {days, hours, minutes}", detail={"field": "expires_in"}) from None
    return datetime.now(UTC) + DEFAULT_TOKEN_LIFETIME


def router(storage: Storage) -> APIRouter:
    api = APIRouter(tags=["feedback"])
    repo = storage.feedback
    tokens = FeedbackTokens(storage.clickhouse)

    @api.post("/feedback", summary="Create feedback (stored even before its run arrives)", openapi_extra=JSON_BODY)
    def create_feedback(tenant: CurrentTenant, body: JsonBody) -> Response:
        (stored,) = repo.ingest(tenant.id, [body])
        return json_response(feedback_json(stored))

    @api.get("/feedback", summary="List feedback")
    def list_feedback(
        tenant: CurrentTenant,
        run: Annotated[list[uuid.UUID] | None, Query()] = None,
        key: Annotated[list[str] | None, Query()] = None,
        source: Annotated[list[str] | None, Query()] = None,
        session: Annotated[list[uuid.UUID] | None, Query()] = None,
        has_comment: bool | None = None,
        has_score: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        found = repo.list(
            tenant.id,
            run_ids=run,
            keys=key,
            sources=[source_type(s) for s in source or []],
            sessions=session,
            has_comment=has_comment,
            has_score=has_score,
            limit=limit,
            offset=offset,
        )
        return json_response([feedback_json(f) for f in found])

    # Token routes come before /feedback/{feedback_id}, which would otherwise claim "tokens" as an id.
    @api.post(
        "/feedback/tokens", summary="Create presigned feedback tokens (one object or a list)", openapi_extra=JSON_BODY
    )
    def create_tokens(tenant: CurrentTenant, request: Request, body: JsonBody) -> Response:
        specs = body if isinstance(body, list) else [body]
        created = []
        for spec in specs:
            if not isinstance(spec, dict) or not spec.get("run_id") or not spec.get("feedback_key"):
                raise ApiError(422, "each token needs run_id and feedback_key")
            try:
                run_id = uuid.UUID(str(spec["run_id"]))
                token_id = uuid.UUID(str(spec["id"])) if spec.get("id") else uuid.uuid4()
            except ValueError:
                raise ApiError(422, "run_id and id must be UUIDs") from None
            # Checked as the feedback the token leaves will be: what fails there would fail every use of the token.
            created.append(
                {
                    "id": token_id,
                    "run_id": run_id,
                    "feedback_key": key_of(spec["feedback_key"], "feedback_key"),
                    "feedback_config": config_of(spec.get("feedback_config")),
                    "expires_at": _expiry(spec),
                }
            )
        tokens.create(tenant.id, created)
        out = [_token_json(request, t) for t in created]
        return json_response(out if isinstance(body, list) else out[0])

    @api.get("/feedback/tokens", summary="List a run's presigned feedback tokens")
    def list_tokens(
        tenant: CurrentTenant,
        request: Request,
        run_id: uuid.UUID,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        return json_response([_token_json(request, t) for t in tokens.for_run(tenant.id, run_id, limit, offset)])

    def from_token(token_id: uuid.UUID, fields: dict[str, Any]) -> Response:
        token = tokens.valid(token_id)
        if token is None:
            raise ApiError(404, "feedback token not found or expired")
        item = {
            "run_id": token["run_id"],
            "key": token["feedback_key"],
            "feedback_config": token["feedback_config"],
            "feedback_source": {"type": "app", "metadata": fields.get("metadata") or {}},
            **{k: fields.get(k) for k in ("score", "value", "comment", "correction")},
        }
        (stored,) = repo.ingest(token["tenant_id"], [item])
        return json_response(feedback_json(stored))

    @api.post("/feedback/tokens/{token_id}", summary="Leave feedback with a token (no auth)", openapi_extra=JSON_BODY)
    def feedback_with_token(token_id: uuid.UUID, body: JsonBody) -> Response:
        if not isinstance(body, dict):
            raise ApiError(422, "the body must be a JSON object")
        return from_token(token_id, body)

    @api.get("/feedback/tokens/{token_id}", summary="Leave feedback with a token from a browser link (no auth)")
    def feedback_with_token_link(
        token_id: uuid.UUID,
        score: float | None = None,
        value: str | None = None,
        comment: str | None = None,
        correction: str | None = None,
    ) -> Response:
        return from_token(token_id, {"score": score, "value": value, "comment": comment, "correction": correction})

    @api.get("/feedback/{feedback_id}", summary="Read feedback")
    def read_feedback(tenant: CurrentTenant, feedback_id: uuid.UUID) -> Response:
        found = repo.get(tenant.id, feedback_id)
        if found is None:
            raise ApiError(404, f"feedback {feedback_id} not found")
        return json_response(feedback_json(found))

    @api.patch("/feedback/{feedback_id}", summary="Update feedback (null clears a field)", openapi_extra=JSON_BODY)
    def update_feedback(tenant: CurrentTenant, feedback_id: uuid.UUID, body: JsonBody) -> Response:
        if not isinstance(body, dict):
            raise ApiError(422, "the body must be a JSON object")
        updated = repo.update(tenant.id, feedback_id, body)
        if updated is None:
            raise ApiError(404, f"feedback {feedback_id} not found")
        return json_response(feedback_json(updated))

    @api.delete("/feedback/{feedback_id}", summary="Delete feedback")
    def delete_feedback(tenant: CurrentTenant, feedback_id: uuid.UUID) -> Response:
        if not repo.delete(tenant.id, feedback_id):
            raise ApiError(404, f"feedback {feedback_id} not found")
        return json_response({"deleted": str(feedback_id)})

    return api
