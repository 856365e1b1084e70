"""OTLP ingestion end to end: real OpenTelemetry SDK exporters, the langsmith SDK in OTEL-only and hybrid
modes, and hand-built OpenInference / Traceloop JSON payloads against a server process; runs are read back
through the query API (`POST /runs/query`), project names from the projects table once the server stops."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanProcessor
from opentelemetry.trace import Status, StatusCode

from schemas import DEFAULT_TENANT_ID
from storage import Storage
from tests.otlp_payloads import new_span_id, new_trace_id, request, span
from tests.support import Server, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROJECTS: dict[str, str] = {}  # session_id seen on read -> project name it must have


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("otlp") / "data").start()
    yield server
    server.stop()


def runs_of_trace(srv: Server, trace_id: uuid.UUID, count: int) -> dict[str, dict[str, Any]]:
    """The trace's runs by name, once `count` of them are stored, finished and linked into one tree."""

    def ready() -> dict[str, dict[str, Any]] | None:
        runs = httpx.post(f"{srv.url}/runs/query", json={"trace": str(trace_id)}, timeout=10).json()["runs"]
        linked = sum(1 for r in runs if r["parent_run_id"] or r["id"] == str(trace_id))
        done = all(r["status"] != "pending" for r in runs)
        return {r["name"]: r for r in runs} if len(runs) == count and linked == count and done else None

    return wait_for(ready, timeout=30, what=f"{count} linked runs of trace {trace_id}")


def root_by_name(srv: Server, name: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        body = {"filter": f'eq(name, "{name}")', "is_root": True}
        runs = httpx.post(f"{srv.url}/runs/query", json=body, timeout=10).json()["runs"]
        return runs[0] if runs else None

    return wait_for(find, timeout=30, what=f"root run {name}")


def expect_project(run: dict[str, Any], name: str) -> None:
    assert PROJECTS.setdefault(run["session_id"], name) == name


def otel_tracer(srv: Server, processor: type[SpanProcessor], path: str, **exporter: Any) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-app"}))
    provider.add_span_processor(processor(OTLPSpanExporter(endpoint=f"{srv.url}{path}", **exporter)))
    return provider


@pytest.mark.parametrize(
    ("processor", "compression", "path"),
    [
        (SimpleSpanProcessor, Compression.NoCompression, "/otel/v1/traces"),  # one span per request, children first
        (BatchSpanProcessor, Compression.Gzip, "/api/v1/otel/v1/traces"),
    ],
)
def test_opentelemetry_sdk_exporter(
    srv: Server, processor: type[SpanProcessor], compression: Compression, path: str
) -> None:
    project = f"otel-{processor.__name__}"
    provider = otel_tracer(srv, processor, path, compression=compression, headers={"Langsmith-Project": project})
    tracer = provider.get_tracer("my.app", "2.0")
    with tracer.start_as_current_span("agent", attributes={"input.value": '{"question": "2+2?"}'}) as root:
        with (
            tracer.start_as_current_span(
                "chat gpt-4o",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "2+2?"}]}]',
                    "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "4"}]}]',
                    "gen_ai.usage.input_tokens": 10,
                    "gen_ai.usage.output_tokens": 2,
                    "gen_ai.conversation.id": "conv-42",
                },
            ),
            tracer.start_as_current_span("POST /v1/chat/completions", attributes={"http.status_code": 200}),
        ):
            pass
        with tracer.start_as_current_span(
            "calculator", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "calc"}
        ) as tool:
            tool.record_exception(ZeroDivisionError("division by zero"))
            tool.set_status(Status(StatusCode.ERROR, "division by zero"))
        root.set_attribute("output.value", "4")
        trace_id = uuid.UUID(int=root.get_span_context().trace_id)
    provider.force_flush()
    provider.shutdown()

    runs = runs_of_trace(srv, trace_id, 4)
    agent, llm, tool_run = runs["agent"], runs["chat gpt-4o"], runs["calc"]
    http = runs["POST /v1/chat/completions"]
    assert http["parent_run_id"] == llm["id"] and http["extra"]["metadata"]["http.status_code"] == 200
    assert agent["id"] == str(trace_id) and agent["parent_run_id"] is None
    assert llm["parent_run_id"] == agent["id"] and tool_run["parent_run_id"] == agent["id"]
    assert llm["dotted_order"].startswith(agent["dotted_order"] + ".")
    assert (agent["run_type"], llm["run_type"], tool_run["run_type"]) == ("chain", "llm", "tool")
    assert agent["inputs"] == {"question": "2+2?"} and agent["outputs"] == {"output": 4}
    assert llm["inputs"]["messages"][0]["parts"][0]["content"] == "2+2?"
    assert llm["outputs"]["messages"][0]["parts"][0]["content"] == "4"
    assert (llm["prompt_tokens"], llm["completion_tokens"], llm["total_tokens"]) == (10, 2, 12)
    metadata = llm["extra"]["metadata"]
    assert (metadata["ls_model_name"], metadata["ls_provider"], llm["thread_id"]) == ("gpt-4o", "openai", "conv-42")
    assert tool_run["status"] == "error" and tool_run["error"] == "division by zero"
    assert [e["name"] for e in tool_run["events"]] == ["exception"]
    assert agent["extra"]["otel"]["resource"]["service.name"] == "otel-app"
    assert agent["extra"]["otel"]["scope"]["name"] == "my.app"
    for run in runs.values():
        expect_project(run, project)


LANGSMITH_SCRIPT = textwrap.dedent(
    """
    import sys
    import langsmith as ls
    from langsmith.run_trees import get_cached_client

    name = sys.argv[1]

    @ls.traceable(run_type="llm", metadata={"ls_model_name": "gpt-x", "ls_provider": "openai"}, tags=["gen"])
    def generate(prompt):
        return {"content": "hi " + prompt, "usage_metadata": {"input_tokens": 5, "output_tokens": 6,
                                                              "total_tokens": 11}}

    @ls.traceable(run_type="tool")
    def lookup(key):
        raise KeyError(key)

    @ls.traceable(name=name, metadata={"session_id": "thread-7", "team": "core"})
    def pipeline(question):
        answer = generate(question)
        try:
            lookup("missing")
        except KeyError:
            pass
        return answer["content"]

    pipeline("there")
    get_cached_client().flush()
    from opentelemetry import trace
    trace.get_tracer_provider().force_flush()
    """
)


@pytest.mark.parametrize("mode", ["otel-only", "hybrid"])
def test_langsmith_sdk_otel_modes(srv: Server, mode: str) -> None:
    name = f"pipeline-{mode}-{uuid.uuid4().hex[:8]}"
    project = f"ls-{mode}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LANGSMITH_ENDPOINT": srv.url,
        "LANGSMITH_API_KEY": "dummy",  # langsmith.integrations.otel needs one
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_PROJECT": project,
        ("LANGSMITH_OTEL_ONLY" if mode == "otel-only" else "LANGSMITH_OTEL_ENABLED"): "true",
    }
    done = subprocess.run([sys.executable, "-c", LANGSMITH_SCRIPT, name], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-3000:]

    roots = {}

    def both_roots() -> bool:
        body = {"filter": f'eq(name, "{name}")', "is_root": True}
        found = httpx.post(f"{srv.url}/runs/query", json=body, timeout=10).json()["runs"]
        roots.update({r["extra"].get("otel") is not None: r for r in found})
        return len(roots) == (2 if mode == "hybrid" else 1)

    wait_for(both_roots, timeout=30, what=f"{mode} roots")
    otel_root = roots[True]  # hybrid mode also traces through /runs/multipart: that trace has no extra.otel
    runs = runs_of_trace(srv, uuid.UUID(otel_root["trace_id"]), 3)
    root, llm, tool = runs[name], runs["generate"], runs["lookup"]
    assert (root["run_type"], llm["run_type"], tool["run_type"]) == ("chain", "llm", "tool")
    assert llm["parent_run_id"] == root["id"] == otel_root["trace_id"] and tool["parent_run_id"] == root["id"]
    assert root["inputs"] == {"question": "there"} and root["outputs"] == {"output": "hi there"}
    assert llm["inputs"] == {"prompt": "there"} and llm["outputs"]["content"] == "hi there"
    assert (llm["prompt_tokens"], llm["completion_tokens"], llm["total_tokens"]) == (5, 6, 11)
    assert llm["extra"]["metadata"]["ls_model_name"] == "gpt-x" and llm["tags"] == ["gen"]
    assert root["extra"]["metadata"]["team"] == "core" and root["thread_id"] == "thread-7"
    assert tool["status"] == "error" and "KeyError" in tool["error"]
    for run in runs.values():
        expect_project(run, project)
    if mode == "hybrid":
        native = roots[False]
        assert native["id"] != otel_root["id"] and native["session_id"] == otel_root["session_id"]


def post_json(srv: Server, spans: list[dict[str, Any]], **headers: str) -> httpx.Response:
    response = httpx.post(
        f"{srv.url}/otel/v1/traces",
        content=request(spans, {"openinference.project.name": "ignored-when-header-set"}),
        headers={"content-type": "application/json", **headers},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response


def test_openinference_json_payloads_out_of_order(srv: Server) -> None:
    trace, chain, llm, retriever = new_trace_id(), new_span_id(), new_span_id(), new_span_id()
    t0 = time.time_ns()  # recent: rows older than the retention period are dropped on insert
    llm_span = span(
        trace,
        llm,
        "ChatOpenAI",
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "capital of France?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "Paris",
            "llm.token_count.prompt": 20,
            "llm.token_count.completion": 1,
            "llm.token_count.total": 21,
            "session.id": "s-1",
        },
        parent=chain,
        start_ns=t0 + 2_000_000,
    )
    retriever_span = span(
        trace,
        retriever,
        "retrieve",
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": "France",
            "retrieval.documents.0.document.content": "Paris is the capital of France.",
        },
        parent=chain,
        start_ns=t0 + 1_000_000,
    )
    chain_span = span(
        trace,
        chain,
        "RAG",
        {"openinference.span.kind": "CHAIN", "input.value": "capital of France?", "output.value": "Paris"},
        start_ns=t0,
        duration_ns=5_000_000,
    )
    post_json(srv, [llm_span], **{"Langsmith-Project": "openinference"})  # a child, alone and first
    post_json(srv, [chain_span, retriever_span], **{"Langsmith-Project": "openinference"})

    runs = runs_of_trace(srv, uuid.UUID(trace), 3)
    root = runs["RAG"]
    assert root["id"] == str(uuid.UUID(trace))
    assert runs["ChatOpenAI"]["parent_run_id"] == root["id"] == runs["retrieve"]["parent_run_id"]
    assert runs["ChatOpenAI"]["dotted_order"].startswith(root["dotted_order"] + ".")
    assert (root["inputs"], root["outputs"]) == ({"input": "capital of France?"}, {"output": "Paris"})
    assert runs["retrieve"]["run_type"] == "retriever"
    assert runs["retrieve"]["outputs"]["documents"][0]["page_content"] == "Paris is the capital of France."
    chat = runs["ChatOpenAI"]
    assert chat["run_type"] == "llm" and chat["outputs"]["messages"][0]["content"] == "Paris"
    assert (chat["prompt_tokens"], chat["total_tokens"], chat["thread_id"]) == (20, 21, "s-1")
    for run in runs.values():
        expect_project(run, "openinference")


def test_traceloop_json_payloads_gzip(srv: Server) -> None:
    trace, workflow, llm = new_trace_id(), new_span_id(), new_span_id()
    spans = [
        span(
            trace,
            llm,
            "openai.chat",
            {
                "llm.request.type": "chat",
                "gen_ai.system": "OpenAI",
                "gen_ai.request.model": "gpt-3.5-turbo",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "Tell me a joke about OpenTelemetry",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Why did the span...",
                "gen_ai.usage.prompt_tokens": 15,
                "gen_ai.usage.completion_tokens": 9,
            },
            parent=workflow,
        ),
        span(
            trace,
            workflow,
            "joke_generator.workflow",
            {
                "traceloop.span.kind": "workflow",
                "traceloop.entity.name": "joke_generator",
                "traceloop.entity.input": '{"args": [], "kwargs": {"topic": "otel"}}',
                "traceloop.entity.output": '"Why did the span..."',
                "traceloop.association.properties.user_id": "u-9",
            },
        ),
    ]
    body = gzip.compress(request(spans))
    response = httpx.post(
        f"{srv.url}/otel/v1/traces",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
        timeout=10,
    )
    assert response.status_code == 200 and response.json() == {}
    runs = runs_of_trace(srv, uuid.UUID(trace), 2)
    wf, chat = runs["joke_generator"], runs["openai.chat"]
    assert (wf["run_type"], chat["run_type"], chat["parent_run_id"]) == ("chain", "llm", wf["id"])
    assert wf["inputs"] == {"args": [], "kwargs": {"topic": "otel"}} and wf["extra"]["metadata"]["user_id"] == "u-9"
    assert chat["inputs"]["messages"][0]["content"] == "Tell me a joke about OpenTelemetry"
    assert (chat["prompt_tokens"], chat["completion_tokens"], chat["total_tokens"]) == (15, 9, 24)
    assert chat["extra"]["metadata"]["ls_model_name"] == "gpt-3.5-turbo"
    for run in runs.values():
        expect_project(run, "default")


@pytest.mark.parametrize("encoding", ["zstd", "deflate"])
def test_zstd_and_deflate_bodies(srv: Server, encoding: str) -> None:
    trace = new_trace_id()
    body = request([span(trace, new_span_id(), f"compressed-{encoding}", {"input.value": "x"})])
    compressed = zstandard.ZstdCompressor().compress(body) if encoding == "zstd" else zlib.compress(body)
    response = httpx.post(
        f"{srv.url}/otel/v1/traces",
        content=compressed,
        headers={"content-type": "application/json", "content-encoding": encoding},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert runs_of_trace(srv, uuid.UUID(trace), 1)[f"compressed-{encoding}"]["inputs"] == {"input": "x"}


def test_bad_requests(srv: Server) -> None:
    url = f"{srv.url}/otel/v1/traces"
    garbage = httpx.post(url, content=b"\x0a\xff\xff", headers={"content-type": "application/x-protobuf"})
    assert garbage.status_code == 400 and "protobuf" in garbage.json()["error"]
    assert httpx.post(url, content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    bad_gzip = httpx.post(
        url, content=b"nope", headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert bad_gzip.status_code == 400
    assert httpx.post(url, content=b"{}", headers={"content-type": "application/json", "x-api-key": ""}).json() == {}

    trace = new_trace_id()
    mixed = request([span(trace, new_span_id(), "kept-span"), span(trace, "00" * 8, "zero-span-id")])
    response = httpx.post(url, content=mixed, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    as_proto = httpx.post(
        url,
        content=ExportTraceServiceResponse().SerializeToString(),  # a well-formed but empty protobuf body
        headers={"content-type": "application/x-protobuf"},
    )
    assert as_proto.status_code == 200 and as_proto.headers["content-type"] == "application/x-protobuf"
    runs_of_trace(srv, uuid.UUID(trace), 1)


def test_odd_spans_are_normalised_or_rejected_one_by_one(srv: Server) -> None:
    """Spans the LangSmith validation would refuse as they are: coerced where a value has a sensible normal form,
    else rejected one by one with the reason in `partial_success` while the request's other spans are stored."""
    trace, root = new_trace_id(), new_span_id()
    example = uuid.UUID(int=0xABCDEF)
    unknown_kinds = {"langsmith.span.kind": "nonsense", "openinference.span.kind": ["LLM"]}
    children = {
        "odd-tags": {"langsmith.span.tags": '[" a ", 2, null, {"b": 1}]'},
        "odd-example": {"langsmith.reference_example_id": "{" + str(example).upper() + "}"},
        "odd-metadata": {"langsmith.metadata.items": '[1, {"a": null}]', "input.value": "42"},
        "too-deep": {"input.value": "[" * 1000 + "]" * 1000},
        "too-many-segments": {"gen_ai.prompt.0" + ".a" * 5000: "x"},  # overflowed the stack, losing the request
    }
    spans = [span(trace, root, "odd-root", unknown_kinds)]
    spans += [span(trace, new_span_id(), name, attrs, parent=root) for name, attrs in children.items()]
    response = httpx.post(
        f"{srv.url}/otel/v1/traces",
        content=request(spans, {"langsmith.project": 7}),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "span 'too-deep': inputs is nested deeper than 200 levels" in partial["errorMessage"]
    assert "span 'too-many-segments':" in partial["errorMessage"]

    runs = runs_of_trace(srv, uuid.UUID(trace), 4)
    assert runs["odd-root"]["run_type"] == "chain"
    assert runs["odd-tags"]["tags"] == ["a", "2"]
    assert runs["odd-example"]["reference_example_id"] == str(example)
    assert runs["odd-metadata"]["extra"]["metadata"]["items"] == [1, {"a": None}]
    assert runs["odd-metadata"]["inputs"] == {"input": 42}
    expect_project(runs["odd-root"], "7")  # a resource project name that is not text, as its text


def test_projects_by_name(srv: Server) -> None:
    """Last in the module: stops the server to read the projects table in-process (one chDB user at a time)."""
    assert {"otel-SimpleSpanProcessor", "ls-otel-only", "openinference", "default"} <= set(PROJECTS.values())
    srv.stop()
    storage = Storage.open(f"chdb://{srv.data_dir / 'clickhouse'}", f"file://{srv.data_dir / 'blobs'}")
    try:
        for session_id, name in PROJECTS.items():
            project = storage.projects.get(DEFAULT_TENANT_ID, uuid.UUID(session_id))
            assert project is not None and project.name == name
    finally:
        storage.close()
