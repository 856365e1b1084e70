"""The spool record of one accepted request: its tenant, run ops and feedback, as msgpack.

msgpack rather than JSON: attachments are raw bytes. `surrogatepass` keeps lone surrogates (which valid
JSON input may contain) intact through the spool.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgpack

from schemas.runs import RunOp


def encode(tenant_id: uuid.UUID, ops: list[RunOp], feedback: list[dict[str, Any]]) -> bytes:
    return msgpack.packb(
        [
            str(tenant_id),
            [[op.kind, op.run_id, op.fields, {k: [m, d] for k, (m, d) in op.attachments.items()}] for op in ops],
            feedback,
        ],
        unicode_errors="surrogatepass",
        default=str,
    )


def decode(record: bytes) -> tuple[uuid.UUID, list[RunOp], list[dict[str, Any]]]:
    tenant, ops, feedback = msgpack.unpackb(record, unicode_errors="surrogatepass", strict_map_key=False)
    return (
        uuid.UUID(tenant),
        [RunOp(kind, run_id, fields, {k: (m, d) for k, (m, d) in att.items()}) for kind, run_id, fields, att in ops],
        feedback,
    )
