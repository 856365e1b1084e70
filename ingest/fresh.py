"""Posts presumed new: their rows are built where the request is decoded.

Most runs reach the batcher as the one post of a run nothing is known of yet (the SDK's multipart path sends
finished runs as one post, a trace's runs together). Such a row depends on the post alone, so the decode worker
builds it (`split`) instead of spooling the op. The batcher checks the presumption for its whole batch
(`Flusher.stage`: nothing stored, staged or cached for the run, no other op of it in the batch, a parent that is
either not in the batch or presumed new too with a dotted order this one extends) and stores the row as built;
otherwise it rebuilds the post from the row (`FreshBlock.op`) and merges it like any other op. The batcher's
thread, which every run passes through holding the GIL, then stages such a run in ~18 µs (its storage lookup
included) instead of ~50 (decode, merge, derive, row), measured on tests/bench/ingest.py's requests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest import derive, merge
from ingest.rows import EMPTY_TEXTS, TEXT_COLUMNS, run_row, state_from_row
from ingest.validate import format_time
from schemas import jsonutil
from schemas.runs import RunOp
from storage.blobs import BlobStore
from storage.runs import RUN_COLUMNS, from_ticks

SERVER_COLUMNS = ("tenant_id", "session_id", "ttl_days", "version", "is_deleted")  # the batcher fills these
COLUMNS = tuple(c for c in RUN_COLUMNS if c not in SERVER_COLUMNS)
_AT = {c: i for i, c in enumerate(COLUMNS)}
_KEPT = tuple(i for i, c in enumerate(RUN_COLUMNS) if c not in SERVER_COLUMNS)
_TENANT, _SESSION, _TTL, _VERSION, _DELETED = (RUN_COLUMNS.index(c) for c in SERVER_COLUMNS)
PAYLOADS = ("inputs", "outputs", "extra", "events", "serialized")  # the JSON fields a row stores as text
_NULLABLE = frozenset({"outputs", "serialized"})


def split(ops: list[RunOp]) -> tuple[list[RunOp], dict[str, Any] | None]:
    """(the ops to spool, the presumed-new rows). The rows: `columns`, their COLUMNS; `sessions`, each one's
    [session_id, session_name] as sent; `text_bytes`, each one's largest payload text (the batcher offloads
    larger ones itself, so it merges those)."""
    per_run = Counter(op.run_id for op in ops)
    rest: list[RunOp] = []
    rows: list[list[Any]] = []
    sessions: list[list[Any]] = []
    for op in ops:
        fields = op.fields
        dotted, parent = fields.get("dotted_order"), fields.get("parent_run_id")
        if (
            op.kind != "post"
            or per_run[op.run_id] > 1
            or op.attachments
            or not (dotted and fields.get("trace_id"))
            or (parent and not derive.is_under(dotted, parent))  # its ancestry needs its parent's state
        ):
            rest.append(op)
            continue
        state = merge.apply(None, op)
        state["_session"] = ""
        start = datetime.fromisoformat(state["start_time"])
        _, _, ancestors = derive.ancestry(state, None, start)
        rows.append(run_row("", state, start, ancestors, "", [], 0, 0, None, op.texts))
        sessions.append([fields.get("session_id"), fields.get("session_name")])
    if not rows:
        return rest, None
    return rest, {
        "columns": [[row[i] for row in rows] for i in _KEPT],
        "sessions": sessions,
        "text_bytes": [max(len(row[i] or b"") for i in TEXT_COLUMNS) for row in rows],
    }


def size(rows: dict[str, Any] | None) -> int:
    """How many runs `split`'s rows hold."""
    return len(rows["sessions"]) if rows else 0


@dataclass(slots=True)
class FreshRun:
    """A run stored from a presumed-new row, kept as staged or cached state in the batcher: its state is built
    from the row only when something reads it (a patch, a child that needs its parent), as it would be read
    back from storage."""

    columns: list[list[Any]]  # its block's COLUMNS (not copied while staged: most runs are never read)
    row: int
    session: str
    ttl_days: int

    @property
    def ended(self) -> bool:
        return self.columns[_AT["end_time"]][self.row] is not None

    def detached(self) -> FreshRun:
        """The run with its own row only, to be cached: a cached run must not keep its whole block in memory
        (a long-running parent among finished children would hold 100 rows per cached run)."""
        return FreshRun([[column[self.row]] for column in self.columns], 0, self.session, self.ttl_days)

    def state(self, blobs: BlobStore) -> dict[str, Any]:
        row = _values(self.columns, self.row)
        row.update(session_id=self.session, ttl_days=self.ttl_days, start_time=from_ticks(row["start_time"]))
        if row["end_time"] is not None:
            row["end_time"] = from_ticks(row["end_time"])
        return state_from_row(row, blobs)


@dataclass(slots=True)
class FreshBlock:
    """One record's presumed-new rows as the batcher reads them, and what it decides for each."""

    seq: int  # the record's place in its batch
    columns: list[list[Any]]  # COLUMNS
    sessions: list[list[Any]]
    text_bytes: list[int]
    keep: list[bool]  # stored as built (else its post is merged)
    placed: list[tuple[str, int]]  # (project id, retention days) of each kept row

    @classmethod
    def of(cls, seq: int, found: dict[str, Any]) -> FreshBlock:
        rows = len(found["sessions"])
        return cls(seq, found["columns"], found["sessions"], found["text_bytes"], [True] * rows, [("", 0)] * rows)

    @property
    def ids(self) -> list[str]:
        return self.columns[_AT["id"]]

    def parent(self, row: int) -> str | None:
        return self.columns[_AT["parent_run_id"]][row]

    def dotted(self, row: int) -> str:
        return self.columns[_AT["dotted_order"]][row]

    def start(self, row: int) -> datetime:
        return from_ticks(self.columns[_AT["start_time"]][row])

    def run(self, row: int) -> FreshRun:
        return FreshRun(self.columns, row, *self.placed[row])

    def op(self, row: int) -> RunOp:
        """The post this row was built from, for merging it after all: every field a post may carry is in the
        row, a payload left at its empty default standing for an absent one (which merges the same)."""
        values = _values(self.columns, row)
        fields: dict[str, Any] = {
            "id": values["id"],
            "name": values["name"],
            "run_type": values["run_type"],
            "start_time": format_time(from_ticks(values["start_time"])),
            "trace_id": values["trace_id"],
            "dotted_order": values["dotted_order"],
        }
        if values["end_time"] is not None:
            fields["end_time"] = format_time(from_ticks(values["end_time"]))
        for name in ("parent_run_id", "error", "reference_example_id"):
            if values[name] is not None:
                fields[name] = values[name]
        if values["tags"]:
            fields["tags"] = values["tags"]
        for name in PAYLOADS:  # outputs and serialized are NULL when absent, the others their empty default
            text = values[name]
            if text is not None and (name in _NULLABLE or text not in EMPTY_TEXTS):
                fields[name] = jsonutil.loads(text)
        session_id, session_name = self.sessions[row]
        fields.update({k: v for k, v in (("session_id", session_id), ("session_name", session_name)) if v})
        return RunOp("post", values["id"], fields)


def _values(columns: list[list[Any]], row: int) -> dict[str, Any]:
    return {name: column[row] for name, column in zip(COLUMNS, columns, strict=True)}


def orphaned(block: FreshBlock, row: int, chosen: dict[str, tuple[FreshBlock, int]], out: set[str]) -> bool:
    """Whether a presumed-new row's parent is merged in the batch (`out`), which may give it another dotted
    order, or is presumed new too with a dotted order this row's does not extend."""
    parent = block.parent(row)
    if parent is None or parent not in chosen:
        return parent is not None and parent in out
    parent_block, parent_row = chosen[parent]
    return not block.dotted(row).startswith(parent_block.dotted(parent_row) + ".")


def columns(blocks: list[FreshBlock], tenant: str, version: int) -> list[list[Any]]:
    """The kept rows of `blocks` as RUN_COLUMNS lists, the batcher's columns filled in."""
    out: list[list[Any]] = [[] for _ in RUN_COLUMNS]
    for block in blocks:
        kept = [row for row, keep in enumerate(block.keep) if keep]
        if not kept:
            continue
        whole = len(kept) == len(block.keep)
        for index, values in zip(_KEPT, block.columns, strict=True):
            out[index].extend(values if whole else [values[row] for row in kept])
        out[_TENANT].extend([tenant] * len(kept))
        out[_SESSION].extend(block.placed[row][0] for row in kept)
        out[_TTL].extend(block.placed[row][1] for row in kept)
        out[_VERSION].extend([version] * len(kept))
        out[_DELETED].extend([0] * len(kept))
    return out
