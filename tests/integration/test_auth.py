"""API keys end to end: the real SDK with keys and workspaces, the keys CLI, per-workspace rate limits, body
limits and what the metrics record of refusals. Isolation over every route is in test_tenant_isolation."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import langsmith
import pytest
from langsmith.utils import LangSmithAuthError, LangSmithError, LangSmithNotFoundError
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from tests.integration.test_tenant_isolation import create_key
from tests.support import Server, wait_for


def cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracehouse", "keys", *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def tenant_id(name: str) -> str:
    return str(uuid.uuid5(uuid.UUID("00000000-0000-0000-0000-000000000001"), f"tenant:{name}"))


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    data = tmp_path_factory.mktemp("auth") / "data"
    keys = {"a": create_key(data, "tenant-a"), "b": create_key(data, "tenant-b")}
    keys["ab"] = create_key(data, "tenant-a", "tenant-b")
    env = {"TRACEHOUSE_AUTH": "api-key", "TRACEHOUSE_MAX_JSON_BODY_BYTES": str(1024 * 1024)}
    with Server(data, env=env) as server:
        yield server, keys


def sdk(server: Server, key: str, **kwargs: str) -> langsmith.Client:
    return langsmith.Client(api_url=server.url, api_key=key, auto_batch_tracing=False, **kwargs)


def test_sdk_traces_and_reads_within_its_workspace_only(keyed: tuple[Server, dict[str, str]]) -> None:
    server, keys = keyed
    run_id = uuid.uuid4()
    writer = sdk(server, keys["a"])
    writer.create_run("secret-a", {"q": "a"}, "chain", id=run_id, project_name="auth-sdk")
    writer.update_run(run_id, outputs={"a": 1})
    run = wait_for(lambda: writer.read_run(run_id), what="run of tenant a")
    assert run.inputs == {"q": "a"}
    with pytest.raises(LangSmithNotFoundError):
        sdk(server, keys["b"]).read_run(run_id)
    assert "auth-sdk" not in [p.name for p in sdk(server, keys["b"]).list_projects()]
    both = sdk(server, keys["ab"], workspace_id=tenant_id("tenant-b"))
    with pytest.raises(LangSmithNotFoundError):
        both.read_run(run_id)
    both.workspace_id = tenant_id("tenant-a")
    assert both.read_run(run_id).inputs == {"q": "a"}, "X-Tenant-Id picks the workspace of a multi-workspace key"


def test_otlp_exporter_with_a_key(keyed: tuple[Server, dict[str, str]]) -> None:
    server, keys = keyed
    endpoint = f"{server.url}/otel/v1/traces"
    exporter = OTLPSpanExporter(endpoint=endpoint, headers={"x-api-key": keys["b"], "Langsmith-Project": "otel-b"})
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("auth").start_as_current_span("otel-secret-b"):
        pass
    provider.shutdown()

    def names(key: str) -> list[str]:
        runs = httpx.post(f"{server.url}/runs/query", json={}, headers={"x-api-key": key}).json()["runs"]
        return [run["name"] for run in runs]

    wait_for(lambda: "otel-secret-b" in names(keys["b"]), what="the span stored as tenant b's run")
    assert "otel-secret-b" not in names(keys["a"])
    keyless = OTLPSpanExporter(endpoint=endpoint)
    keyless_provider = TracerProvider()
    with keyless_provider.get_tracer("auth").start_as_current_span("no-key") as refused:
        pass
    assert keyless.export([refused]) == SpanExportResult.FAILURE  # type: ignore[list-item]


def test_sdk_with_a_bad_key_or_workspace_is_refused(keyed: tuple[Server, dict[str, str]]) -> None:
    server, keys = keyed
    with pytest.raises(LangSmithAuthError):
        list(sdk(server, "th_" + "x" * 43).list_projects())
    with pytest.raises(LangSmithError, match="403"):
        list(sdk(server, keys["a"], workspace_id=tenant_id("tenant-b")).list_projects())


def test_credential_forms_and_prefixes(keyed: tuple[Server, dict[str, str]]) -> None:
    server, keys = keyed
    for headers in ({"X-Api-Key": keys["a"]}, {"authorization": f"Bearer {keys['a']}"}):
        for prefix in ("", "/api/v1"):
            assert httpx.get(f"{server.url}{prefix}/sessions", headers=headers).status_code == 200, (headers, prefix)
    refused = httpx.get(f"{server.url}/api/v1/sessions", headers={"x-api-key": "", "authorization": "Basic x"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    bad = httpx.get(f"{server.url}/sessions", headers={"x-api-key": keys["ab"], "x-tenant-id": "tenant-b"})
    assert bad.status_code == 400 and "UUID" in bad.json()["error"]
    for public in ("/docs", "/openapi.json", "/api/v1/info", "/health", "/metrics"):
        assert httpx.get(f"{server.url}{public}").status_code == 200, public


def test_query_bodies_are_bounded_and_ingest_keeps_its_own_limit(keyed: tuple[Server, dict[str, str]]) -> None:
    server, keys = keyed
    headers = {"x-api-key": keys["a"]}
    big = {"id": [str(uuid.uuid4()) for _ in range(40_000)]}  # ~1.6 MB of JSON
    response = httpx.post(f"{server.url}/runs/query", json=big, headers=headers)
    assert response.status_code == 413 and "limit of 1048576 bytes" in response.json()["error"]

    def chunked() -> Iterator[bytes]:
        yield b'{"id": ['
        for _ in range(40_000):
            yield f'"{uuid.uuid4()}",'.encode()
        yield b'"x"]}'

    streamed = httpx.post(f"{server.url}/runs/query", content=chunked(), headers=headers)
    assert streamed.status_code == 413 and streamed.json()["status"] == 413, "counted as it arrives"
    batch = {"post": [{"id": str(uuid.uuid4()), "name": "n", "run_type": "chain", "inputs": {"x": "y" * 2_000_000}}]}
    assert httpx.post(f"{server.url}/runs/batch", json=batch, headers=headers).status_code == 202
    assert httpx.post(f"{server.url}/runs/query", json={"limit": 1}, headers=headers).status_code == 200


def test_metrics_count_refusals(keyed: tuple[Server, dict[str, str]]) -> None:
    server, _ = keyed
    for _ in range(3):
        assert httpx.get(f"{server.url}/runs/{uuid.uuid4()}").status_code == 401
    text = httpx.get(f"{server.url}/metrics").text
    counts = re.findall(r'tracehouse_http_requests_total\{method="GET",route="[^"]*",status="401"\} (\S+)', text)
    assert sum(float(c) for c in counts) >= 3
    refused = re.search(r'tracehouse_auth_refusals_total\{reason="missing_key"\} (\S+)', text)
    assert refused and float(refused.group(1)) >= 3


def test_keys_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert "while the server is stopped" in " ".join(cli(data, "--help").stdout.split())
    refused = cli(data, "create", "--tenant", "acme", "--tenant", "")
    assert refused.returncode == 2 and "invalid tenant name ''" in refused.stderr
    assert "th_" not in refused.stdout
    created = cli(data, "create", "--tenant", "acme", "--tenant", "globex")
    assert created.returncode == 0, created.stderr
    key = next(line for line in created.stdout.splitlines() if line.startswith("th_"))
    key_id = re.search(r"key id (\S+)", created.stdout).group(1)  # type: ignore[union-attr]
    assert tenant_id("acme") in created.stdout and tenant_id("globex") in created.stdout
    listing = cli(data, "list").stdout
    assert key_id in listing and key[:10] in listing and key not in listing and "acme, globex" in listing
    assert "active" in listing
    unknown = cli(data, "revoke", "th_nothing")
    assert unknown.returncode == 1 and "no active key" in unknown.stderr
    assert cli(data, "revoke", key_id).returncode == 0
    assert "revoked" in cli(data, "list").stdout
    assert cli(data, "revoke", key_id).returncode == 1, "a revoked key is not revoked twice"


def test_rate_limits_are_per_workspace(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key_a, key_b = create_key(data, "rl-a"), create_key(data, "rl-b")
    env = {"TRACEHOUSE_AUTH": "api-key", "TRACEHOUSE_RATE_LIMIT_RPS": "0.05", "TRACEHOUSE_RATE_LIMIT_BURST": "2"}
    with Server(data, env=env) as server:
        statuses = [httpx.get(f"{server.url}/sessions", headers={"x-api-key": key_a}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert httpx.get(f"{server.url}/sessions", headers={"x-api-key": key_b}).status_code == 200
        limited = httpx.get(f"{server.url}/sessions", headers={"x-api-key": key_a})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "rate limit" in limited.json()["error"]
