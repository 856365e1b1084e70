"""Which run a parent span id stands for, across requests.

A child names its parent only by span id. When the parent is in the same request the answer is at hand; when
it came earlier, this registry remembers its run id (only that: the batcher derives the child's dotted order
from the stored parent, and dotted orders would double the memory). When it has not come yet — the normal
case for exporters that send spans as they end, children first — the child is posted without a parent and
registered as waiting; the parent's arrival then yields a patch that fills in `parent_run_id` (the merge lets
a patch fill an identity field a post left out). That is also how a child finds out that its parent is the
trace's root, whose run id is the trace UUID and cannot be computed from the span id.

The registry is process-local and bounded (least recently used traces are forgotten first). Spans of one trace
should therefore reach the same ingest process, as collectors do when they route by trace id; a parent that
arrives after its trace was forgotten, or after a restart, leaves its early children as extra roots of the
trace (still in the trace, with `extra.otel.parent_span_id` recording the link).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

TraceKey = tuple[uuid.UUID, bytes]  # (tenant id, OTel trace id)
# A waiting child: its run id and start time (normalised text). The patch that links it carries the start time,
# by which the batcher finds the stored child in the seconds it started in, instead of by id among all runs.
Child = tuple[str, str]


@dataclass(slots=True)
class _Trace:
    spans: dict[bytes, str] = field(default_factory=dict)  # span id -> run id (canonical UUID text)
    waiting: dict[bytes, list[Child]] = field(default_factory=dict)  # parent span id -> children


class TraceLinks:
    def __init__(self, *, max_spans: int = 200_000) -> None:
        self.max_spans = max_spans
        self.lock = threading.Lock()  # held by the caller around one request's lookups and records
        self._traces: OrderedDict[TraceKey, _Trace] = OrderedDict()
        self._size = 0

    def _trace(self, key: TraceKey) -> _Trace:
        trace = self._traces.get(key)
        if trace is None:
            trace = self._traces[key] = _Trace()
        else:
            self._traces.move_to_end(key)
        return trace

    def known(self, key: TraceKey, span_id: bytes) -> str | None:
        trace = self._traces.get(key)
        return trace.spans.get(span_id) if trace is not None else None

    def wait(self, key: TraceKey, parent_span_id: bytes, child: Child) -> None:
        self._trace(key).waiting.setdefault(parent_span_id, []).append(child)
        self._size += 1
        self._evict()

    def record(self, key: TraceKey, span_id: bytes, run_id: str) -> list[Child]:
        """Remembers a span; returns the children that were waiting for it."""
        trace = self._trace(key)
        if span_id not in trace.spans:
            self._size += 1
        trace.spans[span_id] = run_id
        waiting = trace.waiting.pop(span_id, [])
        self._size -= len(waiting)
        self._evict()
        return waiting

    def restore(self, released: list[tuple[TraceKey, bytes, Child]]) -> None:
        """Puts children back to waiting when the patches that linked them could not be submitted (429/503):
        the client retries the request and the parent's second arrival must release them again."""
        with self.lock:
            for key, parent_span_id, child in released:
                self.wait(key, parent_span_id, child)

    def _evict(self) -> None:
        while self._size > self.max_spans and len(self._traces) > 1:
            _, trace = self._traces.popitem(last=False)
            self._size -= len(trace.spans) + sum(len(w) for w in trace.waiting.values())

    def __len__(self) -> int:
        return self._size
