"""OTLP/HTTP trace ingestion: decode the export request, map spans onto runs, encode the response."""

from ingest.otlp.decode import Encoding, encoding_of, parse
from ingest.otlp.links import TraceLinks
from ingest.otlp.mapping import Mapped, Spans, link, map_request, to_runs
from ingest.otlp.response import encode

__all__ = [
    "Encoding",
    "Mapped",
    "Spans",
    "TraceLinks",
    "encode",
    "encoding_of",
    "link",
    "map_request",
    "parse",
    "to_runs",
]
