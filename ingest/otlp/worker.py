"""The part of OTLP ingest that runs in a decode worker process (`ingest.workers.DecodePool`): decompress,
parse and map spans to runs. Decoding and mapping a 100-span request is ~10 ms of Python that would otherwise
hold the server process's GIL, which the batcher needs. Linking the tree stays in the server process, where
the cross-request memory (`links.TraceLinks`) lives."""

from __future__ import annotations

from ingest.body import decompress
from ingest.otlp.decode import Encoding, parse
from ingest.otlp.mapping import Spans, to_runs


def decode_spans(body: bytes, content_encoding: str, encoding: Encoding, project: str | None, max_bytes: int) -> Spans:
    body = decompress(body, content_encoding, max_bytes=max_bytes)
    return to_runs(parse(body, encoding), project=project, pack=True)
