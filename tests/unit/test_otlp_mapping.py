"""Span -> run mapping per instrumentation convention (LangSmith SDK, GenAI, OpenInference, Traceloop)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ingest.otlp import Encoding, TraceLinks, map_request, parse
from ingest.validate import normalise
from schemas.runs import RunOp
from tests.otlp_payloads import new_span_id, new_trace_id, request, span

TENANT = uuid.UUID(int=1)


def run_map(spans: list[dict[str, Any]], *, project: str | None = None, **resource: Any) -> dict[str, dict[str, Any]]:
    """Posts by run name, each checked to be exactly what the LangSmith validation would have produced."""
    mapped = map_request(
        parse(request(spans, resource), Encoding.JSON), tenant_id=TENANT, links=TraceLinks(), project=project
    )
    assert mapped.rejected == 0, mapped.notes
    out = {}
    for op in mapped.ops:
        assert op.kind == "post"
        assert normalise(op.kind, op.run_id, op.fields, "otlp").fields == op.fields
        out[op.fields["name"]] = op.fields
    return out


def one(attributes: dict[str, Any], project: str | None = None, **kwargs: Any) -> dict[str, Any]:
    spans = [span(new_trace_id(), new_span_id(), "s", attributes, **kwargs)]
    return next(iter(run_map(spans, project=project).values()))


def test_langsmith_sdk_span() -> None:
    """Attributes exactly as langsmith 0.15's OTel exporter writes them for an llm run."""
    run = one(
        {
            "langsmith.span.kind": "llm",
            "langsmith.trace.name": "child",
            "langsmith.trace.session_name": "proj-a",
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-x",
            "langsmith.metadata.ls_provider": "openai",
            "langsmith.metadata.ls_model_name": "gpt-x",
            "langsmith.metadata.usage_metadata": '{"input_tokens":5,"output_tokens":6,"total_tokens":11}',
            "langsmith.metadata.user": '{"id": 7}',
            "langsmith.span.tags": "tg, t2",
            "gen_ai.serialized.name": "child",
            "gen_ai.prompt": '{"x":1}',
            "gen_ai.usage.input_tokens": 5,
            "gen_ai.usage.output_tokens": 6,
            "gen_ai.usage.total_tokens": 11,
            "gen_ai.completion": '{"content":"hi"}',
            "langsmith.request.headers": "secret",
        },
        project="header-project",
    )
    assert (run["name"], run["run_type"], run["session_name"]) == ("child", "llm", "proj-a")
    assert run["inputs"] == {"x": 1}
    assert run["outputs"] == {"content": "hi"}
    assert run["tags"] == ["tg", "t2"]
    assert run["serialized"] == {"name": "child"}
    metadata = run["extra"]["metadata"]
    assert metadata["usage_metadata"] == {"input_tokens": 5, "output_tokens": 6, "total_tokens": 11}
    assert (metadata["ls_provider"], metadata["ls_model_name"], metadata["user"]) == ("openai", "gpt-x", {"id": 7})
    assert not any(k.startswith(("langsmith.", "gen_ai.usage", "gen_ai.prompt")) for k in metadata)
    assert run["extra"]["invocation_params"] == {"model": "gpt-x"}


def test_openinference_llm_span() -> None:
    run = one(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "input.value": '{"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o-mini"}',
            "input.mime_type": "application/json",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "be brief",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.type": "text",
            "llm.input_messages.1.message.contents.0.message_content.text": "hi",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "hello",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "search",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"q": "x"}',
            "llm.token_count.prompt": 12,
            "llm.token_count.completion": 3,
            "llm.token_count.total": 15,
            "llm.token_count.prompt_details.cache_read": 4,
            "llm.cost.total": 0.25,
            "llm.invocation_parameters": '{"temperature": 0.1}',
            "session.id": "thread-9",
            "metadata": '{"tenant": "acme"}',
            "tag.tags": ["a", "b"],
        }
    )
    assert run["run_type"] == "llm"
    assert run["inputs"]["messages"][0] == {"role": "system", "content": "be brief"}
    assert run["inputs"]["messages"][1]["content"] == [{"type": "text", "text": "hi"}]
    out = run["outputs"]["messages"][0]
    assert out["content"] == "hello"
    assert out["tool_calls"][0]["function"] == {"name": "search", "arguments": '{"q": "x"}'}
    metadata = run["extra"]["metadata"]
    assert metadata["usage_metadata"] == {
        "input_tokens": 12,
        "output_tokens": 3,
        "total_tokens": 15,
        "total_cost": 0.25,
        "input_token_details": {"cache_read": 4},
    }
    assert (metadata["ls_model_name"], metadata["ls_provider"]) == ("gpt-4o-mini", "openai")
    assert (metadata["session_id"], metadata["tenant"]) == ("thread-9", "acme")
    assert run["extra"]["invocation_params"] == {"temperature": 0.1}
    assert run["tags"] == ["a", "b"]


def test_openinference_retriever_tool_chain_and_embedding() -> None:
    trace = new_trace_id()
    runs = run_map(
        [
            span(
                trace,
                new_span_id(),
                "retrieve",
                {
                    "openinference.span.kind": "RETRIEVER",
                    "input.value": "what is otel",
                    "retrieval.documents.0.document.content": "OpenTelemetry is ...",
                    "retrieval.documents.0.document.id": "d1",
                    "retrieval.documents.0.document.score": 0.9,
                    "retrieval.documents.0.document.metadata": '{"source": "wiki"}',
                },
            ),
            span(
                trace,
                new_span_id(),
                "tool-span",
                {
                    "openinference.span.kind": "TOOL",
                    "tool.name": "calc",
                    "input.value": '{"a": 1}',
                    "output.value": "2",
                },
            ),
            span(trace, new_span_id(), "agent", {"openinference.span.kind": "AGENT", "output.value": "done"}),
            span(trace, new_span_id(), "embed", {"openinference.span.kind": "EMBEDDING"}),
        ]
    )
    retriever = runs["retrieve"]
    assert (retriever["run_type"], retriever["inputs"]) == ("retriever", {"query": "what is otel"})
    assert retriever["outputs"] == {
        "documents": [
            {
                "page_content": "OpenTelemetry is ...",
                "metadata": {"source": "wiki", "id": "d1", "score": 0.9},
                "type": "Document",
            }
        ]
    }
    tool = runs["calc"]
    assert (tool["run_type"], tool["inputs"], tool["outputs"]) == ("tool", {"a": 1}, {"output": 2})
    assert (runs["agent"]["run_type"], runs["agent"]["outputs"]) == ("chain", {"output": "done"})
    assert runs["embed"]["run_type"] == "embedding"


def test_traceloop_spans() -> None:
    trace, workflow = new_trace_id(), new_span_id()
    runs = run_map(
        [
            span(
                trace,
                workflow,
                "joke.workflow",
                {
                    "traceloop.span.kind": "workflow",
                    "traceloop.entity.name": "joke",
                    "traceloop.entity.input": '{"args": [], "kwargs": {"topic": "otel"}}',
                    "traceloop.entity.output": '"a joke"',
                    "traceloop.association.properties.user_id": "u1",
                },
            ),
            span(
                trace,
                new_span_id(),
                "openai.chat",
                {
                    "llm.request.type": "chat",
                    "gen_ai.system": "OpenAI",
                    "gen_ai.request.model": "gpt-4",
                    "gen_ai.request.temperature": 0.5,
                    "gen_ai.response.model": "gpt-4-0613",
                    "gen_ai.prompt.0.role": "user",
                    "gen_ai.prompt.0.content": "tell a joke",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": "why did...",
                    "gen_ai.completion.0.finish_reason": "stop",
                    "gen_ai.usage.prompt_tokens": 9,
                    "gen_ai.usage.completion_tokens": 7,
                    "llm.usage.total_tokens": 16,
                },
                parent=workflow,
            ),
        ]
    )
    wf = runs["joke"]
    assert (wf["run_type"], wf["inputs"], wf["outputs"]) == (
        "chain",
        {"args": [], "kwargs": {"topic": "otel"}},
        {"output": "a joke"},
    )
    assert wf["extra"]["metadata"]["user_id"] == "u1"
    llm = runs["openai.chat"]
    assert llm["run_type"] == "llm"
    assert llm["inputs"] == {"messages": [{"role": "user", "content": "tell a joke"}]}
    assert llm["outputs"] == {"messages": [{"role": "assistant", "content": "why did...", "finish_reason": "stop"}]}
    metadata = llm["extra"]["metadata"]
    assert metadata["usage_metadata"] == {"input_tokens": 9, "output_tokens": 7, "total_tokens": 16}
    assert (metadata["ls_provider"], metadata["ls_model_name"]) == ("OpenAI", "gpt-4")
    assert metadata["gen_ai.response.model"] == "gpt-4-0613"
    assert llm["extra"]["invocation_params"] == {"model": "gpt-4", "temperature": 0.5}
    assert llm["parent_run_id"] == wf["id"]


def test_genai_json_messages_and_events() -> None:
    new_style = one(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.system_instructions": '[{"type": "text", "content": "be nice"}]',
            "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
            "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}]',
            "gen_ai.conversation.id": "conv-1",
            "gen_ai.usage.input_tokens": 2,
            "gen_ai.usage.output_tokens": 1,
        }
    )
    assert new_style["inputs"]["messages"][0] == {"role": "system", "parts": [{"type": "text", "content": "be nice"}]}
    assert new_style["inputs"]["messages"][1]["role"] == "user"
    assert new_style["outputs"]["messages"][0]["parts"][0]["content"] == "yo"
    assert new_style["extra"]["metadata"]["conversation_id"] == "conv-1"
    assert new_style["extra"]["metadata"]["usage_metadata"]["total_tokens"] == 3

    from_events = one(
        {"gen_ai.operation.name": "chat"},
        events=[
            {"name": "gen_ai.system.message", "attributes": {"content": "sys"}},
            {"name": "gen_ai.user.message", "attributes": {"content": "question"}},
            {
                "name": "gen_ai.choice",
                "attributes": {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": '{"role": "assistant", "content": "answer"}',
                },
            },
            {"name": "new_token", "attributes": {}},
        ],
    )
    assert from_events["inputs"] == {
        "messages": [{"content": "sys", "role": "system"}, {"content": "question", "role": "user"}]
    }
    assert from_events["outputs"] == {
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "answer"}}]
    }
    assert [e["name"] for e in from_events["events"]] == ["new_token"]

    content_events = one(
        {"gen_ai.operation.name": "text_completion"},
        events=[
            {"name": "gen_ai.content.prompt", "attributes": {"gen_ai.prompt": '[{"role": "user", "content": "p"}]'}},
            {"name": "gen_ai.content.completion", "attributes": {"gen_ai.completion": "plain text"}},
        ],
    )
    assert content_events["inputs"] == {"messages": [{"role": "user", "content": "p"}]}
    assert content_events["outputs"] == {"messages": ["plain text"]}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"langsmith.span.kind": "PARSER", "openinference.span.kind": "LLM"}, "parser"),
        ({"langsmith.span.kind": "nonsense", "openinference.span.kind": "LLM"}, "llm"),
        ({"openinference.span.kind": "GUARDRAIL", "gen_ai.operation.name": "chat"}, "chain"),
        ({"gen_ai.operation.name": "embeddings"}, "embedding"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"gen_ai.operation.name": "invoke_agent"}, "chain"),
        ({"gen_ai.operation.name": "retriever"}, "retriever"),
        ({"gen_ai.tool.name": "search"}, "tool"),
        ({"llm.request.type": "embedding"}, "embedding"),
        ({}, "chain"),
    ],
)
def test_run_type_precedence(attributes: dict[str, Any], expected: str) -> None:
    assert one(attributes)["run_type"] == expected


def test_error_status_with_exception_event() -> None:
    run = one(
        {},
        error="boom",
        events=[
            {
                "name": "exception",
                "attributes": {
                    "exception.type": "ValueError",
                    "exception.message": "bad value",
                    "exception.stacktrace": "Traceback (most recent call last):\n  File x\nValueError: bad value",
                },
            }
        ],
    )
    assert run["error"].startswith("bad value\n\nTraceback (most recent call last):")
    assert run["events"][0]["name"] == "exception"
    assert run["events"][0]["kwargs"]["exception.type"] == "ValueError"
    assert one({}, error="just the status")["error"] == "just the status"
    handled = one({}, events=[{"name": "exception", "attributes": {"exception.message": "retried"}}])
    assert "error" not in handled


def test_project_precedence_and_default() -> None:
    assert one({"langsmith.trace.session_name": "attr"}, project="header")["session_name"] == "attr"
    by_id = one({"langsmith.trace.session_id": str(uuid.UUID(int=5))}, project="header")
    assert (by_id["session_id"], "session_name" in by_id) == (str(uuid.UUID(int=5)), False)
    upper = one({"langsmith.trace.session_id": str(uuid.UUID(int=5)).upper()})
    assert upper["session_id"] == str(uuid.UUID(int=5)), "canonical, as every other ingest path stores it"
    assert one({}, project="header")["session_name"] == "header"
    from_resource = run_map([span(new_trace_id(), new_span_id(), "r")], **{"openinference.project.name": "px"})
    assert from_resource["r"]["session_name"] == "px"
    assert "session_name" not in one({})  # the batcher's default project


def test_times_resource_scope_and_remaining_attributes() -> None:
    run = one({"http.method": "GET", "retries": 3, "flag": True}, start_ns=1_700_000_000_123_456_789)
    assert run["start_time"] == "2023-11-14T22:13:20.123456+00:00"
    assert run["end_time"] == "2023-11-14T22:13:20.124456+00:00"
    assert run["extra"]["metadata"] == {"http.method": "GET", "retries": 3, "flag": True}
    otel = run["extra"]["otel"]
    assert otel["resource"]["service.name"] == "otlp-test"
    assert otel["scope"] == {"name": "test", "version": "1.0", "attributes": {}}
    assert otel["kind"] == "internal"
    assert run["extra"]["runtime"]["library"] == "test"


def test_invalid_spans_are_rejected_and_the_rest_kept() -> None:
    trace = new_trace_id()
    body = request(
        [
            span(trace, new_span_id(), "good"),
            span("00" * 16, new_span_id(), "zero-trace"),
            span(trace, "abcd", "short-span-id"),
            {**span(trace, new_span_id(), "no-start"), "startTimeUnixNano": "0"},
            span(trace, new_span_id(), "bad-project", {"langsmith.trace.session_id": "not-a-uuid"}),
        ]
    )
    mapped = map_request(parse(body, Encoding.JSON), tenant_id=TENANT, links=TraceLinks())
    assert [op.fields["name"] for op in mapped.ops] == ["good"]
    assert mapped.rejected == 4
    assert "trace_id" in mapped.notes[0] and "span_id" in mapped.notes[1] and "start_time" in mapped.notes[2]
    assert "session_id 'not-a-uuid' is not a UUID" in mapped.notes[3]


def test_ops_are_valid_run_ops() -> None:
    run = one({"langsmith.reference_example_id": str(uuid.UUID(int=9)), "langsmith.metadata.k": "v"})
    op = RunOp("post", uuid.UUID(run["id"]), run)
    assert normalise(op.kind, op.run_id, op.fields, "otlp").fields == run
    assert run["reference_example_id"] == str(uuid.UUID(int=9))
