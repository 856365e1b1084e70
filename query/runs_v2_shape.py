"""The v2 Run object (the generated SDK's `types/run.py`) made from the v1 run JSON of `RunReads.to_json`, so
both API versions serialise a run one way: payloads come back from the blob store, attachment URLs are signed.

v2 returns only what a request `selects`, plus `id`, and spells some things its own way: `project_id` for
`session_id`, `manifest` for `serialized`, upper-case `run_type` and `status`, `*_details` as `{"raw": ...}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from query.serialize import RawJson
from schemas import jsonutil
from storage.run_queries import PAYLOAD_COLUMNS

# The fields of a run that both the owner's and the public selects offer.
_RunField = Literal[
    "ID",
    "NAME",
    "RUN_TYPE",
    "STATUS",
    "START_TIME",
    "END_TIME",
    "LATENCY_SECONDS",
    "FIRST_TOKEN_TIME",
    "ERROR",
    "ERROR_PREVIEW",
    "EXTRA",
    "METADATA",
    "INPUTS_PREVIEW",
    "OUTPUTS_PREVIEW",
    "PARENT_RUN_IDS",
    "PROJECT_ID",
    "TRACE_ID",
    "THREAD_ID",
    "DOTTED_ORDER",
    "IS_ROOT",
    "REFERENCE_DATASET_ID",
    "TOTAL_TOKENS",
    "PROMPT_TOKENS",
    "COMPLETION_TOKENS",
    "TOTAL_COST",
    "PROMPT_COST",
    "COMPLETION_COST",
    "PROMPT_TOKEN_DETAILS",
    "COMPLETION_TOKEN_DETAILS",
    "PROMPT_COST_DETAILS",
    "COMPLETION_COST_DETAILS",
    "PRICE_MODEL_ID",
    "TAGS",
    "THREAD_EVALUATION_TIME",
    "FEEDBACK_STATS",
]
# The owner's selects: the common fields, and those a public run withholds (whole payloads, attachments, links,
# dataset and queue membership, the user).
SelectField = Literal[
    _RunField,
    "EVENTS",
    "INPUTS",
    "OUTPUTS",
    "MANIFEST",
    "REFERENCE_EXAMPLE_ID",
    "APP_PATH",
    "ATTACHMENTS",
    "IS_IN_DATASET",
    "LAST_QUEUED_AT",
    "SHARE_URL",
    "LS_USER_ID",
]
SELECT_FIELDS: tuple[SelectField, ...] = get_args(SelectField)
# What a public (shared) run offers (`types/public/run_query_params.py`): the common fields and `PARENT_RUN_ID`,
# which the owner's selects lack.
PublicSelectField = Literal[
    _RunField,
    "PARENT_RUN_ID",
]

PREVIEW_CHARS = 200

# Payload column each select needs read: payloads dominate the bytes a query reads, so only these are.
_PAYLOAD_OF = {
    "INPUTS": "inputs",
    "INPUTS_PREVIEW": "inputs",
    "OUTPUTS": "outputs",
    "OUTPUTS_PREVIEW": "outputs",
    "EXTRA": "extra",
    "METADATA": "extra",
    "EVENTS": "events",
    "MANIFEST": "serialized",
}
# What tracehouse does not keep (datasets, annotation queues, price models, thread evaluations, users): null.
UNTRACKED = frozenset(
    {
        "REFERENCE_DATASET_ID",
        "PRICE_MODEL_ID",
        "THREAD_EVALUATION_TIME",
        "IS_IN_DATASET",
        "LAST_QUEUED_AT",
        "LS_USER_ID",
    }
)
_FEEDBACK_KEYS = ("n", "avg", "stdev", "min", "max", "errors", "values", "comments")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.text if isinstance(value, RawJson) else jsonutil.dumps_str(value)


def preview(value: Any) -> str | None:
    """The payload's JSON text (an error's text) cut to PREVIEW_CHARS: LangSmith's previews are summaries it
    computes at ingest, which tracehouse does not."""
    text = _text(value)
    if text is None or len(text) <= PREVIEW_CHARS:
        return text
    return text[:PREVIEW_CHARS] + "…"


def _latency(run: dict[str, Any]) -> float | None:
    if run["end_time"] is None:
        return None
    return (datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])).total_seconds()


def _metadata(run: dict[str, Any]) -> dict[str, Any]:
    extra = run["extra"]
    parsed = jsonutil.loads(extra.text) if isinstance(extra, RawJson) else extra
    metadata = parsed.get("metadata") if isinstance(parsed, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _details(name: str) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    return lambda run: None if run[name] is None else {"raw": run[name]}


def feedback_stats_v2(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """v1's feedback stats per key (`storage.feedback.stats_entry`) as v2's FeedbackStats. tracehouse keeps
    feedback on runs only, none given to a thread as such: `contains_thread_feedback` is false."""
    return {
        key: {**{k: entry.get(k) for k in _FEEDBACK_KEYS}, "contains_thread_feedback": False}
        for key, entry in stats.items()
    }


def _feedback_stats(run: dict[str, Any]) -> dict[str, Any] | None:
    stats = run["feedback_stats"]
    return None if stats is None else feedback_stats_v2(stats)


# Selects that are not the v1 field of the same (lower-case) name.
_DERIVED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "RUN_TYPE": lambda run: run["run_type"].upper(),
    "STATUS": lambda run: run["status"].upper(),
    "LATENCY_SECONDS": _latency,
    "ERROR_PREVIEW": lambda run: preview(run["error"]),
    "INPUTS_PREVIEW": lambda run: preview(run["inputs"]),
    "OUTPUTS_PREVIEW": lambda run: preview(run["outputs"]),
    "METADATA": _metadata,
    "MANIFEST": lambda run: run["serialized"],
    "PROJECT_ID": lambda run: run["session_id"],
    **{name: _details(name.lower()) for name in SELECT_FIELDS if name.endswith("_DETAILS")},
    "FEEDBACK_STATS": _feedback_stats,
}


@dataclass(frozen=True, slots=True)
class RunShape:
    """The v2 runs of one request. `base_url` roots attachment and share URLs, which v2 returns absolute."""

    selects: tuple[SelectField | PublicSelectField, ...]
    base_url: str = ""

    @property
    def payloads(self) -> tuple[str, ...]:
        needed = {_PAYLOAD_OF[s] for s in self.selects if s in _PAYLOAD_OF}
        return tuple(c for c in PAYLOAD_COLUMNS if c in needed)

    @property
    def feedback(self) -> bool:
        return "FEEDBACK_STATS" in self.selects

    @property
    def shares(self) -> bool:
        return "SHARE_URL" in self.selects

    def run(self, v1: dict[str, Any], share_urls: Mapping[str, str]) -> dict[str, Any]:
        """`share_urls`: the share links of the runs that have one, by run id."""
        out: dict[str, Any] = {"id": v1["id"]}
        for select in self.selects:
            out[select.lower()] = self._value(select, v1, share_urls)
        return out

    def _value(self, select: SelectField | PublicSelectField, v1: dict[str, Any], share_urls: Mapping[str, str]) -> Any:
        if select in UNTRACKED:
            return None
        if select == "ATTACHMENTS":
            return {
                key.removeprefix("attachment."): self.base_url + url["presigned_url"]
                for key, url in v1["s3_urls"].items()
            }
        if select == "SHARE_URL":
            return share_urls.get(v1["id"])
        derive = _DERIVED.get(select)
        return derive(v1) if derive is not None else v1[select.lower()]
