"""Wire formats -> RunOps: multipart bodies, batch JSON, single runs. Any bad part rejects the whole request
before anything is spooled, so a request is stored entirely or not at all."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ingest import fresh
from ingest.multipart import Part
from ingest.validate import invalid, normalise, parse_uuid, shallow
from schemas import ApiError, jsonutil
from schemas.feedback import validate_feedback
from schemas.runs import PAYLOAD_FIELDS, OpKind, RunOp


@dataclass(slots=True)
class Decoded:
    ops: list[RunOp] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    built: list[fresh.Built] = field(default_factory=list)  # posts presumed new, their rows built (`fresh.build`)

    def runs(self) -> int:
        return len(self.ops) + len(self.built)


def _json(data: bytes, part: str) -> Any:
    return _json_with_text(data, part)[0]


def _json_with_text(data: bytes, part: str) -> tuple[Any, bytes | None]:
    try:
        return jsonutil.loads_with_text(data)
    except ValueError as exc:
        raise ApiError(422, f"{part}: invalid JSON: {exc}", detail={"part": part}) from None


class _Pending:
    """One op's parts as read so far. A plain class, which mypyc compiles with its `__init__`: a dataclass's is
    generated at import and runs interpreted (2.5 µs per op with its default factories)."""

    __slots__ = ("attachments", "kind", "main", "payloads", "run_id", "shallow", "texts")

    def __init__(self, kind: OpKind, run_id: str, main: Any = None) -> None:
        self.kind = kind
        self.run_id = run_id
        self.main = main  # the main part's JSON, whatever it is: checked to be an object once all parts are read
        self.payloads: dict[str, Any] = {}
        self.texts: dict[str, bytes] = {}  # of payloads, when strict JSON
        self.shallow = True  # every JSON part of the op is too small to nest too deep
        self.attachments: dict[str, tuple[str, bytes]] = {}


def from_multipart(parts: list[Part]) -> Decoded:
    """Parts are grouped per (op, run); ops keep the body order of their first part, so a post and a patch of
    one run in one body (the SDK's compressed path) are applied post first."""
    read_in_c = fresh.build_all(parts)
    built, parts = ([], parts) if read_in_c is None else read_in_c
    pending: dict[tuple[str, str], _Pending] = {}
    last_op_of_run: dict[str, tuple[str, str]] = {}
    decoded = Decoded(built=built)
    for part in parts:
        pieces = part.name.split(".")
        head = pieces[0]
        if head in ("post", "patch") and len(pieces) in (2, 3):
            key = (head, pieces[1])
            entry = pending.get(key) or pending.setdefault(key, _Pending(kind=head, run_id=pieces[1]))  # type: ignore[arg-type]
            last_op_of_run[pieces[1]] = key
            if len(pieces) == 2:
                if entry.main is not None:
                    raise ApiError(422, f"{part.name}: duplicate part", detail={"part": part.name})
                entry.main = _json(part.data, part.name)
                entry.shallow = entry.shallow and shallow(part.data)
            elif pieces[2] in PAYLOAD_FIELDS:
                entry.payloads[pieces[2]], text = _json_with_text(part.data, part.name)
                if text is not None:
                    entry.texts[pieces[2]] = text
                entry.shallow = entry.shallow and shallow(part.data)
            else:
                raise _unknown(part.name)
        elif head == "attachment" and len(pieces) == 3:
            run_id = pieces[1]
            parse_uuid(run_id, part.name, "run id")
            key = last_op_of_run.get(run_id) or ("patch", run_id)
            entry = pending.setdefault(key, _Pending(kind=key[0], run_id=run_id, main={}))  # type: ignore[arg-type]
            entry.attachments[pieces[2]] = (part.content_type, part.data)
        elif head == "feedback" and len(pieces) == 2:
            item = _json(part.data, part.name)
            try:
                validate_feedback(item)  # checked now so a bad part rejects the request; stored as sent
            except ApiError as error:
                raise ApiError(
                    422, f"{part.name}: {error.message}", detail={"part": part.name, **error.detail}
                ) from None
            decoded.feedback.append(item)
        else:
            raise _unknown(part.name)
    ops_per_run = Counter(run_id for _, run_id in pending)
    for (kind, run_id), entry in pending.items():
        name = f"{kind}.{run_id}"
        if entry.main is None:
            raise ApiError(422, f"{name}: out-of-band parts without the main part {name}", detail={"part": name})
        if not isinstance(entry.main, dict):
            raise invalid(name, "body", "must be a JSON object")
        presumed = kind == "post" and entry.shallow and not entry.attachments and ops_per_run[run_id] == 1
        if presumed and read_in_c is None:  # a post C read and declined it would decline again
            row = fresh.build(run_id, entry.main, entry.payloads, entry.texts)
            if row is not None:
                decoded.built.append(row)
                continue
        op = normalise(entry.kind, run_id, {**entry.main, **entry.payloads}, name, depth_checked=entry.shallow)
        op.attachments = entry.attachments
        op.texts = entry.texts
        decoded.ops.append(op)
    return decoded


def _unknown(name: str) -> ApiError:
    return ApiError(
        422,
        f"unknown part name {name!r}: expected post.<id>[.<field>], patch.<id>[.<field>], "
        "attachment.<id>.<name> or feedback.<id>",
        detail={"part": name},
    )


def from_batch(body: bytes) -> Decoded:
    """`POST /runs/batch`: {"post": [...], "patch": [...]}; posts are applied before patches."""
    data = _json(body, "body")
    if not isinstance(data, dict):
        raise invalid("body", "body", "must be a JSON object with post and/or patch lists")
    decoded = Decoded()
    for kind in ("post", "patch"):
        runs = data.get(kind) or []
        if not isinstance(runs, list):
            raise invalid("body", kind, "must be a list of runs")
        for index, run in enumerate(runs):
            where = f"{kind}[{index}]"
            if not isinstance(run, dict):
                raise invalid(where, "body", "must be a JSON object")
            decoded.ops.append(from_run(kind, run.get("id"), run, where))  # type: ignore[arg-type]
    return decoded


def from_run(kind: OpKind, run_id: Any, run: dict[str, Any], where: str) -> RunOp:
    """One run with inline payloads (`POST /runs`, `PATCH /runs/{id}`, batch entries); inline attachments are
    `{"name": [mime, base64]}` (protocol §4.4)."""
    op = normalise(kind, run_id, run, where)
    attachments = run.get("attachments")
    if isinstance(attachments, dict):
        for name, value in attachments.items():
            if not (isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[1], str)):
                raise invalid(where, f"attachments.{name}", "must be [mime_type, base64 data]")
            try:
                op.attachments[name] = (str(value[0]), base64.b64decode(value[1], validate=True))
            except binascii.Error:
                raise invalid(where, f"attachments.{name}", "is not valid base64") from None
    return op


def path_run_id(run_id: str) -> uuid.UUID:
    return parse_uuid(run_id, "path", "run_id")
