"""The v2 threads, traces and share routes answer every option and field of the installed SDK's generated types:
each body member is handled or refused, each thread-trace select is served or refused, and the answers use the
SDK's field names. And the start-time window their cursors carry: bounds, defaults, exclusive ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args, get_type_hints

import pytest
from langsmith.types import (
    thread,
    thread_list_traces_params,
    thread_query_params,
    thread_trace,
    trace_aggregates,
    trace_query_params,
)
from langsmith.types.runs import share_create_params, share_delete_params

from query.runs_v2_api import ShareCreate, ShareDelete
from query.runs_v2_shape import SELECT_FIELDS
from query.threads_v2_api import RUN_SELECT_OF, UNSUPPORTED_SELECTS, ThreadQueryV2, ThreadTraceSelect
from query.threads_v2_api import UNSUPPORTED as THREADS_UNSUPPORTED
from query.traces_v2_api import AGGREGATES, TraceQueryV2
from query.traces_v2_api import UNSUPPORTED as TRACES_UNSUPPORTED
from query.v2_requests import DEFAULT_WINDOW, Window, decode_cursor, encode_cursor, resolve_window
from schemas import ApiError

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("model", "refused", "params"),
    [
        (TraceQueryV2, TRACES_UNSUPPORTED, trace_query_params.TraceQueryParams),
        (ThreadQueryV2, THREADS_UNSUPPORTED, thread_query_params.ThreadQueryParams),
        (ShareCreate, {}, share_create_params.ShareCreateParams),
        (ShareDelete, {}, share_delete_params.ShareDeleteParams),
    ],
)
def test_every_body_member_is_handled_or_refused(model: type, refused: dict[str, str], params: type) -> None:
    members = set(params.__annotations__) - {"accept"}  # a header
    assert set(model.model_fields) | set(refused) == members
    assert not set(model.model_fields) & set(refused)


def test_every_thread_trace_select_is_served_or_refused() -> None:
    sdk = get_type_hints(thread_list_traces_params.ThreadListTracesParams, include_extras=True)["selects"]
    assert get_args(ThreadTraceSelect) == get_args(get_args(sdk)[0])
    assert set(RUN_SELECT_OF) | set(UNSUPPORTED_SELECTS) == set(get_args(ThreadTraceSelect))
    assert set(RUN_SELECT_OF.values()) <= set(SELECT_FIELDS)
    assert {s.lower() for s in RUN_SELECT_OF} | {"trace_id"} <= set(thread_trace.ThreadTrace.model_fields)


def test_answers_use_the_sdks_field_names() -> None:
    assert {s.lower() for s in AGGREGATES} == set(trace_aggregates.TraceAggregates.model_fields)
    assert set(AGGREGATES) <= set(SELECT_FIELDS)
    assert "count" in thread.Thread.model_fields and "last_trace_id" in thread.Thread.model_fields


def test_the_window_defaults_to_the_last_day_and_a_cursor_keeps_it() -> None:
    window = resolve_window(None, None, None, NOW)
    assert window == Window(NOW - DEFAULT_WINDOW, NOW)
    after, pinned = decode_cursor(encode_cursor("position", window))
    assert (after, pinned) == ("position", window)
    later = NOW + timedelta(hours=1)
    assert resolve_window(None, None, pinned, later) == window  # the defaults do not slide between pages
    assert resolve_window(None, later, pinned, later) == Window(window.start, later)  # a bound given wins


def test_an_exclusive_max_start_time_ends_the_window_a_tick_before() -> None:
    window = resolve_window(NOW - timedelta(hours=1), NOW, None, NOW, max_exclusive=True)
    assert window.end == NOW - timedelta(microseconds=1)
    assert resolve_window(None, None, None, NOW, max_exclusive=True).end == NOW  # "now" is not a given bound
    with pytest.raises(ApiError, match="is not before max_start_time") as refused:
        resolve_window(NOW, NOW, None, NOW, max_exclusive=True)
    assert refused.value.status == 422
    assert resolve_window(NOW, NOW, None, NOW) == Window(NOW, NOW)  # inclusive: one instant


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "eyJhZnRlciI6IDF9",  # {"after": 1}
        encode_cursor("x", Window(datetime(1800, 1, 1, tzinfo=UTC), NOW)),  # before what ClickHouse stores
    ],
)
def test_a_cursor_not_made_here_is_a_400(cursor: str) -> None:
    with pytest.raises(ApiError) as refused:
        decode_cursor(cursor)
    assert refused.value.status == 400 and refused.value.detail == {"field": "cursor"}
