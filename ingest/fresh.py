"""Posts presumed new: their rows are built where the request is decoded.

Most runs reach the batcher as the one post of a run nothing is known of yet (the SDK's multipart path sends
finished runs as one post, a trace's runs together). Such a row depends on the post alone, so the decode worker
builds it (`split`) instead of spooling the op. The batcher checks the presumption for its whole batch
(`Flusher.stage`: nothing stored, staged or cached for the run, no other op of it in the batch, a parent that is
either not in the batch or presumed new too with a dotted order this one extends) and stores the row as built;
otherwise it rebuilds the post from the row (`FreshBlock.op`) and merges it like any other op. The batcher's
thread, which every run passes through holding the GIL, then stages such a run in ~18 µs (its storage lookup
included) instead of ~50 (decode, merge, derive, row), measured on tests/bench/ingest.py's requests.

A post in the form the SDK sends is read, validated and built in one step in C (`build_all`, `build`:
`ingest/_fresh.c`), which declines to this Python anything it cannot decide exactly as the Python does;
tests/unit/test_fresh_c.py holds both to the same rows.

The rows travel packed for the insert (`storage.runs.pack_rows`), with what the batcher decides on beside them
(ids, parents, dotted orders, start times). The server process joins them into its insert as bytes, and unpacks
one only when something reads the run's state or the presumption failed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest import derive, merge
from ingest.multipart import Part
from ingest.rows import EMPTY_TEXTS, OFFLOADED, run_row, state_from_row
from ingest.validate import format_time
from schemas import jsonutil
from schemas.runs import RunOp
from storage.blobs import BlobStore
from storage.runs import RUN_COLUMNS, from_ticks, pack_rows, unpack_msgpack_row, unpack_row

try:  # SDK posts' rows built in C from their parsed parts; built where a C compiler is available (setup.py)
    from ingest._fresh import COLUMNS as _C_COLUMNS
    from ingest._fresh import MAX_NESTING as _C_MAX_NESTING
    from ingest._fresh import fresh_row, sdk_posts
except ImportError:
    _C_COLUMNS, _C_MAX_NESTING, fresh_row, sdk_posts = None, None, None, None

# The batcher fills the first two and the last three: a packed row is joined between them (`insert_rows`).
LEADING, TRAILING = ("tenant_id", "session_id"), ("ttl_days", "version", "is_deleted")
if RUN_COLUMNS[: len(LEADING)] != LEADING or RUN_COLUMNS[-len(TRAILING) :] != TRAILING:
    raise RuntimeError(f"storage.runs.RUN_COLUMNS must start with {LEADING} and end with {TRAILING}")
COLUMNS = RUN_COLUMNS[len(LEADING) : -len(TRAILING)]
if _C_COLUMNS is not None and (_C_COLUMNS != COLUMNS or _C_MAX_NESTING != jsonutil.MAX_NESTING):
    raise RuntimeError("ingest/_fresh.c differs from ingest.fresh.COLUMNS or jsonutil.MAX_NESTING: mend it")
# A row built where the request is decoded, with what the batcher decides on beside it: the packed row, id, parent,
# dotted order, start time (ticks), whether it ended, session id and name as sent, and its largest payload text
# (the batcher offloads larger ones itself, so it merges those).
Built = tuple[bytes, str, str | None, str, int, bool, str | None, str | None, int]
_AT = {c: i for i, c in enumerate(COLUMNS)}
PAYLOADS = ("inputs", "outputs", "extra", "events", "serialized")  # the JSON fields a row stores as text
_NULLABLE = frozenset({"outputs", "serialized"})


def split(ops: list[RunOp], built: list[Built] | None = None) -> tuple[list[RunOp], dict[str, Any] | None]:
    """(the ops to spool, the presumed-new rows: those of `ops` and those `built` already). The rows: `rowbinary`,
    each one's COLUMNS packed (`pack_rows`); beside them what the batcher decides on (`Built`): `ids`, `parents`,
    `dotted`, `starts`, `ended`, `sessions` ([session_id, session_name] each) and `text_bytes`."""
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
        rows.append(run_row("", state, start, ancestors, "", [], 0, 0, None, op.texts)[len(LEADING) : -len(TRAILING)])
        sessions.append([fields.get("session_id"), fields.get("session_name")])
    made: list[Built] = [
        (
            packed,
            row[_AT["id"]],
            row[_AT["parent_run_id"]],
            row[_AT["dotted_order"]],
            row[_AT["start_time"]],
            row[_AT["end_time"]] is not None,
            session[0],
            session[1],
            max(len(row[_AT[name]] or b"") for name in OFFLOADED),
        )
        for packed, row, session in zip(pack_rows(rows, COLUMNS), rows, sessions, strict=True)
    ]
    if built:
        made.extend(built)
    if not made:
        return rest, None
    return rest, {
        "rowbinary": [row[0] for row in made],
        "ids": [row[1] for row in made],
        "parents": [row[2] for row in made],
        "dotted": [row[3] for row in made],
        "starts": [row[4] for row in made],
        "ended": [row[5] for row in made],
        "sessions": [[row[6], row[7]] for row in made],
        "text_bytes": [row[8] for row in made],
    }


def build_all(parts: list[Part]) -> tuple[list[Built], list[Part]] | None:
    """The posts of a body of posts only (the SDK's for finished runs) built in C from its parts, parsed there too,
    and the parts of the others, which `decode.from_multipart` reads as it reads any body; None for any other body,
    or without the C module. What `build` builds, with the checks its caller makes made here: the posts it declined
    `build` would decline too."""
    return None if sdk_posts is None else sdk_posts(parts)


def build(run_id: str, main: dict[str, Any], payloads: dict[str, Any], texts: dict[str, bytes]) -> Built | None:
    """The row of a post presumed new from its parsed parts, built in C (`ingest/_fresh.c`) when it is in the form
    the SDK sends; None otherwise (or without the C module), and the post takes the Python path (`split`). The
    caller has checked what the parts alone cannot show: the post is the run's only op in the request, has no
    attachments, and no part nests too deep (`validate.shallow`)."""
    return None if fresh_row is None else fresh_row(run_id, main, payloads, texts)


def size(rows: dict[str, Any] | None) -> int:
    """How many runs `split`'s rows hold."""
    return len(rows["sessions"]) if rows else 0


class FreshRun:
    """A run stored from a presumed-new row, kept as staged or cached state in the batcher: its state is built
    from the row only when something reads it (a patch, a child that needs its parent), as it would be read
    back from storage. A plain class, whose `__init__` mypyc compiles (a dataclass's runs interpreted): the
    batcher makes one per run it stores as built."""

    __slots__ = ("ended", "row", "session", "ttl_days")

    def __init__(self, row: bytes, ended: bool, session: str, ttl_days: int) -> None:
        self.row = row  # its COLUMNS, packed
        self.ended = ended
        self.session = session
        self.ttl_days = ttl_days

    def state(self, blobs: BlobStore) -> dict[str, Any]:
        row = row_values(self.row)
        row.update(session_id=self.session, ttl_days=self.ttl_days, start_time=from_ticks(row["start_time"]))
        if row["end_time"] is not None:
            row["end_time"] = from_ticks(row["end_time"])
        return state_from_row(row, blobs)


@dataclass(slots=True)
class FreshBlock:
    """One record's presumed-new rows as the batcher reads them (`split`), and what it decides for each."""

    seq: int  # the record's place in its batch
    rows: list[bytes]
    ids: list[str]
    parents: list[str | None]
    dotted_orders: list[str]
    starts: list[int]
    ended: list[bool]
    sessions: list[list[Any]]
    text_bytes: list[int]
    keep: list[bool]  # stored as built (else its post is merged)
    placed: list[tuple[str, int]]  # (project id, retention days) of each kept row

    @classmethod
    def of(cls, seq: int, found: dict[str, Any]) -> FreshBlock:
        if "rowbinary" not in found:
            found = _from_earlier(found)
        count = len(found["rowbinary"])
        return cls(
            seq,
            found["rowbinary"],
            found["ids"],
            found["parents"],
            found["dotted"],
            found["starts"],
            found["ended"],
            found["sessions"],
            found["text_bytes"],
            [True] * count,
            [("", 0)] * count,
        )

    def parent(self, row: int) -> str | None:
        return self.parents[row]

    def dotted(self, row: int) -> str:
        return self.dotted_orders[row]

    def start(self, row: int) -> datetime:
        return from_ticks(self.starts[row])

    def run(self, row: int) -> FreshRun:
        return FreshRun(self.rows[row], self.ended[row], *self.placed[row])

    def op(self, row: int) -> RunOp:
        """The post this row was built from, for merging it after all: every field a post may carry is in the
        row, a payload left at its empty default standing for an absent one (which merges the same)."""
        values = row_values(self.rows[row])
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


def _from_earlier(found: dict[str, Any]) -> dict[str, Any]:
    """Rows spooled before they were RowBinary, in `split`'s form: as MsgPack (`rows`), and before that as
    COLUMNS lists (`columns`)."""
    if "rows" in found:
        rows = [unpack_msgpack_row(row, len(COLUMNS)) for row in found["rows"]]
        return {**found, "rowbinary": pack_rows(rows, COLUMNS)}
    columns = found["columns"]
    return {
        **found,
        "rowbinary": pack_rows(zip(*columns, strict=True), COLUMNS),
        "ids": columns[_AT["id"]],
        "parents": columns[_AT["parent_run_id"]],
        "dotted": columns[_AT["dotted_order"]],
        "starts": columns[_AT["start_time"]],
        "ended": [end is not None for end in columns[_AT["end_time"]]],
    }


def row_values(row: bytes) -> dict[str, Any]:
    """A packed row's COLUMNS by name."""
    return dict(zip(COLUMNS, unpack_row(row, COLUMNS), strict=True))


def orphaned(block: FreshBlock, row: int, chosen: dict[str, tuple[FreshBlock, int]], out: set[str]) -> bool:
    """Whether a presumed-new row's parent is merged in the batch (`out`), which may give it another dotted
    order, or is presumed new too with a dotted order this row's does not extend."""
    parent = block.parent(row)
    if parent is None or parent not in chosen:
        return parent is not None and parent in out
    parent_block, parent_row = chosen[parent]
    return not block.dotted(row).startswith(parent_block.dotted(parent_row) + ".")


def insert_rows(blocks: list[FreshBlock], tenant: str, version: int) -> list[bytes]:
    """The kept rows of `blocks`, packed for `RunStore.insert` with the batcher's columns around them. Those are
    the same for the rows of a project, so each is packed once."""
    out: list[bytes] = []
    leading: dict[str, bytes] = {}
    trailing: dict[int, bytes] = {}
    for block in blocks:
        for row, keep in enumerate(block.keep):
            if not keep:
                continue
            session, ttl = block.placed[row]
            if session not in leading:
                leading[session] = pack_rows([[tenant, session]], LEADING)[0]
            if ttl not in trailing:
                trailing[ttl] = pack_rows([[ttl, version, 0]], TRAILING)[0]
            out.append(b"".join((leading[session], block.rows[row], trailing[ttl])))
    return out
