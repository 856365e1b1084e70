"""With API keys on, two tenants cannot reach each other's data through any route.

The routes are not hand-picked: every operation in the server's OpenAPI document is called with tenant A's key
and tenant B's object ids (in the path and in a body naming them under every plausible field). No response may
contain B's secret marker, no call may answer 5xx, and B's data must be intact afterwards.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Server, wait_for

PUBLIC = re.compile(
    r"^(/api/v1)?(/info|/ok|/health|/metrics|/feedback/tokens/\{[^}]+\}|/public/.*|/api/v2/public/.*|/attachments/.*)$"
)


def create_key(data_dir: Path, *tenants: str) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracehouse",
            "keys",
            "create",
            "--data-dir",
            str(data_dir),
            *(arg for t in tenants for arg in ("--tenant", t)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return next(line for line in out.splitlines() if line.startswith("th_"))


def seed(url: str, key: str, marker: str) -> dict[str, str]:
    """One project with a trace (root + child, attachment, thread), feedback, a share and a feedback token."""
    headers = {"x-api-key": key}
    project = f"{marker}-project"
    root, child = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    common = {"start_time": now, "end_time": now, "session_name": project}
    runs = [
        {
            "id": root,
            "name": f"{marker}-root",
            "run_type": "chain",
            "inputs": {"secret": marker},
            "outputs": {"secret": marker},
            "extra": {"metadata": {"thread_id": f"{marker}-thread", "m": marker}},
            "attachments": {"doc": ["text/plain", "c2VjcmV0"]},
            **common,
        },
        {
            "id": child,
            "parent_run_id": root,
            "name": f"{marker}-child",
            "run_type": "llm",
            "inputs": {"secret": marker},
            **common,
        },
    ]
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for run in runs:
            assert http.post("/runs", json=run).status_code == 202
        wait_for(lambda: http.get(f"/runs/{child}").status_code == 200, what=f"{marker} runs")
        project_id = http.get("/sessions", params={"name": project}).json()[0]["id"]
        feedback = http.post("/feedback", json={"run_id": root, "key": "k", "score": 1, "comment": marker}).json()
        share = http.put(f"/runs/{root}/share", json={"run_id": root}).json()["share_token"]
        token = http.post("/feedback/tokens", json={"run_id": root, "feedback_key": "t"}).json()["id"]
    return {
        "project": project_id,
        "project_name": project,
        "run": root,
        "child": child,
        "trace": root,
        "feedback": feedback["id"],
        "share": share,
        "token": token,
        "thread": f"{marker}-thread",
    }


HINTS = (
    ("feedback", "feedback"),
    ("project", "project"),
    ("session", "project"),
    ("trace", "trace"),
    ("thread", "thread"),
    ("token", "token"),
    ("tenant", "tenant"),
)


def id_for(name: str, ids: dict[str, str]) -> str | None:
    """B's id for a parameter, by its name; None when the name suggests no object."""
    for hint, key in HINTS:
        if hint in name:
            return ids.get(key, str(uuid.uuid4()))
    return ids["run"] if "run" in name or name == "id" else None


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: id_for(m.group(1), ids) or "doc", path)


def query_params(parameters: list[dict[str, Any]], ids: dict[str, str]) -> dict[str, str]:
    """Every query parameter of the operation that names an object gets B's id; `name` gets B's project name."""
    params = {p["name"]: id_for(p["name"], ids) for p in parameters if p["in"] == "query"}
    if any(p["name"] == "name" and p["in"] == "query" for p in parameters):
        params["name"] = ids["project_name"]
    return {k: v for k, v in params.items() if v is not None}


def hostile_body(ids: dict[str, str]) -> dict[str, Any]:
    run, project, trace = ids["run"], ids["project"], ids["trace"]
    return {
        "id": [run],
        "run_id": run,
        "session": [project],
        "session_id": project,
        "trace": trace,
        "trace_ids": [trace],
        "parent_run": run,
        "run_ids": [run],
        "project_id": project,
        "key": "k",
        "metadata": {"m": "b-secret"},
        "name": "x",
        "run_type": "chain",
        "post": [],
        "patch": [],
        "filter": f'eq(id, "{run}")',
        "feedback_key": "k",
        "thread_id": ids["thread"],
        "is_root": True,
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("tenants") / "data"
    key_a = create_key(data, "tenant-a")
    key_b = create_key(data, "tenant-b")
    key_both = create_key(data, "tenant-a", "tenant-b")
    server = Server(data, env={"TRACEHOUSE_AUTH": "api-key"}).start()
    seed(server.url, key_a, "a-secret")
    ids_b = seed(server.url, key_b, "b-secret")
    yield server, key_a, key_b, key_both, ids_b
    server.stop()


def operations(url: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(method, path template, parameters) of every operation in the server's OpenAPI document."""
    spec = httpx.get(f"{url}/openapi.json").json()
    return [
        (method.upper(), path, op.get("parameters", []))
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_route_keeps_tenants_apart(setup: Any) -> None:
    server, key_a, key_b, _, ids_b = setup
    ops = operations(server.url)
    assert len(ops) >= 25, "the route list comes from the OpenAPI document"
    checked = 0
    with httpx.Client(base_url=server.url, headers={"x-api-key": key_a}, timeout=30) as http:
        for method, path, parameters in ops:
            if PUBLIC.match(path):
                continue  # the token in the URL is the credential there
            response = http.request(
                method,
                fill(path, ids_b),
                params=query_params(parameters, ids_b),
                json=hostile_body(ids_b) if method != "GET" else None,
            )
            assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:300]}"
            assert "b-secret" not in response.text, f"{method} {path} leaked tenant B data: {response.text[:300]}"
            checked += 1
    assert checked >= 20
    with httpx.Client(base_url=server.url, headers={"x-api-key": key_b}, timeout=30) as http:
        run = http.get(f"/runs/{ids_b['run']}").json()
        assert run["inputs"] == {"secret": "b-secret"}, "B's run is intact after A's sweep"
        assert http.get(f"/sessions/{ids_b['project']}").status_code == 200
        assert http.get(f"/feedback/{ids_b['feedback']}").json()["comment"] == "b-secret"
        assert http.get(f"/runs/{ids_b['child']}").status_code == 200


def test_missing_wrong_and_foreign_credentials(setup: Any) -> None:
    server, key_a, _, key_both, ids_b = setup
    tenant_b = str(uuid.uuid5(uuid.UUID("00000000-0000-0000-0000-000000000001"), "tenant:tenant-b"))
    ops = [(m, p) for m, p, _ in operations(server.url) if not PUBLIC.match(p)]
    for method, path in ops:
        url = f"{server.url}{fill(path, ids_b)}"
        missing = httpx.request(method, url)
        assert missing.status_code == 401 and "x-api-key" in missing.json()["error"], f"{method} {path}"
        wrong = httpx.request(method, url, headers={"Authorization": "Bearer th_not-a-key"})
        assert wrong.status_code == 401, f"{method} {path}"
        empty = httpx.request(method, url, headers={"x-api-key": ""})
        assert empty.status_code == 401, f"{method} {path}: an empty key is no key"
        foreign = httpx.request(method, url, headers={"X-API-KEY": key_a, "X-Tenant-Id": tenant_b})
        assert foreign.status_code == 403 and "x-tenant-id" in foreign.json()["error"], f"{method} {path}"
    chosen = httpx.get(f"{server.url}/runs/{ids_b['run']}", headers={"x-api-key": key_both, "x-tenant-id": tenant_b})
    assert chosen.json()["inputs"] == {"secret": "b-secret"}, "a key granting both workspaces picks one by header"
    assert httpx.get(f"{server.url}/info").status_code == 200, "/info stays unauthenticated"
    assert httpx.get(f"{server.url}/api/v1/ok").status_code == 200


def test_public_token_urls_work_without_a_key(setup: Any) -> None:
    server, _, key_b, _, ids_b = setup
    shared = httpx.get(f"{server.url}/public/{ids_b['share']}/run")
    assert shared.status_code == 200 and shared.json()["id"] == ids_b["run"]
    assert httpx.post(f"{server.url}/feedback/tokens/{ids_b['token']}", json={"score": 1}).status_code == 200
    run = httpx.get(f"{server.url}/runs/{ids_b['run']}", headers={"x-api-key": key_b}).json()
    attachment = run["s3_urls"]["attachment.doc"]["presigned_url"]
    assert httpx.get(f"{server.url}{attachment}").content == b"secret"


def test_v2_public_reads_need_no_key_and_stay_in_the_shares_tenant(setup: Any) -> None:
    server, key_a, _, _, ids_b = setup
    public = f"{server.url}/api/v2/public/{ids_b['share']}"
    child = httpx.get(f"{public}/run/{ids_b['child']}", params={"selects": ["NAME", "PARENT_RUN_ID"]})
    assert child.json() == {"id": ids_b["child"], "name": "b-secret-child", "parent_run_id": ids_b["run"]}
    listed = httpx.post(f"{public}/runs/query", json={"selects": ["NAME"]}).json()["items"]
    assert {r["id"] for r in listed} == {ids_b["run"], ids_b["child"]}
    ids_a = seed(server.url, key_a, "a-public")
    assert httpx.get(f"{public}/run/{ids_a['run']}").status_code == 404, "B's share does not open A's runs"
    a_share = f"{server.url}/api/v2/public/{ids_a['share']}"
    assert httpx.get(f"{a_share}/run/{ids_b['child']}").status_code == 404, "nor A's share B's"
    listed_a = httpx.post(f"{a_share}/runs/query", json={}).json()["items"]
    assert {r["id"] for r in listed_a} == {ids_a["run"], ids_a["child"]}


def test_revoked_key_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data, "solo")
    subprocess.run(
        [sys.executable, "-m", "tracehouse", "keys", "revoke", key[:10], "--data-dir", str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    listing = subprocess.run(
        [sys.executable, "-m", "tracehouse", "keys", "list", "--data-dir", str(data)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "revoked" in listing and key not in listing, "keys are listed by prefix, never in full"
    with Server(data, env={"TRACEHOUSE_AUTH": "api-key"}) as server:
        assert httpx.get(f"{server.url}/sessions", headers={"x-api-key": key}).status_code == 401


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    env = {"TRACEHOUSE_RATE_LIMIT_RPS": "0.1", "TRACEHOUSE_RATE_LIMIT_BURST": "3"}  # a token per 10 s
    with Server(tmp_path / "data", env=env) as server:
        statuses = [httpx.get(f"{server.url}/sessions").status_code for _ in range(6)]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
        limited = httpx.get(f"{server.url}/sessions")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert httpx.get(f"{server.url}/ok").status_code == 200, "probes are not rate limited"
