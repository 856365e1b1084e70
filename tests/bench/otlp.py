"""OTLP ingest benchmark: OTel-SDK-shaped ExportTraceServiceRequests (protobuf, gzip; 100 spans per request
as 20 traces of a chain and 4 GenAI llm spans with ~1.5 KB of prompt/completion) from concurrent clients
against a real server process. Prints spans/s acknowledged and end to end (acked and flushed to ClickHouse,
counted back), ack latency p50/p99, and two baselines from the same run: decode+map alone in this process
(the OTLP layer's CPU cost) and the native LangSmith multipart path with the same number of runs; and the
server's CPU per span by part (decode workers, server Python, ClickHouse).

    .venv/bin/python -m tests.bench.otlp [--requests 400] [--clients 4] [--no-gzip] [--text random|words]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest.otlp import Encoding, TraceLinks, map_request, parse
from storage import Storage
from tests.bench import ingest as bench_ingest
from tests.bench.ingest import BOUNDARY, _text, cpu_parts, pct, run_load, sdk_body, until_stored
from tests.support import Server

PROJECT = "otlp-bench"


def _kv(key: str, value: str | int) -> KeyValue:
    return KeyValue(
        key=key, value=AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    )


def otlp_body(spans: int = 100) -> bytes:
    """One export request: traces of 1 chain root and 4 llm children, ids random like the OTel SDK's."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.extend(
        [
            _kv("service.name", "bench-app"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.language", "python"),
        ]
    )
    scope = resource.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.openai"
    now = time.time_ns()
    for _trace in range(spans // 5):
        trace_id, root_id = os.urandom(16), os.urandom(8)
        for i in range(5):
            span = scope.spans.add()
            span.trace_id, span.span_id = trace_id, root_id if i == 0 else os.urandom(8)
            span.kind = Span.SpanKind.SPAN_KIND_INTERNAL if i == 0 else Span.SpanKind.SPAN_KIND_CLIENT
            span.start_time_unix_nano = now + i * 1000
            span.end_time_unix_nano = now + 5_000_000
            span.status.code = Status.StatusCode.STATUS_CODE_OK
            if i == 0:
                span.name = "agent"
                span.attributes.extend([_kv("input.value", _text(150)), _kv("output.value", _text(150))])
                continue
            span.parent_span_id = root_id
            span.name = "chat gpt-4o-mini"
            span.attributes.extend(
                [
                    _kv("gen_ai.operation.name", "chat"),
                    _kv("gen_ai.system", "openai"),
                    _kv("gen_ai.request.model", "gpt-4o-mini"),
                    _kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                    _kv("gen_ai.prompt.0.role", "system"),
                    _kv("gen_ai.prompt.0.content", _text(300)),
                    _kv("gen_ai.prompt.1.role", "user"),
                    _kv("gen_ai.prompt.1.content", _text(700)),
                    _kv("gen_ai.completion.0.role", "assistant"),
                    _kv("gen_ai.completion.0.content", _text(400)),
                    _kv("gen_ai.completion.0.finish_reason", "stop"),
                    _kv("gen_ai.usage.input_tokens", random.randint(100, 900)),
                    _kv("gen_ai.usage.output_tokens", random.randint(10, 300)),
                    _kv("session.id", f"thread-{random.randint(1, 50)}"),
                ]
            )
    return request.SerializeToString()


def stored_runs(data_dir: Path) -> int:
    storage = Storage.open(f"chdb://{data_dir / 'clickhouse'}", f"file://{data_dir / 'blobs'}")
    try:
        return storage.clickhouse.client().query("SELECT count() FROM runs FINAL").result_rows[0][0]
    finally:
        storage.close()


def serve_and_load(
    path: str, bodies: list[bytes], headers: dict[str, str], clients: int
) -> tuple[float, list[float], float, float, int, dict[str, float]]:
    """(ack time, latencies, seconds from the last ack until all is stored, seconds to stop, rows stored, CPU
    seconds by part of the server from the start of the load until stored) on a fresh server."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        server = Server(data_dir).start()
        assert server.proc is not None
        before = cpu_parts(server.proc.pid)
        load_time, latencies = run_load(server.url, bodies, clients, path=path, headers=headers)
        stored_after = until_stored(server.url)
        cpu = {part: seconds - before[part] for part, seconds in cpu_parts(server.proc.pid).items()}
        t0 = time.perf_counter()
        assert server.stop() == 0
        return load_time, latencies, stored_after, time.perf_counter() - t0, stored_runs(data_dir), cpu


def per_item(cpu: dict[str, float], items: int) -> str:
    return ", ".join(f"{part} {seconds / items * 1e6:.0f} µs" for part, seconds in cpu.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--no-gzip", action="store_true")
    parser.add_argument("--text", choices=bench_ingest.TEXT_KINDS, default=bench_ingest.TEXT_KINDS[0])
    args = parser.parse_args()
    bench_ingest.text_kind = args.text  # the text of both benchmarks' payloads
    random.seed(7)
    raw = [otlp_body() for _ in range(args.requests)]
    bodies = raw if args.no_gzip else [gzip.compress(b, 6) for b in raw]
    spans = args.requests * 100
    print(
        f"{args.requests} requests x 100 spans, {sum(map(len, raw)) / spans:.0f} B/span protobuf, "
        f"{sum(map(len, bodies)) / args.requests / 1024:.0f} KiB/request {'raw' if args.no_gzip else 'gzip'}, "
        f"{args.clients} clients"
    )

    links = TraceLinks()
    t0 = time.perf_counter()
    for body in raw:
        map_request(parse(body, Encoding.PROTOBUF), tenant_id=uuid.UUID(int=1), links=links, project=PROJECT)
    print(f"baseline, decode+map in one thread (no HTTP, no spool): {spans / (time.perf_counter() - t0):,.0f} spans/s")

    headers = {"Content-Type": "application/x-protobuf", "Langsmith-Project": PROJECT}
    if not args.no_gzip:
        headers["Content-Encoding"] = "gzip"
    load, latencies, after, stop, stored, cpu = serve_and_load("/otel/v1/traces", bodies, headers, args.clients)
    print(
        f"OTLP: {spans / load:,.0f} spans/s acknowledged, ack p50 {pct(latencies, 50):.1f} ms "
        f"p99 {pct(latencies, 99):.1f} ms; end to end (acked and stored, {after:.1f}s after the last ack): "
        f"{spans / (load + after):,.0f} spans/s, incl. stopping the server ({stop:.1f}s): "
        f"{spans / (load + after + stop):,.0f} spans/s; stored {stored:,} of {spans:,}; server CPU per span: "
        + per_item(cpu, spans)
    )

    multipart = [sdk_body()[0] for _ in range(args.requests)]
    mp_headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Encoding": "zstd"}
    load, latencies, after, _stop, stored, cpu = serve_and_load("/runs/multipart", multipart, mp_headers, args.clients)
    print(
        f"baseline, LangSmith multipart (zstd, 100 runs/request): {spans / load:,.0f} runs/s acknowledged, ack p50 "
        f"{pct(latencies, 50):.1f} ms p99 {pct(latencies, 99):.1f} ms; end to end (acked and stored) "
        f"{spans / (load + after):,.0f} runs/s; stored {stored:,} of {spans:,}; server CPU per run: "
        + per_item(cpu, spans)
    )


if __name__ == "__main__":
    main()
