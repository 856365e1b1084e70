"""Runs as every wire format hands them to the pipeline: one `RunOp` per post or patch of one run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

# The form `str(uuid.UUID(...))` gives, and the only form run ids travel in past validation.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# DateTime64's range. ClickHouse stores and compares run times only within it (a query parameter outside it does
# not even parse), so ingest refuses other run times and queries refuse other bounds.
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2299, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
RUN_TYPES = frozenset({"tool", "chain", "llm", "retriever", "embedding", "prompt", "parser"})

# Fields sent out of band (multipart `<op>.<id>.<name>` parts) or inline (batch JSON, POST /runs).
PAYLOAD_FIELDS = ("inputs", "outputs", "events", "extra", "error", "serialized")

OpKind = Literal["post", "patch"]


@dataclass(slots=True, init=False)
class RunOp:
    """A normalised post or patch.

    `fields` holds the run's JSON fields as LangSmith names them (`name`, `run_type`, `start_time` as ISO text,
    `trace_id`, `dotted_order`, `parent_run_id`, `session_id`/`session_name`, `tags`, `inputs`, `outputs`,
    `extra`, `events`, `error`, `serialized`, …), parsed and validated; `None` values are absent ("unchanged"
    in a patch). `attachments` maps an attachment name to (mime type, bytes). `run_id` is the canonical UUID
    text: the batcher keys its maps by it, and hashing text is several times cheaper than hashing `uuid.UUID`.
    `texts` holds the JSON text of payload fields that arrived as strict JSON parts of their own, which a row
    built from this op alone stores as is; it does not travel in spool records.
    """

    kind: OpKind
    run_id: str
    fields: dict[str, Any]
    attachments: dict[str, tuple[str, bytes]]
    texts: dict[str, bytes]

    def __init__(
        self,
        kind: OpKind,
        run_id: str,
        fields: dict[str, Any],
        attachments: dict[str, tuple[str, bytes]] | None = None,
        texts: dict[str, bytes] | None = None,
    ) -> None:
        """Written out, not generated: mypyc compiles it, where the dataclass's runs interpreted (one per op)."""
        self.kind = kind
        self.run_id = run_id
        self.fields = fields
        self.attachments = {} if attachments is None else attachments
        self.texts = {} if texts is None else texts

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled through `__init__` (OTLP workers send ops back): a compiled class cannot be made without it."""
        return RunOp, (self.kind, self.run_id, self.fields, self.attachments, self.texts)
