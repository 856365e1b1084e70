"""OTLP/HTTP trace ingestion: decode the export request, map spans onto runs, encode the response."""

from ingest.otlp.decode import Encoding, encoding_of, parse
from ingest.otlp.links import TraceLinks
from ingest.otlp.mapping import Mapped, map_request
from ingest.otlp.response import encode

__all__ = ["Encoding", "Mapped", "TraceLinks", "encode", "encoding_of", "map_request", "parse"]
