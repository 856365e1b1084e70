"""The spool record of one accepted request: its tenant, run ops and feedback, as msgpack.

msgpack rather than JSON: attachments are raw bytes. `surrogatepass` keeps lone surrogates (which valid
JSON input may contain) intact through the spool. Posts presumed new come as the rows built from them
(`fresh`, see `ingest.fresh`) instead of as ops.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from schemas.runs import RunOp

NO_FRESH = msgpack.packb(None)  # a record without presumed-new rows


@dataclass(slots=True)
class Record:
    tenant_id: uuid.UUID
    ops: list[RunOp]
    feedback: list[dict[str, Any]]
    fresh: dict[str, Any] | None  # presumed-new rows (`ingest.fresh.split`)


def encode(
    tenant_id: uuid.UUID,
    ops: list[RunOp],
    feedback: list[dict[str, Any]],
    *,
    packed: Sequence[bytes] = (),
    fresh: bytes = NO_FRESH,
) -> bytes:
    """The record; `packed` are ops already encoded by `pack_op` (in a decode worker), stored before `ops`, and
    `fresh` the presumed-new rows as `pack_fresh` encoded them."""
    packer = msgpack.Packer(unicode_errors="surrogatepass", default=str)
    return b"".join(
        [
            packer.pack_array_header(4),
            packer.pack(str(tenant_id)),
            packer.pack_array_header(len(packed) + len(ops)),
            *packed,
            *(packer.pack(_op(op)) for op in ops),
            packer.pack(feedback),
            fresh,
        ]
    )


def pack_op(op: RunOp) -> bytes:
    return msgpack.packb(_op(op), unicode_errors="surrogatepass", default=str)


def pack_fresh(rows: dict[str, Any] | None) -> bytes:
    """Presumed-new rows (`ingest.fresh.split`) for `encode`, packed where they are built: a decode worker hands
    bytes back to the server process instead of pickling them there and packing them again."""
    return msgpack.packb(rows, unicode_errors="surrogatepass", default=str)


def _op(op: RunOp) -> list[Any]:
    return [op.kind, op.run_id, op.fields, {k: [m, d] for k, (m, d) in op.attachments.items()}]


def decode(record: bytes) -> Record:
    """Records spooled before presumed-new rows existed have three elements: the same without `fresh`."""
    tenant, ops, feedback, *fresh = msgpack.unpackb(record, unicode_errors="surrogatepass", strict_map_key=False)
    return Record(
        uuid.UUID(tenant),
        [RunOp(kind, run_id, fields, {k: (m, d) for k, (m, d) in att.items()}) for kind, run_id, fields, att in ops],
        feedback,
        fresh[0] if fresh else None,
    )
