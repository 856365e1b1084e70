"""Every error in the API's one shape, `{"error", "status", "detail"}` (schemas.ApiError), including the ones
FastAPI and Starlette raise themselves (parameter validation 422, unknown route 404, wrong method 405), which
they would answer as `{"detail": ...}`: clients need one parser, and a message that says what is wrong."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from schemas import ApiError, jsonutil

log = logging.getLogger("tracehouse")

_LOCATIONS = {"path": "path parameter", "query": "query parameter", "header": "header", "cookie": "cookie"}
# What every error body is, for the OpenAPI document.
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error", "status"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong"},
        "status": {"type": "integer", "description": "the HTTP status"},
        "detail": {"type": "object", "description": "the field, part or parameter at fault, when there is one"},
    },
}


def install(app: FastAPI) -> None:
    app.exception_handler(Exception)(_unexpected)
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(HTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI documents its validation errors (the 422 of every route with parameters) in its own shape,
        `HTTPValidationError`: the document says what these answers really are."""
        if app.openapi_schema is None:
            schemas = generate().get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR_SCHEMA
                schemas.pop("ValidationError", None)  # only HTTPValidationError referred to it
        return app.openapi_schema  # type: ignore[return-value]  # set by generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _render(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    if error.retry_after is not None:
        headers = {**(headers or {}), "Retry-After": str(max(1, round(error.retry_after)))}
    # jsonutil: a message may quote user text with lone surrogates, which JSONResponse cannot encode.
    return Response(
        jsonutil.dumps(error.body()), status_code=error.status, headers=headers, media_type="application/json"
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug still answers JSON; the details go to the log, never to the client."""
    request_id = uuid.uuid4().hex[:12]
    log.error("unhandled error %s on %s %s", request_id, request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error", "request_id": request_id, "status": 500}, status_code=500)


async def _api_error(request: Request, exc: ApiError) -> Response:
    return _render(exc)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's 404 and 405 say only "Not Found" and "Method Not Allowed": the message names what was asked
    for, and a 405 keeps its `Allow` header, which lists the methods the path has."""
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        message = f"no route for {method} {path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow")
        message = f"method {method} is not allowed on {path}" + (f" (allowed: {allowed})" if allowed else "")
    else:
        message = f"{method} {path}: {exc.detail}"
    return _render(ApiError(exc.status_code, message, detail={"method": method, "path": path}), exc.headers)


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's checks of path and query parameters (types, bounds, required): every problem in the message,
    the first one's parameter in `detail`, as the API's own validation names its field."""
    problems = [_problem(error) for error in exc.errors()]
    message = "; ".join(f"{_LOCATIONS.get(where, where)} {field}: {text}" for field, where, text in problems)
    field, where, _ = problems[0]
    return _render(ApiError(422, f"invalid {message}", detail={"field": field, "in": where}))


def _problem(error: dict[str, Any]) -> tuple[str, str, str]:
    """(parameter, where it was sent, what is wrong) of one error; its `loc` is (where, name, ...). The input is
    left out: it may be large, and the client has it."""
    where, *names = [str(part) for part in error["loc"]]
    return ".".join(names) or where, where, str(error["msg"])
