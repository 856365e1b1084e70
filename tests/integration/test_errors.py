"""Errors FastAPI and Starlette raise themselves (parameter validation, unknown routes, wrong methods) answer in
the API's own shape, `{"error", "status", "detail"}`, like every other error, with their status codes."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langsmith import Client
from langsmith.utils import LangSmithNotFoundError

from tests.support import Server


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_a_bad_path_parameter_is_a_422_naming_it(server: Server, prefix: str) -> None:
    response = httpx.get(f"{server.url}{prefix}/runs/not-a-uuid")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status"] == 422 and body["detail"] == {"field": "run_id", "in": "path"}
    assert body["error"].startswith("invalid path parameter run_id: Input should be a valid UUID"), body


@pytest.mark.parametrize(
    ("path", "params", "field", "problem"),
    [
        ("/sessions", {"limit": "0"}, "limit", "greater than or equal to 1"),
        ("/feedback", {"limit": "many"}, "limit", "valid integer"),
        ("/feedback", {"run": "not-a-uuid"}, "run.0", "valid UUID"),
        ("/feedback/tokens", {}, "run_id", "Field required"),
        (f"/threads/{uuid.uuid4()}/traces", {"order": "up"}, "order", "'asc' or 'desc'"),
    ],
)
def test_a_bad_query_parameter_is_a_422_naming_it(
    server: Server, path: str, params: dict[str, str], field: str, problem: str
) -> None:
    response = httpx.get(f"{server.url}{path}", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"error", "status", "detail"} and body["status"] == 422
    assert body["detail"] == {"field": field, "in": "query"}
    assert body["error"].startswith(f"invalid query parameter {field}: ") and problem in body["error"], body


def test_every_bad_parameter_is_in_the_message(server: Server) -> None:
    response = httpx.get(f"{server.url}/sessions", params={"limit": "0", "offset": "-1"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "query parameter limit: " in error and "; query parameter offset: " in error, error


def test_an_unknown_route_is_a_404_naming_it(server: Server) -> None:
    response = httpx.post(f"{server.url}/api/v1/no/such/route", json={})
    assert response.status_code == 404
    assert response.json() == {
        "error": "no route for POST /api/v1/no/such/route",
        "status": 404,
        "detail": {"method": "POST", "path": "/api/v1/no/such/route"},
    }


def test_a_wrong_method_is_a_405_naming_the_allowed_ones(server: Server) -> None:
    response = httpx.delete(f"{server.url}/info")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json() == {
        "error": "method DELETE is not allowed on /info (allowed: GET)",
        "status": 405,
        "detail": {"method": "DELETE", "path": "/info"},
    }


def test_the_sdk_maps_them_by_status(server: Server) -> None:
    """The SDK reads an error's status, never its `detail` key: an unknown route is still its not-found error."""
    with pytest.raises(LangSmithNotFoundError):
        Client(api_url=server.url, api_key="unused").read_dataset(dataset_name="no-datasets-here")


def test_the_openapi_document_describes_422s_as_they_are_answered(server: Server) -> None:
    """FastAPI documents parameter validation failures in its own shape; the document must describe the one
    clients get, so that generated clients parse it."""
    document = httpx.get(f"{server.url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "ValidationError" not in schemas
    assert schemas["HTTPValidationError"]["required"] == ["error", "status"]
    run_by_id = document["paths"]["/runs/{run_id}"]["get"]["responses"]["422"]["content"]["application/json"]
    assert run_by_id["schema"] == {"$ref": "#/components/schemas/HTTPValidationError"}
    body = httpx.get(f"{server.url}/runs/not-a-uuid").json()
    assert set(body) <= set(schemas["HTTPValidationError"]["properties"]), body
