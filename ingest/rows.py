"""A merged run state -> its row in `runs` (RUN_COLUMNS order), and a stored row back to a state.

Pure, so that the decode workers can build the rows of runs presumed new (`ingest.fresh`) exactly as the
batcher builds every other row. Payload texts are bytes, times DateTime64(6) ticks and UUIDs their text: what
the insert packs as is (`storage.runs.pack_rows`), and ClickHouse reads into the columns' types.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ingest import derive, merge
from ingest.validate import format_time
from schemas import jsonutil
from schemas.runs import EARLIEST_TIME, LATEST_TIME
from schemas.times import assume_utc
from storage.blobs import BlobStore
from storage.runs import ticks

OFFLOADED = ("inputs", "outputs", "events", "extra")  # payloads that move to the blob store when large
JSON_DEFAULTS = {"inputs": b"{}", "extra": b"{}", "events": b"[]"}
# Payload texts that stand for "absent", as read back from ClickHouse (str) and as built here (bytes).
EMPTY_TEXTS = frozenset([*JSON_DEFAULTS.values(), *(text.decode() for text in JSON_DEFAULTS.values())])

Upload = tuple[str, bytes, str, bool]  # blob key, data, content type, compress
_NO_TEXTS: Mapping[str, bytes] = MappingProxyType({})


def run_row(
    tenant: str,
    state: dict[str, Any],
    start: datetime,
    ancestors: list[str],
    prefix: str,
    uploads: list[Upload],
    version: int,
    ttl_days: int,
    offload_bytes: int | None,
    received: Mapping[str, bytes] = _NO_TEXTS,
) -> list[Any]:
    """Payloads above `offload_bytes` (none when it is None) are added to `uploads` under `prefix` and named
    in the state's refs instead of being stored in the row. `received` are the JSON texts of the state's
    payloads as received (`RunOp.texts`, for a state that is one op), stored instead of dumping the values again."""
    refs: dict[str, str] = state[merge.REFS]
    texts: dict[str, bytes] = {}
    for name in OFFLOADED:
        value = state.get(name)
        if name in refs:
            texts[name] = b""
            continue
        if value is None:
            texts[name] = JSON_DEFAULTS.get(name, b"")
            continue
        text = received.get(name) or jsonutil.dumps(value)
        if offload_bytes is not None and len(text) > offload_bytes:
            key = f"{prefix}/{name}"
            uploads.append((key, text, "application/json", True))
            refs[name] = key
            texts[name] = b""
        else:
            texts[name] = text
    outputs = state.get("outputs")
    end = state.get("end_time")
    tokens = derive.usage(state)
    serialized = state.get("serialized")
    return [
        tenant,
        state["_session"],
        state["id"],
        state["trace_id"],
        state.get("parent_run_id"),
        ancestors,
        state["dotted_order"],
        state.get("parent_run_id") is None,
        state.get("name", ""),
        state.get("run_type", "chain"),
        derive.status(state),
        ticks(start),
        ticks(datetime.fromisoformat(end)) if end else None,
        _ticks_or_none(derive.first_token_time(state)),
        state.get("error"),
        texts["inputs"],
        None if outputs is None and "outputs" not in refs else texts["outputs"],
        texts["extra"],
        texts["events"],
        None if serialized is None else received.get("serialized") or jsonutil.dumps(serialized),
        dict(refs),
        {k: jsonutil.dumps_str(v) for k, v in state[merge.ATTACHMENTS].items()},
        state.get("tags") or [],
        derive.metadata_map(state),
        derive.flatten(state.get("inputs")),
        derive.flatten(outputs),
        derive.thread_id(state),
        state.get("reference_example_id"),
        tokens.get("prompt_tokens", 0),
        tokens.get("completion_tokens", 0),
        tokens.get("total_tokens", 0),
        tokens.get("prompt_cost"),
        tokens.get("completion_cost"),
        tokens.get("total_cost"),
        tokens.get("prompt_token_details", ""),
        tokens.get("completion_token_details", ""),
        tokens.get("prompt_cost_details", ""),
        tokens.get("completion_cost_details", ""),
        ttl_days,
        version,
        0,
    ]


def _ticks_or_none(value: str | None) -> int | None:
    """An event's time, which validation does not check (events are payload): None unless ClickHouse can store it.
    It stores ticks beyond DateTime64's range as they are, and the driver then failed on every read of the row."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    aware = assume_utc(parsed)
    return ticks(aware) if EARLIEST_TIME <= aware <= LATEST_TIME else None


def state_from_row(row: dict[str, Any], blobs: BlobStore) -> dict[str, Any]:
    """A stored run back as a merge state, payloads parsed (from the blob store when offloaded)."""
    refs = dict(row["payload_refs"])
    state: dict[str, Any] = {
        merge.HAS_POST: True,
        merge.REFS: refs,
        merge.ATTACHMENTS: {k: jsonutil.loads(v) for k, v in row["attachments"].items()},
        "_session": str(row["session_id"]),
        "id": str(row["id"]),
        "name": row["name"],
        "run_type": row["run_type"],
        "trace_id": str(row["trace_id"]),
        "dotted_order": row["dotted_order"],
        "start_time": format_time(assume_utc(row["start_time"])),
        "tags": list(row["tags"]),
    }
    state["_stored_key"] = [state["_session"], state["start_time"]]
    state["_ttl"] = row["ttl_days"]  # kept: the trace may have been upgraded to long-lived
    if row["parent_run_id"] is not None:
        state["parent_run_id"] = str(row["parent_run_id"])
    if row["end_time"] is not None:
        state["end_time"] = format_time(assume_utc(row["end_time"]))
    if row["error"] is not None:
        state["error"] = row["error"]
    if row["reference_example_id"] is not None:
        state["reference_example_id"] = str(row["reference_example_id"])
    for name in ("inputs", "outputs", "extra", "events", "serialized"):
        if name in refs:
            state[name] = jsonutil.loads(blobs.get(refs[name]))
        elif row[name] and row[name] not in EMPTY_TEXTS:  # empty defaults stand for "absent": a post may fill
            state[name] = jsonutil.loads(row[name])
    return state
