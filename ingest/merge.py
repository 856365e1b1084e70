"""The post/patch merge rules: the one place that decides what a run looks like after any sequence of ops.

The stored run must not depend on arrival order (DESIGN: patch before post, post+patch in one body,
duplicates). The rules that give that:

* A post fills what is missing; a patch overwrites (its `None`s were already dropped: "unchanged").
  post P then patch Q gives P◁Q; Q then P gives Q plus what P adds, which is the same.
* Identity fields (project, start, ancestry) come from the post whenever one exists, and a patch only fills
  them in: a patch never moves a run to another project (protocol §5.2), and the row's sort key is fixed.
* `extra` merges per key, `extra.metadata` per key again, with the same fill/overwrite rule.
* Attachments accumulate.

Two different patches of one run touching the same field are the one order-dependent case: the later
arrival wins, as it does in LangSmith.
"""

from __future__ import annotations

from typing import Any

from schemas.runs import RunOp

IDENTITY_FIELDS = frozenset({"session_id", "session_name", "start_time", "trace_id", "parent_run_id", "dotted_order"})
PAYLOADS = ("inputs", "outputs", "events", "extra", "serialized", "error")

# Bookkeeping keys kept beside the run's fields in a state (never sent to clients).
HAS_POST = "_has_post"
ATTACHMENTS = "_attachments"  # name -> {"key", "mime_type", "size"}, filled once uploaded
NEW_ATTACHMENTS = "_new_attachments"  # name -> (mime, bytes), waiting for upload
REFS = "_refs"  # payload name -> blob key of the stored copy, while the payload is unchanged


def apply(state: dict[str, Any] | None, op: RunOp) -> dict[str, Any]:
    """A new state: `state` (or nothing) with `op` applied. The input state is not modified."""
    if not state and op.kind == "post":  # a run's first op: its fields as they are, what the loop below gives
        first: dict[str, Any] = {REFS: {}, **op.fields, HAS_POST: True}
        first[ATTACHMENTS] = dict(op.fields.get(ATTACHMENTS) or {})
        if op.attachments:
            first[NEW_ATTACHMENTS] = dict(op.attachments)
        return first
    new: dict[str, Any] = dict(state) if state else {HAS_POST: False, REFS: {}, ATTACHMENTS: {}}
    new[REFS] = dict(new.get(REFS) or {})
    is_post = op.kind == "post"
    first_post = is_post and not new[HAS_POST]
    for key, value in op.fields.items():
        if key in IDENTITY_FIELDS:
            if first_post or key not in new:
                new[key] = value
        elif key == "extra":
            new["extra"] = _merge_extra(new.get("extra"), value, overwrite=not is_post)
            new[REFS].pop("extra", None)
        elif key == ATTACHMENTS:  # uploaded attachments of a pending state being absorbed (see `absorb`)
            new[ATTACHMENTS] = {**(new.get(ATTACHMENTS) or {}), **value}
        elif not is_post or key not in new:
            new[key] = value
            new[REFS].pop(key, None)
    if op.attachments:
        new[NEW_ATTACHMENTS] = {**(new.get(NEW_ATTACHMENTS) or {}), **op.attachments}
    new[HAS_POST] = new[HAS_POST] or is_post
    return new


def absorb(pending: dict[str, Any], run_id: Any) -> RunOp:
    """A pending (patch-only) state as one patch op, for merging it into a run stored meanwhile."""
    fields = {k: v for k, v in pending.items() if not k.startswith("_")}
    if pending.get(ATTACHMENTS):
        fields[ATTACHMENTS] = pending[ATTACHMENTS]
    return RunOp("patch", run_id, fields)


def _merge_extra(current: Any, incoming: dict[str, Any], *, overwrite: bool) -> dict[str, Any]:
    if not isinstance(current, dict):
        return incoming
    merged = dict(current)
    for key, value in incoming.items():
        if key == "metadata" and isinstance(value, dict) and isinstance(merged.get("metadata"), dict):
            base = merged["metadata"]
            merged["metadata"] = {**base, **value} if overwrite else {**value, **base}
        elif overwrite or key not in merged:
            merged[key] = value
    return merged
