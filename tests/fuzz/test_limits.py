"""Explicit hostile cases against a server with small limits: oversized bodies, decompression bombs, corrupt
compression, JSON nested 100,000 levels, 10 MB strings, invalid UTF-8, slow bodies. Each gets a clear 4xx
(JSON naming the problem), valid input beside it still gets stored, and the server lives on."""

from __future__ import annotations

import gzip
import socket
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import zstandard
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingest.validate import MAX_NESTING
from tests import otlp_payloads
from tests.fuzz.conftest import send
from tests.support import Server, wait_for

MAX_BODY = 16 * 1024 * 1024
MAX_JSON_BODY = 1024 * 1024
TIMEOUT_S = 2
BOUNDARY = "limitsboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "TRACEHOUSE_MAX_BODY_BYTES": str(MAX_BODY),
        "TRACEHOUSE_MAX_JSON_BODY_BYTES": str(MAX_JSON_BODY),
        "TRACEHOUSE_REQUEST_TIMEOUT_S": str(TIMEOUT_S),
    }
    srv = Server(tmp_path_factory.mktemp("limits") / "data", env=env).start()
    yield srv
    srv.stop()


def run_json(run_id: str, inputs: bytes = b"{}") -> bytes:
    return b'{"id":"%s","name":"limits","run_type":"chain","inputs":%s}' % (run_id.encode(), inputs)


def multipart(run_id: str, inputs: bytes = b"{}", name: bytes | None = None) -> bytes:
    head = b'--%s\r\nContent-Disposition: form-data; name="%s"\r\nContent-Type: application/json\r\n\r\n'
    main = head % (BOUNDARY.encode(), name or f"post.{run_id}".encode())
    extra = head % (BOUNDARY.encode(), f"post.{run_id}.inputs".encode())
    body = b'{"name":"limits","run_type":"chain"}'
    return main + body + b"\r\n" + extra + inputs + b"\r\n" + f"--{BOUNDARY}--\r\n".encode()


# (method, path, content type, body of one run with the given inputs): every ingest route that takes a run
IngestBody = Callable[[str, bytes], bytes]
INGEST: dict[str, tuple[str, Callable[[str], str], str, IngestBody]] = {
    "runs": ("POST", lambda _: "/runs", "application/json", run_json),
    "batch": ("POST", lambda _: "/runs/batch", "application/json", lambda r, i: b'{"post":[%s]}' % run_json(r, i)),
    "patch": ("PATCH", lambda r: f"/runs/{r}", "application/json", lambda r, i: b'{"inputs":%s}' % i),
    "multipart": ("POST", lambda _: "/runs/multipart", MULTIPART, multipart),
}
JSON_ROUTES = ["/runs/query", "/threads/query", "/runs/stats", "/feedback", "/feedback/stats", "/sessions"]


def ingest(url: str, route: str, inputs: bytes, encoding: str | None = None, run_id: str = "") -> httpx.Response:
    run_id = run_id or str(uuid.uuid4())
    method, path, content_type, build = INGEST[route]
    return send(url, method, path(run_id), compress(build(run_id, inputs), encoding), content_type, encoding)


def compress(body: bytes, encoding: str | None) -> bytes:
    if encoding == "zstd":  # streamed, no content size in the frame header: as the SDK sends it
        compressor = zstandard.ZstdCompressor().compressobj()
        return compressor.compress(body) + compressor.flush()
    if encoding == "gzip":
        return gzip.compress(body, compresslevel=1)
    if encoding == "deflate":
        return zlib.compress(body, 1)
    return body


def stored(url: str, run_id: str) -> dict:
    def read() -> dict | None:
        response = httpx.get(f"{url}/runs/{run_id}", timeout=30)
        return response.json() if response.is_success else None

    return wait_for(read, what=f"run {run_id}")


@pytest.mark.parametrize("route", INGEST)
def test_body_over_the_limit_is_413(server: Server, route: str) -> None:
    padding = b'"' + b"x" * MAX_BODY + b'"'
    assert ingest(server.url, route, b'{"pad":%s}' % padding).status_code == 413
    method, path, content_type, build = INGEST[route]
    body = build(str(uuid.uuid4()), b'{"pad":%s}' % padding)
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))  # chunked: no Content-Length to trust
    response = httpx.request(
        method, server.url + path(str(uuid.uuid4())), content=chunks, headers={"Content-Type": content_type}
    )
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_otlp_body_over_the_limit_is_413(server: Server) -> None:
    body = b"\x0a" + b"\xff" * (MAX_BODY + 1)
    assert send(server.url, "POST", "/otel/v1/traces", body, "application/x-protobuf").status_code == 413


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_json_route_body_over_its_limit_is_413(server: Server, path: str) -> None:
    body = b'{"filter":"eq(name, \'%s\')"}' % (b"x" * (10 * 1024 * 1024))  # a 10 MB string
    assert send(server.url, "POST", path, body).status_code == 413


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "deflate"])
@pytest.mark.parametrize("route", INGEST)
def test_decompression_bomb_is_413(server: Server, route: str, encoding: str) -> None:
    bomb = b'{"pad":"' + b"\0" * (MAX_BODY + 1) + b'"}'
    response = ingest(server.url, route, bomb, encoding)
    assert response.status_code == 413 and "decompressed" in response.json()["error"]


def test_otlp_decompression_bombs_are_413(server: Server) -> None:
    zeros = b"\0" * (MAX_BODY * 2)
    for encoding in ("zstd", "gzip", "deflate"):
        body = compress(zeros, encoding)
        assert send(server.url, "POST", "/otel/v1/traces", body, "application/x-protobuf", encoding).status_code == 413
    frames = zstandard.ZstdCompressor().compress(b"\0" * (1024 * 1024)) * 20  # many small frames, one big body
    assert send(server.url, "POST", "/runs/batch", frames, "application/json", "zstd").status_code == 413


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "deflate"])
@pytest.mark.parametrize("route", INGEST)
def test_corrupt_or_truncated_compression_is_400(server: Server, route: str, encoding: str) -> None:
    method, path, content_type, build = INGEST[route]
    whole = compress(build(str(uuid.uuid4()), b'{"a":"' + b"y" * 5000 + b'"}'), encoding)
    for body in (whole[: len(whole) // 2], whole[:-3], b"\x28\xb5\x2f\xfd garbage", b""):
        response = send(server.url, method, path(str(uuid.uuid4())), body, content_type, encoding)
        assert response.status_code in (400, 422), (body[:20], response.text)
    bad = send(server.url, method, path(str(uuid.uuid4())), whole, content_type, "br")
    assert bad.status_code == 415


@pytest.mark.parametrize("route", INGEST)
def test_json_nested_100k_levels_is_4xx(server: Server, route: str) -> None:
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        assert ingest(server.url, route, deep).status_code in (400, 413, 422)


@pytest.mark.parametrize("path", [*JSON_ROUTES, "/otel/v1/traces"])
def test_json_nested_100k_levels_on_other_routes_is_4xx(server: Server, path: str) -> None:
    deep = b'{"filter":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert send(server.url, "POST", path, deep).status_code in (400, 413, 422)


@pytest.mark.parametrize("route", INGEST)
def test_nesting_at_the_limit_is_stored_and_over_it_is_422(server: Server, route: str) -> None:
    """Nesting that parses but could not be written used to be acknowledged and then wedge the batcher."""
    ok, too_deep = str(uuid.uuid4()), str(uuid.uuid4())
    if route == "patch":
        assert send(server.url, "POST", "/runs", run_json(ok)).status_code == 202
    at_limit = b'{"a":' * (MAX_NESTING - 1) + b"1" + b"}" * (MAX_NESTING - 1)
    assert ingest(server.url, route, at_limit, run_id=ok).status_code == 202
    over = b"[" * (MAX_NESTING + 5) + b"]" * (MAX_NESTING + 5)
    rejected = ingest(server.url, route, b'{"a":%s}' % over, run_id=too_deep)
    assert rejected.status_code == 422 and "nested deeper" in rejected.json()["error"], rejected.text
    wait_for(lambda: "a" in stored(server.url, ok)["inputs"], what="the run nested up to the limit")


def test_otlp_attribute_nested_too_deep_rejects_that_span_only(server: Server) -> None:
    trace = otlp_payloads.new_trace_id()
    deep = "[" * (MAX_NESTING + 5) + "]" * (MAX_NESTING + 5)
    good, bad = otlp_payloads.new_span_id(), otlp_payloads.new_span_id()
    spans = [
        otlp_payloads.span(trace, good, "fine", {"input.value": '{"q": 1}'}),
        otlp_payloads.span(trace, bad, "deep", {"input.value": deep}),
    ]
    response = send(server.url, "POST", "/otel/v1/traces", otlp_payloads.request(spans))
    assert response.status_code == 200 and response.json()["partialSuccess"]["rejectedSpans"] in (1, "1")
    query = {"filter": "eq(name, 'fine')", "limit": 5}
    wait_for(lambda: httpx.post(f"{server.url}/runs/query", json=query).json()["runs"], what="the good span")


@pytest.mark.parametrize("route", ["runs", "multipart"])
def test_ten_megabyte_string_is_stored(server: Server, route: str) -> None:
    run_id = str(uuid.uuid4())
    text = "z" * (10 * 1024 * 1024)
    assert ingest(server.url, route, b'{"s":"%s"}' % text.encode(), "zstd", run_id).status_code == 202
    assert stored(server.url, run_id)["inputs"]["s"] == text


def test_ten_megabyte_part_name_and_megabyte_header_are_4xx(server: Server) -> None:
    name = b"post." + b"q" * (10 * 1024 * 1024)
    assert ingest(server.url, "multipart", b"{}").status_code == 202
    response = send(server.url, "POST", "/runs/multipart", multipart(str(uuid.uuid4()), name=name), MULTIPART)
    assert response.status_code in (400, 422)
    headers = {"Content-Type": "application/json", "X-Huge": "h" * (1024 * 1024)}
    big_header = httpx.post(f"{server.url}/runs/query", content=b"{}", headers=headers)
    assert big_header.status_code < 500


@pytest.mark.parametrize("route", INGEST)
def test_invalid_utf8_is_4xx(server: Server, route: str) -> None:
    response = ingest(server.url, route, b'{"bad":"\xff\xfe\xc3"}')
    assert response.status_code in (400, 422) and "JSON" in response.json()["error"]


def test_invalid_utf8_in_part_names_and_other_routes_is_4xx(server: Server) -> None:
    name = b"post." + str(uuid.uuid4()).encode() + b"\xff"
    assert send(server.url, "POST", "/runs/multipart", multipart("x", name=name), MULTIPART).status_code in (400, 422)
    for path in [*JSON_ROUTES, "/otel/v1/traces"]:
        assert send(server.url, "POST", path, b'{"filter":"eq(name, \'\xff\')"}').status_code in (400, 422)
    span = ExportTraceServiceRequest()
    span.resource_spans.add().scope_spans.add().spans.add(name="n", trace_id=b"\1" * 16, span_id=b"\2" * 8)
    body = span.SerializeToString().replace(b"\x2a\x01n", b"\x2a\x01\xff")  # field 5, the name: now not UTF-8
    assert send(server.url, "POST", "/otel/v1/traces", body, "application/x-protobuf").status_code in (400, 422)


def _reply_to_stalled_body(server: Server, path: str, content_type: str) -> bytes:
    """Sends the headers and the start of a body that never completes; the reply, read until the server closes."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n"
    reply = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S * 4) as conn:
        conn.sendall(head.encode() + b'{"post":[')
        while chunk := conn.recv(4096):
            reply += chunk
    return reply


SLOW_ROUTES = [
    ("/runs/multipart", MULTIPART),
    ("/runs/batch", "application/json"),
    ("/runs/query", "application/json"),
    ("/otel/v1/traces", "application/json"),
]


def test_slow_bodies_time_out_with_408(server: Server) -> None:
    """Stalled bodies on four routes at once: each gets its 408 after the deadline, and meanwhile the server
    answers others."""
    started = time.monotonic()
    with ThreadPoolExecutor(len(SLOW_ROUTES)) as pool:
        replies = pool.map(lambda route: _reply_to_stalled_body(server, *route), SLOW_ROUTES)
        assert httpx.get(f"{server.url}/ok", timeout=1).status_code == 200
        for reply in replies:
            assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
            assert b"not completed within" in reply
    assert time.monotonic() - started < TIMEOUT_S + 5
