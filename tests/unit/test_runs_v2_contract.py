"""The v2 runs API answers every option and field of the installed SDK's generated types: each query option is
handled or refused, each select field is served, run types are the ones ingest stores."""

from __future__ import annotations

from typing import get_args, get_type_hints

from langsmith.types import run_query_v2_params, run_retrieve_v2_params, run_select_field, run_type
from langsmith.types.public import run_query_params

from query.runs_v2_query import UNSUPPORTED, RunQueryV2, RunType
from query.runs_v2_shape import PREVIEW_CHARS, SELECT_FIELDS, PublicSelectField, RunShape
from schemas.runs import RUN_TYPES


def test_every_query_option_is_handled_or_refused() -> None:
    options = set(run_query_v2_params.RunQueryV2Params.__annotations__) - {"accept"}  # a header
    assert set(RunQueryV2.model_fields) | set(UNSUPPORTED) == options
    assert not set(RunQueryV2.model_fields) & set(UNSUPPORTED)


def test_select_fields_and_run_types_are_the_sdks() -> None:
    """In any order: SELECT_FIELDS is built from the fields it has in common with the public selects."""
    assert sorted(get_args(run_select_field.RunSelectField)) == sorted(SELECT_FIELDS)
    retrieve = get_type_hints(run_retrieve_v2_params.RunRetrieveV2Params, include_extras=True)["selects"]
    assert sorted(get_args(get_args(retrieve)[0])) == sorted(SELECT_FIELDS)
    assert get_args(RunType) == get_args(run_type.RunType)
    assert {t.lower() for t in get_args(RunType)} == RUN_TYPES


def test_public_select_fields_are_the_sdks() -> None:
    public = get_type_hints(run_query_params.RunQueryParams)["selects"]
    assert sorted(get_args(get_args(public)[0])) == sorted(get_args(PublicSelectField))


def test_every_select_is_served_from_the_v1_run() -> None:
    v1 = {
        "id": "r",
        "name": "n",
        "run_type": "llm",
        "status": "success",
        "start_time": "2026-01-01T00:00:00.000000+00:00",
        "end_time": "2026-01-01T00:00:01.500000+00:00",
        "first_token_time": None,
        "error": None,
        "extra": {"metadata": {"k": "v"}},
        "events": [],
        "inputs": {"q": "x" * 300},
        "outputs": None,
        "serialized": {"m": 1},
        "parent_run_ids": [],
        "session_id": "p",
        "trace_id": "r",
        "thread_id": None,
        "dotted_order": "d",
        "is_root": True,
        "reference_example_id": None,
        "total_tokens": 3,
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_cost": None,
        "prompt_cost": None,
        "completion_cost": None,
        "prompt_token_details": {"cache_read": 1},
        "completion_token_details": None,
        "prompt_cost_details": None,
        "completion_cost_details": None,
        "tags": [],
        "app_path": "/o/t/projects/p/p/r/r",
        "s3_urls": {"attachment.a": {"presigned_url": "/attachments/t/r/a?sig=s"}},
        "feedback_stats": {"k": {"n": 1, "avg": 1.0, "comment_count": 0}},
    }
    run = RunShape(SELECT_FIELDS, "http://h").run(v1, {"r": "http://h/public/s/run"})
    assert set(run) == {s.lower() for s in SELECT_FIELDS}
    assert (run["run_type"], run["status"], run["project_id"], run["manifest"]) == ("LLM", "SUCCESS", "p", {"m": 1})
    assert run["latency_seconds"] == 1.5 and run["metadata"] == {"k": "v"}
    assert run["prompt_token_details"] == {"raw": {"cache_read": 1}} and run["completion_token_details"] is None
    assert run["inputs_preview"] == ('{"q":"' + "x" * 300)[:PREVIEW_CHARS] + "…" and run["outputs_preview"] is None
    assert run["attachments"] == {"a": "http://h/attachments/t/r/a?sig=s"}
    assert run["share_url"] == "http://h/public/s/run"
    assert run["feedback_stats"]["k"]["contains_thread_feedback"] is False
    assert "comment_count" not in run["feedback_stats"]["k"]


def test_only_the_payloads_selected_are_read() -> None:
    assert RunShape(()).payloads == ()
    assert RunShape(("METADATA", "INPUTS_PREVIEW", "EXTRA", "MANIFEST")).payloads == ("inputs", "extra", "serialized")
