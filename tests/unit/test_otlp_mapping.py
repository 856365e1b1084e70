"""Span -> run mapping per instrumentation convention (LangSmith SDK, GenAI, OpenInference, Traceloop)."""

from __future__ import annotations

import pickle
import uuid
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import fresh
from ingest.otlp import Encoding, Mapped, TraceLinks, map_request, parse
from ingest.otlp.mapping import to_runs
from ingest.validate import normalise
from schemas import jsonutil
from schemas.jsonutil import MAX_NESTING
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
        # kinds no table knows, or that are not text, make a chain run (as LangSmith's converter does)
        ({"langsmith.span.kind": "nonsense"}, "chain"),
        ({"langsmith.span.kind": ["llm"]}, "chain"),
        ({"openinference.span.kind": 5}, "chain"),
        ({"traceloop.span.kind": "weird"}, "chain"),
        ({"gen_ai.operation.name": True}, "chain"),
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
    assert "session_id is not a valid UUID: 'not-a-uuid'" in mapped.notes[3]


def test_ops_are_valid_run_ops() -> None:
    run = one({"langsmith.reference_example_id": str(uuid.UUID(int=9)), "langsmith.metadata.k": "v"})
    op = RunOp("post", run["id"], run)
    assert normalise(op.kind, op.run_id, op.fields, "otlp").fields == run
    assert run["reference_example_id"] == str(uuid.UUID(int=9))


def nested(levels: int) -> str:
    """JSON text of `levels` nested arrays."""
    return "[" * levels + "]" * levels


def map_spans(spans: list[dict[str, Any]], **resource: Any) -> Mapped:
    return map_request(parse(request(spans, resource), Encoding.JSON), tenant_id=TENANT, links=TraceLinks())


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"input.value": nested(MAX_NESTING + 1)}, "inputs"),
        ({"gen_ai.prompt": '{"a": ' + nested(MAX_NESTING) + "}"}, "inputs"),
        ({"gen_ai.input.messages": nested(MAX_NESTING + 1)}, "inputs"),
        ({"output.value": nested(1000)}, "outputs"),
        ({"langsmith.metadata.k": nested(MAX_NESTING)}, "extra"),
        ({"metadata": '{"a": ' + nested(MAX_NESTING) + "}"}, "extra"),
        ({"llm.invocation_parameters": '{"a": ' + nested(MAX_NESTING) + "}"}, "extra"),
        ({"langsmith.usage_metadata": '{"a": ' + nested(MAX_NESTING) + "}"}, "extra"),
    ],
)
def test_json_text_nested_too_deep_rejects_that_span_only(attributes: dict[str, Any], field: str) -> None:
    """The run validation's own message, as a LangSmith op nested too deep gets it; the request's other spans
    are kept."""
    trace = new_trace_id()
    mapped = map_spans([span(trace, new_span_id(), "kept"), span(trace, new_span_id(), "deep", attributes)])
    assert [op.fields["name"] for op in mapped.ops] == ["kept"]
    assert (mapped.rejected, mapped.notes) == (1, [f"span 'deep': {field} is nested deeper than {MAX_NESTING} levels"])


def test_json_text_nested_up_to_the_limit_is_kept() -> None:
    run = one({"input.value": '{"a": ' + nested(MAX_NESTING - 1) + "}"})
    assert run["inputs"]["a"] == jsonutil.loads(nested(MAX_NESTING - 1))


def test_brackets_inside_strings_are_not_nesting() -> None:
    """A payload's brackets bound its nesting only from above: text full of them in a string takes the walk."""
    code = "{[" * MAX_NESTING
    run = one({"input.value": code, "output.value": '{"a": "' + code + '"}'})
    assert (run["inputs"], run["outputs"]) == ({"input": code}, {"a": code})


def test_presumed_new_rows_store_the_payloads_as_dumped() -> None:
    """The worker's rows hold the texts dumped while the span was checked: the same as dumping the run's values."""
    prompt = {"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi"}
    trace, root = new_trace_id(), new_span_id()
    spans = [
        span(trace, root, "agent", {"input.value": '{"q": "\u00e9"}', "output.value": "ok"}),
        span(trace, new_span_id(), "llm", prompt, parent=root),
    ]
    runs = {op.fields["name"]: op.fields for op in map_spans(spans).ops}
    packed = to_runs(parse(request(spans), Encoding.JSON), pack=True)
    rows = msgpack.unpackb(packed.fresh)
    assert packed.fresh_runs == 2 and all(not node.texts for node in packed.nodes)
    values = [fresh.row_values(row) for row in rows["rowbinary"]]
    for name in ("inputs", "outputs", "extra", "events"):
        texts = {row["name"]: row[name] for row in values}
        for run, text in texts.items():
            if name in runs[run]:
                assert text == jsonutil.dumps(runs[run][name]), (run, name)


@pytest.mark.parametrize("pack", [False, True])
def test_spans_cross_processes_intact(pack: bool) -> None:
    """A decode worker pickles what it mapped back to the server (nodes pickle compactly, by hand)."""
    trace, root = new_trace_id(), new_span_id()
    orphan = span(new_trace_id(), new_span_id(), "orphan", parent=root)  # its parent is in no request yet
    spans = [span(trace, root, "agent", {"input.value": "q"}), orphan]
    mapped = to_runs(parse(request(spans), Encoding.JSON), pack=pack)
    assert pickle.loads(pickle.dumps(mapped, protocol=pickle.HIGHEST_PROTOCOL)) == mapped
    assert len(mapped.nodes) == 2 and any(node.outside for node in mapped.nodes)


def test_indexed_attribute_nested_too_deep_rejects_that_span_only() -> None:
    """A key of thousands of segments used to overflow the stack while its value was rebuilt, failing the
    whole request."""
    trace = new_trace_id()
    deep = {"gen_ai.prompt.0" + ".a" * 5000: "x"}
    mapped = map_spans([span(trace, new_span_id(), "kept"), span(trace, new_span_id(), "deep", deep)])
    assert [op.fields["name"] for op in mapped.ops] == ["kept"]
    assert mapped.rejected == 1 and f"is nested deeper than {MAX_NESTING} levels" in mapped.notes[0]


@pytest.mark.parametrize(
    ("attributes", "field", "expected"),
    [
        ({"input.value": "42"}, "inputs", {"input": 42}),
        ({"input.value": "[1, 2]"}, "inputs", {"input": [1, 2]}),
        ({"input.value": "null"}, "inputs", {"input": None}),
        ({"input.value": nested(2000)}, "inputs", {"input": nested(2000)}),  # beyond any parser: kept as text
        ({"gen_ai.prompt": "[1]"}, "inputs", {"input": [1]}),
        ({"gen_ai.input.messages": "3"}, "inputs", {"messages": ["3"]}),
        ({"output.value": "true"}, "outputs", {"output": True}),
        ({"gen_ai.completion": '"text"'}, "outputs", {"output": "text"}),
    ],
)
def test_json_text_that_is_not_an_object_is_wrapped(attributes: dict[str, Any], field: str, expected: Any) -> None:
    assert one(attributes)[field] == expected


def test_tags_are_strings() -> None:
    """Numbers and booleans become their JSON text; nulls, objects and arrays are not tags."""
    run = one({"langsmith.span.tags": '[" a ", 2, true, null, {"b": 1}, ["c"], "a", ""]'})
    assert run["tags"] == ["a", "2", "true"]
    assert one({"tag.tags": [1, "x", 1.5, False]})["tags"] == ["1", "x", "1.5", "false"]
    for odd in ('{"a": 1}', nested(MAX_NESTING + 5), 7):
        assert "tags" not in one({"langsmith.span.tags": odd}), odd


def test_metadata_values_of_any_type_are_kept_as_json() -> None:
    run = one(
        {
            "langsmith.metadata.n": 1.5,
            "langsmith.metadata.items": '[1, {"a": null}]',
            "langsmith.metadata.flag": False,
            "metadata": "[1, 2]",  # not an object: names no keys
            "http.codes": [200, 404],
            "user.id": 7,
        }
    )
    metadata = run["extra"]["metadata"]
    assert metadata == {"n": 1.5, "items": [1, {"a": None}], "flag": False, "http.codes": [200, 404], "user_id": 7}


def test_ids_and_project_names_take_their_normal_form() -> None:
    example = uuid.UUID(int=9)
    for text in ("{" + str(example).upper() + "}", example.hex, f"urn:uuid:{example}"):
        assert one({"langsmith.reference_example_id": text})["reference_example_id"] == str(example), text
    assert "reference_example_id" not in one({"langsmith.reference_example_id": "not-a-uuid"})
    named = run_map([span(new_trace_id(), new_span_id(), "r")], **{"openinference.project.name": 7})
    assert named["r"]["session_name"] == "7"


UPPER_UUID = uuid.UUID(int=0xABCDEF)
_ATTRIBUTE_KEYS = [
    "langsmith.span.kind",
    "openinference.span.kind",
    "traceloop.span.kind",
    "gen_ai.operation.name",
    "llm.request.type",
    "langsmith.span.tags",
    "tag.tags",
    "langsmith.trace.name",
    "langsmith.trace.session_name",
    "langsmith.reference_example_id",
    "input.value",
    "output.value",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.input.messages",
    "gen_ai.system_instructions",
    "traceloop.entity.input",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.0.1",
    "llm.input_messages.0.message.contents",
    "retrieval.documents.0.document.metadata",
    "metadata",
    "langsmith.metadata.k",
    "langsmith.usage_metadata",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.input_token_details",
    "llm.invocation_parameters",
    "gen_ai.request.model",
    "session.id",
]
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_INT64 = st.integers(-(2**63), 2**63 - 1)  # an OTel int attribute
_VALUES = st.one_of(
    _TEXT,
    _INT64,
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(_INT64 | _TEXT, max_size=3),
    _JSON.map(jsonutil.dumps_str),
    st.integers(MAX_NESTING - 3, MAX_NESTING + 3).map(nested),
    st.sampled_from(["LLM", "llm", "TOOL", "chat", "[]", "{}", str(UPPER_UUID).upper(), f"{{{UPPER_UUID}}}"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_ATTRIBUTE_KEYS), _VALUES, max_size=6))
def test_any_attributes_give_a_valid_run_or_a_rejected_span(attributes: dict[str, Any]) -> None:
    """Whatever the attributes, the span becomes a run exactly as the LangSmith validation leaves it, or is
    rejected with a reason; never an error that would cost the request."""
    mapped = map_spans([span(new_trace_id(), new_span_id(), "s", attributes)])
    assert len(mapped.ops) + mapped.rejected == 1
    for op in mapped.ops:
        assert normalise(op.kind, op.run_id, op.fields, "otlp").fields == op.fields
    assert len(mapped.notes) == mapped.rejected


def _rows_by_id(rows: dict[str, Any] | None) -> dict[str, tuple[Any, ...]]:
    """`fresh.split`'s rows (unpacked from a worker's `Spans.fresh` or as made), each with its batcher fields."""
    if not rows:
        return {}
    names = ("rowbinary", "parents", "dotted", "starts", "ended", "sessions", "text_bytes")
    return {run_id: tuple(rows[name][i] for name in names) for i, run_id in enumerate(rows["ids"])}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(_ATTRIBUTE_KEYS), _VALUES, max_size=6),
    st.dictionaries(st.sampled_from(_ATTRIBUTE_KEYS), _VALUES, max_size=6),
)
def test_presumed_new_rows_built_in_c_are_the_rows_python_builds(parent: dict[str, Any], child: dict[str, Any]) -> None:
    """A decode worker builds the rows of a request's spans in C where it can (`fresh.build`): each is byte for
    byte, with the same batcher fields, the row `fresh.split` builds in Python from the same posts."""
    trace, root = new_trace_id(), new_span_id()
    spans = [span(trace, root, "parent", parent), span(trace, new_span_id(), "child", child, parent=root)]
    packed = to_runs(parse(request(spans), Encoding.JSON), pack=True)
    inside = {node.run_id for node in packed.nodes if not node.outside}  # a rejected parent leaves an orphan
    _, python_rows = fresh.split([op for op in map_spans(spans).ops if op.run_id in inside])
    assert packed.fresh_runs == len(inside)
    assert _rows_by_id(msgpack.unpackb(packed.fresh)) == _rows_by_id(python_rows)
