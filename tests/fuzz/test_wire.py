"""Hypothesis-driven hostile input on the wire formats: mutated multipart bodies (boundaries, part names and
headers, truncation, invalid UTF-8, compression wrapping), random and mutated runs as JSON, mutated OTLP protobuf
and JSON, and filter strings made of random tokens and SQL-injection payloads. Every answer is a clear 4xx (or a
2xx for what happens to be valid), never a 5xx; the conftest checks after each test that the server is alive,
that what was stored before is intact and that new writes are still stored."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from urllib.parse import quote

import zstandard
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests import otlp_payloads
from tests.fuzz.conftest import FUZZ, send
from tests.support import Server

BOUNDARY = "fuzzboundary"


def compress(body: bytes, encoding: str | None, cut: int = 0) -> bytes:
    """`body` in `encoding`, with `cut` bytes cut off the end of the compressed form (a truncated frame)."""
    if encoding == "zstd":
        body = zstandard.ZstdCompressor().compress(body)
    elif encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "deflate":
        body = zlib.compress(body)
    return body[: max(0, len(body) - cut)]


def part(name: bytes, data: bytes, headers: bytes = b"") -> bytes:
    disposition = b'Content-Disposition: form-data; name="%s"\r\n' % name
    return b"--" + BOUNDARY.encode() + b"\r\n" + disposition + headers + b"\r\n" + data + b"\r\n"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)
part_names = st.one_of(
    st.sampled_from(["post", "patch", "feedback", "attachment"]).map(lambda h: f"{h}.{uuid.uuid4()}".encode()),
    st.builds(
        lambda h, f: f"{h}.{uuid.uuid4()}.{f}".encode(),
        st.sampled_from(["post", "patch", "attachment"]),
        st.sampled_from(["inputs", "outputs", "extra", "events", "serialized", "x", "", "a.b"]) | st.text(max_size=10),
    ),
    st.binary(max_size=60),  # includes invalid UTF-8, quotes, CR/LF
    st.text(max_size=60).map(str.encode),
)
part_headers = st.sampled_from(
    [
        b"",
        b"Content-Type: application/json\r\n",
        b"Content-Length: 3\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Type: application/json; length=x\r\n",
        b"Content-Type: text/plain; charset=\xff\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"X-\xff: \xfe\r\n",
        b"no colon here\r\n",
    ]
)
part_data = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()))


@FUZZ
@given(
    parts=st.lists(st.tuples(part_names, part_data, part_headers), max_size=6),
    cut=st.integers(min_value=0, max_value=400),
    encoding=st.sampled_from([None, "zstd", "gzip", "deflate"]),
    compressed_cut=st.sampled_from([0, 0, 1, 7]),
    content_type=st.sampled_from(
        [
            f"multipart/form-data; boundary={BOUNDARY}",
            f'multipart/form-data; boundary="{BOUNDARY}"',
            "multipart/form-data; boundary=other",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=" + "b" * 500,
            "multipart/mixed; boundary=" + BOUNDARY,
        ]
    ),
)
def test_mutated_multipart(
    server: Server,
    parts: list[tuple[bytes, bytes, bytes]],
    cut: int,
    encoding: str | None,
    compressed_cut: int,
    content_type: str,
) -> None:
    body = b"".join(part(n, d, h) for n, d, h in parts) + f"--{BOUNDARY}--\r\n".encode()
    body = body[: len(body) - cut] if cut < len(body) else body
    send(server.url, "POST", "/runs/multipart", compress(body, encoding, compressed_cut), content_type, encoding)


@FUZZ
@given(noise=st.binary(max_size=300), encoding=st.sampled_from(["zstd", "gzip", "deflate", "br", "identity", "x"]))
def test_garbage_compression(server: Server, noise: bytes, encoding: str) -> None:
    send(server.url, "POST", "/runs/multipart", noise, f"multipart/form-data; boundary={BOUNDARY}", encoding)
    send(server.url, "POST", "/runs/batch", noise, "application/json", encoding)
    send(server.url, "PATCH", f"/runs/{uuid.uuid4()}", noise, "application/json", encoding)


# Runs whose known fields hold values of the right or the wrong type, plus random extra fields.
run_fields = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.uuids().map(str), st.text(max_size=40), st.integers()),
        "name": st.one_of(st.text(max_size=30), json_values),
        "run_type": st.one_of(st.sampled_from(["chain", "llm", "tool", "retriever", "prompt"]), json_values),
        "inputs": json_values,
        "outputs": json_values,
        "extra": json_values,
        "events": json_values,
        "tags": st.one_of(st.lists(st.text(max_size=10), max_size=3), json_values),
        "error": json_values,
        "start_time": st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=40), json_values),
        "end_time": st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=40)),
        "trace_id": st.one_of(st.uuids().map(str), st.text(max_size=40)),
        "parent_run_id": st.one_of(st.uuids().map(str), st.text(max_size=40)),
        "dotted_order": st.text(max_size=80),
        "session_name": st.one_of(st.text(max_size=30), json_values),
        "session_id": st.one_of(st.uuids().map(str), st.text(max_size=40)),
        "attachments": st.dictionaries(st.text(max_size=10), json_values, max_size=2),
    },
).flatmap(lambda known: st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(lambda x: {**x, **known}))


def mutate(body: bytes, flips: list[tuple[int, int]]) -> bytes:
    """Byte-level damage: each (position, byte) overwrites one byte (0xff and friends make invalid UTF-8)."""
    data = bytearray(body)
    for position, byte in flips:
        if data:
            data[position % len(data)] = byte
    return bytes(data)


flips = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=3)


@FUZZ
@given(
    run=run_fields,
    damage=flips,
    route=st.sampled_from(["runs", "batch", "patch"]),
    encoding=st.sampled_from([None, None, "zstd", "gzip"]),
)
def test_random_and_damaged_runs(
    server: Server, run: dict, damage: list[tuple[int, int]], route: str, encoding: str | None
) -> None:
    body = mutate(json.dumps(run).encode(), damage)
    if route == "batch":
        body = b'{"post":[' + body + b'],"patch":[' + body + b"]}"
    method, path = {"runs": ("POST", "/runs"), "batch": ("POST", "/runs/batch")}.get(
        route, ("PATCH", f"/runs/{quote(run['id'], safe='') if isinstance(run.get('id'), str) else uuid.uuid4()}")
    )
    send(server.url, method, path, compress(body, encoding), "application/json", encoding)


def otlp_request(attributes: dict, name: str) -> bytes:
    trace = otlp_payloads.new_trace_id()
    root, child = otlp_payloads.new_span_id(), otlp_payloads.new_span_id()
    spans = [
        otlp_payloads.span(trace, root, name, attributes),
        otlp_payloads.span(trace, child, "child", {"input.value": json.dumps(attributes, default=str)}, parent=root),
    ]
    return otlp_payloads.request(spans)


attribute_values = st.one_of(
    st.text(max_size=40), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(), st.booleans()
)
otlp_attributes = st.dictionaries(
    st.sampled_from(
        [
            "input.value",
            "output.value",
            "gen_ai.prompt.0.content",
            "gen_ai.completion.0.content",
            "gen_ai.usage.input_tokens",
            "langsmith.span.kind",
            "langsmith.metadata.user",
            "langsmith.trace.session_id",
            "langsmith.reference_example_id",
            "llm.invocation_parameters",
            "openinference.span.kind",
            "metadata",
        ]
    )
    | st.text(max_size=12),
    attribute_values | json_values.map(json.dumps) | st.lists(st.text(max_size=5), max_size=3),
    max_size=6,
)


@FUZZ
@given(attributes=otlp_attributes, name=st.text(max_size=20), damage=flips, encoding=st.sampled_from([None, "gzip"]))
def test_otlp_json_and_protobuf(
    server: Server, attributes: dict, name: str, damage: list[tuple[int, int]], encoding: str | None
) -> None:
    body = otlp_request(attributes, name)
    send(server.url, "POST", "/otel/v1/traces", compress(mutate(body, damage), encoding), "application/json", encoding)
    proto = json_format.Parse(body, ExportTraceServiceRequest()).SerializeToString()
    for variant in (mutate(proto, damage), proto[: len(proto) // 2], proto + proto[: len(damage) * 7]):
        send(server.url, "POST", "/otel/v1/traces", compress(variant, encoding), "application/x-protobuf", encoding)


@FUZZ
@given(
    body=st.binary(max_size=400),
    content_type=st.sampled_from(["application/x-protobuf", "application/json", "text/plain", "application/protobuf"]),
    encoding=st.sampled_from([None, "gzip", "zstd"]),
)
def test_otlp_garbage(server: Server, body: bytes, content_type: str, encoding: str | None) -> None:
    response = send(server.url, "POST", "/otel/v1/traces", compress(body, encoding), content_type, encoding)
    if content_type == "text/plain":
        assert response.status_code == 415


tokens = st.sampled_from(
    [
        "and(",
        "or(",
        "not(",
        "eq(",
        "neq(",
        "gt(",
        "gte(",
        "lt(",
        "has(",
        "search(",
        "in(",
        "like(",
        ")",
        ",",
        "name",
        "run_type",
        "start_time",
        "latency",
        "total_tokens",
        "metadata_key",
        "metadata_value",
        "input_key",
        "feedback_key",
        "feedback_score",
        "tags",
        "'x'",
        '"y"',
        "'",
        '"',
        "\\",
        "\\'",
        "1.5",
        "-1e400",
        "99999999999999999999999",
        "[",
        "]",
        "{",
        "}",
        "null",
        "--",
        ";",
        "/*",
        "'); DROP TABLE runs; --",
        "\\' OR 1=1 --",
        "' OR '1'='1",
        "{x:String}",
        "{tenant_id:UUID}",
        "`",
        "%",
        "_",
        "\u0000",
        "\ud800",
        "é",
    ]
)


@FUZZ
@given(
    parts=st.lists(tokens | st.text(max_size=8), max_size=14),
    field=st.sampled_from(["filter", "trace_filter", "tree_filter", "query"]),
    path=st.sampled_from(["/runs/query", "/runs/stats", "/threads/query", "/feedback/stats"]),
)
def test_filter_strings(server: Server, parts: list[str], field: str, path: str) -> None:
    text = " ".join(parts)
    body = json.dumps({field: text, "limit": 5})  # ASCII escapes: lone surrogates are valid JSON text
    send(server.url, "POST", path, body.encode(), target=f"POST {path} ({field})")


@FUZZ
@given(depth=st.integers(min_value=1, max_value=20_000), op=st.sampled_from(["and", "or", "not"]))
def test_deeply_nested_filters(server: Server, depth: int, op: str) -> None:
    text = f"{op}(" * depth + "eq(name, 'x')" + ")" * depth
    response = send(server.url, "POST", "/runs/query", json.dumps({"filter": text}).encode())
    assert response.status_code in (200, 400), response.text[:200]
