"""What a span's attributes and events say about its run, per instrumentation convention.

Conventions read here: LangSmith's own (`langsmith.*`, what the langsmith SDK's OTel exporter writes), the OTel
GenAI semantic conventions (`gen_ai.*`, old indexed and new JSON message forms, GenAI span events),
OpenInference (`openinference.span.kind`, `input.value`, `llm.*`, `retrieval.documents.*`) and Traceloop /
OpenLLMetry (`traceloop.*`). Each extractor pops the attributes it consumes from `attrs`, so what is left over
at the end becomes metadata and nothing is stored twice. The full table is docs/otlp-mapping.md.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ingest.otlp.values import Attrs
from schemas import jsonutil
from schemas.jsonutil import CONTAINERS, MAX_NESTING
from schemas.runs import RUN_TYPES

_JSON_START = frozenset('{["-0123456789tfn')

_OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "TOOL": "tool",
    "RETRIEVER": "retriever",
    "RERANKER": "retriever",
    "EMBEDDING": "embedding",
    "PROMPT": "prompt",
}
_GENAI_OPERATIONS = {
    "chat": "llm",
    "text_completion": "llm",
    "completion": "llm",
    "generate_content": "llm",
    "generate": "llm",
    "embeddings": "embedding",
    "embedding": "embedding",
    "execute_tool": "tool",
    "retrieval": "retriever",
    "retrieve": "retriever",
}
_TRACELOOP_KINDS = {"tool": "tool", "workflow": "chain", "task": "chain", "agent": "chain"}
_INPUT_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def loads_maybe(value: Any) -> Any:
    """JSON text that encodes an object or array, parsed; anything else unchanged."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return jsonutil.loads(value)
        except ValueError:
            return value
    return value


def as_object(value: Any, key: str) -> dict[str, Any]:
    """A payload as a JSON object, the shape runs require: objects as they are, anything else under `key`.
    Payload attributes hold JSON text more often than not (`"a joke"`, `2`), so any JSON document is parsed."""
    if isinstance(value, str) and value[:1] in _JSON_START:
        with contextlib.suppress(ValueError):
            value = jsonutil.loads(value)
    return value if isinstance(value, dict) else {key: value}


def _pop_first(attrs: Attrs, *keys: str) -> Any:
    """The first present value among `keys`; all of them are consumed."""
    found = None
    for key in keys:
        value = attrs.pop(key, None)
        if found is None and value is not None and value != "":
            found = value
    return found


# -- run type and name --------------------------------------------------------------------------------------


def run_type(attrs: Attrs) -> str:
    """`langsmith.span.kind`, else `openinference.span.kind`, else Traceloop's kind, else
    `gen_ai.operation.name`, else chain (a span that only names a GenAI tool is a tool)."""
    explicit = attrs.pop("langsmith.span.kind", None)
    openinference = attrs.pop("openinference.span.kind", None)
    traceloop = attrs.pop("traceloop.span.kind", None)
    request_type = attrs.pop("llm.request.type", None)
    operation = attrs.pop("gen_ai.operation.name", None)
    if isinstance(explicit, str) and explicit.lower() in RUN_TYPES:
        return explicit.lower()
    if isinstance(openinference, str) and openinference:
        return _OPENINFERENCE_KINDS.get(openinference.upper(), "chain")
    if isinstance(traceloop, str) and traceloop:
        return _TRACELOOP_KINDS.get(traceloop.lower(), "chain")
    if isinstance(request_type, str) and request_type:
        return "embedding" if request_type.lower().startswith("embedding") else "llm"
    if isinstance(operation, str) and operation:
        lowered = operation.lower()
        return lowered if lowered in RUN_TYPES else _GENAI_OPERATIONS.get(lowered, "chain")
    return "tool" if "gen_ai.tool.name" in attrs else "chain"


def name(attrs: Attrs, span_name: str, kind: str) -> str:
    explicit = _pop_first(attrs, "langsmith.trace.name", "traceloop.entity.name")
    if explicit is None and kind == "tool":
        explicit = attrs.get("tool.name") or attrs.get("gen_ai.tool.name")
    return str(explicit) if explicit is not None else span_name or "span"


# -- inputs and outputs -------------------------------------------------------------------------------------


def unflatten(attrs: Attrs, prefix: str) -> list[Any]:
    """Indexed attributes (`prefix.0.role`, `prefix.0.tool_calls.1.name`, ...) rebuilt into a list, consumed.
    `prefix` is a two-segment family (`gen_ai.prompt.`)."""
    if prefix not in attrs.families:
        return []
    keys = [k for k in attrs if k.startswith(prefix)]
    if not keys:
        return []
    root: dict[Any, Any] = {}
    for key in keys:
        node = root
        parts = [int(p) if p.isdecimal() else p for p in key[len(prefix) :].split(".")]
        if len(parts) > MAX_NESTING:  # the run validation would refuse it too; `_lists` must not recurse that deep
            raise ValueError(f"attribute {key[:80]!r}... is nested deeper than {MAX_NESTING} levels")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = attrs.pop(key)
    listed = _lists(root)
    return listed if isinstance(listed, list) else [listed]


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _lists(v) for k, v in node.items()}
    if items and all(isinstance(k, int) for k in items):
        return [items[k] for k in sorted(items)]
    return items


def _openinference_message(entry: Any) -> Any:
    """`{"message": {"role", "content", "contents": [{"message_content": ...}], "tool_calls": [{"tool_call":
    ...}]}}` to a plain chat message."""
    message = entry.get("message", entry) if isinstance(entry, dict) else entry
    if not isinstance(message, dict):
        return message
    out = dict(message)
    if isinstance(out.get("contents"), list):
        out["content"] = [c.get("message_content", c) if isinstance(c, dict) else c for c in out.pop("contents")]
    if isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [c.get("tool_call", c) if isinstance(c, dict) else c for c in out["tool_calls"]]
    return out


def _event_message(event_name: str, attrs: Attrs) -> dict[str, Any]:
    body = loads_maybe(attrs.get("gen_ai.event.content"))
    message = dict(body) if isinstance(body, dict) else {}
    for key, item in attrs.items():
        if key != "gen_ai.event.content":
            message.setdefault(key.removeprefix("gen_ai."), loads_maybe(item))
    message.setdefault("role", _INPUT_EVENTS.get(event_name, "assistant"))
    return message


def _messages(value: Any) -> dict[str, Any]:
    value = loads_maybe(value)
    if isinstance(value, dict):
        return value
    return {"messages": value if isinstance(value, list) else [value]}


def inputs(attrs: Attrs, events: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    """The first convention that has something, in order: GenAI JSON messages, GenAI indexed prompt,
    OpenInference messages, GenAI events, `input.value`, Traceloop entity input, `gen_ai.prompt`, tool call
    arguments. The others' attributes are consumed too: they carry the same data in another form."""
    system = loads_maybe(attrs.pop("gen_ai.system_instructions", None))
    genai_messages = attrs.pop("gen_ai.input.messages", None)
    indexed = unflatten(attrs, "gen_ai.prompt.")
    openinference = unflatten(attrs, "llm.input_messages.")
    value = attrs.pop("input.value", None)
    mime = attrs.pop("input.mime_type", None)
    traceloop = attrs.pop("traceloop.entity.input", None)
    prompt = attrs.pop("gen_ai.prompt", None)
    arguments = _pop_first(attrs, "gen_ai.tool.call.arguments", "tool_call.function.arguments")
    from_events = [_event_message(e["name"], e["kwargs"]) for e in events if e["name"] in _INPUT_EVENTS]
    event_prompt = next(
        (e["kwargs"].get("gen_ai.prompt") for e in events if e["name"] == "gen_ai.content.prompt"), None
    )

    if genai_messages is not None:
        found = _messages(genai_messages)
        if system is not None and isinstance(found.get("messages"), list):
            found["messages"].insert(0, {"role": "system", "parts": system if isinstance(system, list) else [system]})
        return found
    if indexed:
        return {"messages": indexed}
    if openinference:
        return {"messages": [_openinference_message(m) for m in openinference]}
    if event_prompt is not None:
        return _messages(event_prompt)
    if from_events:
        return {"messages": from_events}
    if value is not None:
        if kind == "retriever" and not (isinstance(mime, str) and "json" in mime):
            return {"query": value}
        return as_object(value, "input")
    for candidate in (traceloop, prompt, arguments):
        if candidate is not None:
            return as_object(candidate, "input")
    return None


def outputs(attrs: Attrs, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mirror of `inputs`, plus retrieved documents (OpenInference) and `gen_ai.choice` events."""
    genai_messages = attrs.pop("gen_ai.output.messages", None)
    indexed = unflatten(attrs, "gen_ai.completion.")
    openinference = unflatten(attrs, "llm.output_messages.")
    documents = unflatten(attrs, "retrieval.documents.")
    value = attrs.pop("output.value", None)
    attrs.pop("output.mime_type", None)
    traceloop = attrs.pop("traceloop.entity.output", None)
    completion = attrs.pop("gen_ai.completion", None)
    result = attrs.pop("gen_ai.tool.call.result", None)
    choices = [_choice(e["kwargs"]) for e in events if e["name"] == "gen_ai.choice"]
    event_completion = next(
        (e["kwargs"].get("gen_ai.completion") for e in events if e["name"] == "gen_ai.content.completion"), None
    )

    if genai_messages is not None:
        return _messages(genai_messages)
    if indexed:
        return {"messages": indexed}
    if openinference:
        return {"messages": [_openinference_message(m) for m in openinference]}
    if documents:
        return {"documents": [_document(d) for d in documents]}
    if event_completion is not None:
        return _messages(event_completion)
    if choices:
        return {"choices": choices}
    for candidate in (value, traceloop, completion, result):
        if candidate is not None:
            return as_object(candidate, "output")
    return None


def _choice(attrs: Attrs) -> dict[str, Any]:
    body = loads_maybe(attrs.get("gen_ai.event.content"))
    choice = dict(body) if isinstance(body, dict) else {}
    for key, item in attrs.items():
        if key != "gen_ai.event.content":
            choice.setdefault(key.removeprefix("gen_ai."), loads_maybe(item))
    return choice


def _document(entry: Any) -> dict[str, Any]:
    document = entry.get("document", entry) if isinstance(entry, dict) else {"content": entry}
    metadata = loads_maybe(document.get("metadata")) if isinstance(document, dict) else None
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    for key in ("id", "score"):
        if isinstance(document, dict) and key in document:
            metadata[key] = document[key]
    content = document.get("content") if isinstance(document, dict) else document
    return {"page_content": content, "metadata": metadata, "type": "Document"}


# -- model, usage, parameters --------------------------------------------------------------------------------

# usage_metadata key (or (details key, part)) <- attributes, in priority order
_USAGE_SOURCES: dict[str | tuple[str, str], tuple[str, ...]] = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"),
    "total_tokens": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total"),
    "input_cost": ("llm.cost.prompt",),
    "output_cost": ("llm.cost.completion",),
    "total_cost": ("llm.cost.total", "gen_ai.usage.cost"),
    ("input_token_details", "cache_read"): (
        "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cache_read.input_tokens",
    ),
    ("input_token_details", "cache_creation"): (
        "llm.token_count.prompt_details.cache_write",
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
    ),
    ("input_token_details", "audio"): ("llm.token_count.prompt_details.audio",),
    ("output_token_details", "reasoning"): (
        "llm.token_count.completion_details.reasoning",
        "gen_ai.usage.reasoning_tokens",
        "gen_ai.usage.output_tokens.reasoning",
    ),
    ("output_token_details", "audio"): ("llm.token_count.completion_details.audio",),
}
_USAGE_BY_ATTRIBUTE = {a: (target, rank) for target, attrs in _USAGE_SOURCES.items() for rank, a in enumerate(attrs)}
_USAGE_FAMILIES = frozenset({"gen_ai.usage.", "llm.token_count.", "llm.cost.", "llm.usage."})
_USAGE_PREFIXES = tuple(_USAGE_FAMILIES)
_JSON_DETAILS = {
    "gen_ai.usage.input_token_details": "input_token_details",
    "gen_ai.usage.output_token_details": "output_token_details",
}


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return None
    return None


def usage(attrs: Attrs) -> dict[str, Any] | None:
    """LangSmith `usage_metadata` (input/output/total tokens and costs, their details) from GenAI and
    OpenInference counters; `langsmith.usage_metadata` (JSON) is taken whole when present. Counters this
    table does not know stay in metadata."""
    explicit = loads_maybe(attrs.pop("langsmith.usage_metadata", None))
    if attrs.families.isdisjoint(_USAGE_FAMILIES):
        return explicit if isinstance(explicit, dict) else None
    best: dict[str | tuple[str, str], tuple[int, int | float]] = {}
    found: dict[str, Any] = {}
    for key in [k for k in attrs if k.startswith(_USAGE_PREFIXES)]:
        if key in _JSON_DETAILS:
            details = loads_maybe(attrs.pop(key))
            if isinstance(details, dict):
                found[_JSON_DETAILS[key]] = {**details, **found.get(_JSON_DETAILS[key], {})}
            continue
        target = _USAGE_BY_ATTRIBUTE.get(key)
        if target is None:
            continue
        number = _number(attrs.pop(key))
        if number is not None and (target[0] not in best or target[1] < best[target[0]][0]):
            best[target[0]] = (target[1], number)
    for where, (_, number) in best.items():
        if isinstance(where, tuple):
            found.setdefault(where[0], {})[where[1]] = number
        else:
            found[where] = number
    if isinstance(explicit, dict):
        return {**found, **explicit}
    if not found:
        return None
    if "total_tokens" not in found and ("input_tokens" in found or "output_tokens" in found):
        found["total_tokens"] = found.get("input_tokens", 0) + found.get("output_tokens", 0)
    return found


def model(attrs: Attrs) -> dict[str, str]:
    """`ls_provider` and `ls_model_name`, the metadata keys LangSmith reads a run's model from."""
    provider = _pop_first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    # gen_ai.request.model stays for invocation_params, gen_ai.response.model for metadata.
    model_name = _pop_first(attrs, "llm.model_name", "llm.request.model")
    model_name = attrs.get("gen_ai.request.model") or model_name or attrs.get("gen_ai.response.model")
    out = {}
    if isinstance(provider, str) and provider and provider != "langchain":  # the SDK's "no model" placeholder
        out["ls_provider"] = provider
    if model_name is not None:
        out["ls_model_name"] = str(model_name)
    return out


def invocation_params(attrs: Attrs) -> dict[str, Any]:
    """`gen_ai.request.*` parameters and OpenInference `llm.invocation_parameters` (JSON)."""
    params = loads_maybe(attrs.pop("llm.invocation_parameters", None))
    out = dict(params) if isinstance(params, dict) else {}
    keys = [k for k in attrs if k.startswith("gen_ai.request.")] if "gen_ai.request." in attrs.families else []
    for key in keys:
        out[key.removeprefix("gen_ai.request.")] = loads_maybe(attrs.pop(key))
    return out


def serialized(attrs: Attrs) -> dict[str, Any] | None:
    out = {
        key: attrs.pop(f"gen_ai.serialized.{key}")
        for key in ("name", "signature", "doc")
        if f"gen_ai.serialized.{key}" in attrs
    }
    return out or None


# -- metadata, tags, project ---------------------------------------------------------------------------------

_THREAD_ATTRIBUTES = {"session.id": "session_id", "gen_ai.conversation.id": "conversation_id", "user.id": "user_id"}


def metadata(attrs: Attrs) -> dict[str, Any]:
    """`langsmith.metadata.*`, Traceloop association properties and OpenInference `metadata` (JSON), then
    session/conversation/user ids under the keys LangSmith derives a thread id from."""
    out: dict[str, Any] = {}
    embedded = loads_maybe(attrs.pop("metadata", None))
    if isinstance(embedded, dict):
        out.update(embedded)
    for family, prefix in (
        ("traceloop.association.", "traceloop.association.properties."),
        ("langsmith.metadata.", "langsmith.metadata."),
    ):
        if family not in attrs.families:
            continue
        for key in [k for k in attrs if k.startswith(prefix)]:
            out[key.removeprefix(prefix)] = loads_maybe(attrs.pop(key))
    for attribute, key in _THREAD_ATTRIBUTES.items():
        value = attrs.pop(attribute, None)
        if value not in (None, "") and out.get(key) in (None, ""):
            out[key] = value
    return out


def tags(attrs: Attrs) -> list[str]:
    """Comma-separated text or an array (JSON text or an OTel array). Runs take a list of strings: numbers and
    booleans in an array become their JSON text; nulls, objects and arrays name no tag and are dropped."""
    out: list[str] = []
    for key in ("langsmith.span.tags", "tag.tags"):
        value = loads_maybe(attrs.pop(key, None))
        items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
        for item in items:
            if item is None or isinstance(item, CONTAINERS):
                continue
            tag = (item if isinstance(item, str) else jsonutil.dumps_str(item)).strip()
            if tag and tag not in out:
                out.append(tag)
    return out


def project(attrs: Attrs) -> tuple[str | None, str | None]:
    """(`session_id`, `session_name`) named by the span itself, if it names one."""
    session_id = attrs.pop("langsmith.trace.session_id", None)
    session_name = attrs.pop("langsmith.trace.session_name", None)
    return (str(session_id) if session_id else None, str(session_name) if session_name else None)
