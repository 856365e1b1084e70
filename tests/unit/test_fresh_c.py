"""`ingest/_fresh.c` against the Python it stands in for: for any post, the row it builds (and what the batcher
decides on beside it) is byte for byte the row `ingest.fresh.split` builds after `ingest.validate.normalise`, and
whatever it cannot decide so (a post the Python rejects or does not presume new) it declines; of a body, it reads
only bodies of posts, and hands the parts of the posts it declines back to `decode.from_multipart`."""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import decode, fresh
from ingest.body import decompress
from ingest.derive import _USAGE, segment
from ingest.multipart import Part, split_parts
from ingest.validate import normalise, openings
from schemas import ApiError, jsonutil
from schemas.runs import PAYLOAD_FIELDS
from storage.runs import unpack_row
from tests.bench import ingest as bench

pytestmark = pytest.mark.skipif(fresh.fresh_row is None, reason="ingest._fresh is not built (no C compiler)")

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def by_python(run_id: str, main: dict[str, Any], payloads: dict[str, Any], texts: dict[str, bytes]) -> Any:
    """What `decode.from_multipart` and `fresh.split` make of the post without the C module: its `Built`, or None
    when the post is rejected or not presumed new."""
    try:
        op = normalise("post", run_id, {**main, **payloads}, "post", depth_checked=True)
    except ApiError:
        return None
    op.texts = texts
    rest, rows = fresh.split([op])
    if rest or rows is None:
        return None
    names = ("rowbinary", "ids", "parents", "dotted", "starts", "ended", "sessions", "text_bytes")
    first = [rows[name][0] for name in names]
    return (*first[:6], *first[6], first[7])


def check(run_id: str, main: dict[str, Any], payloads: dict[str, Any], texts: dict[str, bytes]) -> Any:
    built = fresh.fresh_row(run_id, main, payloads, texts)
    if built is not None:
        expected = by_python(run_id, main, payloads, texts)
        assert expected is not None, "C built a row for a post Python rejects or does not presume new"
        if built[0] != expected[0]:
            assert unpack_row(built[0], fresh.COLUMNS) == unpack_row(expected[0], fresh.COLUMNS)
        assert built == expected
    return built


def sdk_post(run_id: str, parent: dict[str, Any] | None = None, offset: float = 0, **fields: Any) -> dict[str, Any]:
    start = T0 + timedelta(seconds=offset)
    dotted = segment(start, run_id)
    return {
        "id": run_id,
        "name": "step",
        "run_type": "chain",
        "start_time": start.isoformat(timespec="microseconds"),
        "session_name": "fresh",
        "trace_id": parent["trace_id"] if parent else run_id,
        "dotted_order": f"{parent['dotted_order']}.{dotted}" if parent else dotted,
        **({"parent_run_id": parent["id"]} if parent else {}),
        **fields,
    }


def as_parts(post: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, bytes]]:
    """The SDK's split: payload fields in parts of their own, sent as JSON text."""
    main = {k: v for k, v in post.items() if k not in PAYLOAD_FIELDS}
    payloads = {k: v for k, v in post.items() if k in PAYLOAD_FIELDS}
    return main, payloads, {k: orjson.dumps(v) for k, v in payloads.items()}


def test_the_benchmarks_posts_are_all_built_in_c_as_python_builds_them() -> None:
    random.seed(3)
    parts = split_parts(decompress(bench.sdk_body()[0], "zstd", max_bytes=1 << 30), bench.BOUNDARY)
    decoded = decode.from_multipart(parts)
    assert decoded.ops == [] and len(decoded.built) == 100
    runs: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, bytes]]] = {}
    for part in parts:
        _, run_id, *payload = part.name.split(".")
        main, payloads, texts = runs.setdefault(run_id, ({}, {}, {}))
        if payload:
            payloads[payload[0]], texts[payload[0]] = orjson.loads(part.data), part.data
        else:
            main.update(orjson.loads(part.data))
    assert [check(run_id, *post) for run_id, post in runs.items()] == decoded.built


def test_a_finished_trace_with_every_derived_field() -> None:
    root_id, llm_id = str(uuid.uuid4()), str(uuid.uuid4())
    root = sdk_post(
        root_id,
        end_time=(T0 + timedelta(seconds=3)).isoformat(timespec="microseconds"),
        inputs={"question": "why?", "n": 3, "nested": {"deep": [1, {"x": None}], "f": 1.5, "b": True, "e": []}},
        outputs={"answer": "ü" * 300, "long": "a" * 300},
        extra={"metadata": {"thread_id": "t-1", "user": "ann", "n": 2, "d": {"x": [1]}, "none": None}},
        tags=["a", "b"],
        reference_example_id=str(uuid.uuid4()),
        serialized={"name": "agent"},
        session_id=str(uuid.uuid4()),
    )
    llm = sdk_post(
        llm_id,
        root,
        offset=1,
        run_type="llm",
        end_time=(T0 + timedelta(seconds=2)).isoformat(timespec="microseconds"),
        outputs={"generations": [{"text": "hi"}], "usage_metadata": {"input_tokens": 5, "output_tokens": 7}},
        extra={"metadata": {"usage_metadata": {"input_tokens": 10, "output_cost": 0.5, "input_token_details": {}}}},
        events=[{"name": "start"}, {"name": "new_token", "time": (T0 + timedelta(seconds=1.5)).isoformat()}],
        error="",
    )
    failed = sdk_post(str(uuid.uuid4()), llm, offset=1.2, error="boom")
    for post in (root, llm, failed):
        assert check(post["id"], *as_parts(post)) is not None
        assert check(post["id"], post, {}, {}) is not None, "payloads inline in the main part"


@pytest.mark.parametrize(
    "change",
    [
        {"id": str(uuid.uuid4())},
        {"start_time": "2026-11-30T10:00:00+00:00"},
        {"start_time": "2026-11-30 10:00:00.000000+00:00"},
        {"start_time": "2300-01-01T00:00:00.000000+00:00"},
        {"end_time": "2026-02-30T10:00:00.000000+00:00"},
        {"run_type": "agent"},
        {"name": 3},
        {"tags": ["a", 1]},
        {"inputs": [1]},
        {"events": {"a": 1}},
        {"trace_id": str(uuid.uuid4()).upper()},
        {"parent_run_id": str(uuid.uuid4())},
        {"dotted_order": "x"},
        {"error": {"message": "boom"}},
        {"inputs": {"a.b": 1}},
        {"events": [{"name": "new_token", "time": "2026-11-30T10:00:00Z"}]},
        {"start_time": None},
    ],
)
def test_what_it_cannot_decide_exactly_it_declines(change: dict[str, Any]) -> None:
    run_id = str(uuid.uuid4())
    post = {**sdk_post(run_id), **change}
    assert check(run_id, *as_parts(post)) is None


def test_an_id_not_in_canonical_text_is_declined() -> None:
    run_id = str(uuid.uuid4())
    post = sdk_post(run_id)
    assert check(run_id.upper(), *as_parts(post)) is None
    assert check(run_id.replace("-", ""), *as_parts(post)) is None


# Random posts: each field either as the SDK sends it or as something else the Python path must judge.
USAGE_KEYS = sorted(_USAGE)
_uuid = st.builds(lambda: str(uuid.uuid4()))
_text = st.text(max_size=12)
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), _text, st.just("x" * 300)
)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(_text, st.sampled_from(["a.b", ""])), inner, max_size=4)
    ),
    max_leaves=12,
)
_time = st.one_of(
    st.datetimes(min_value=datetime(1850, 1, 1), max_value=datetime(2300, 12, 31), timezones=st.just(UTC)).map(
        lambda t: t.isoformat(timespec="microseconds")
    ),
    st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat()),
    st.sampled_from(["2026-11-30T10:00:00.000000+00:00", "2255-06-05T23:47:34.740991+00:00", "x"]),
)


_usage_value = st.one_of(
    st.integers(0, 2**64), st.floats(0, 1e20), _scalar, st.dictionaries(_text, _scalar, max_size=2)
)
_usage = st.dictionaries(st.sampled_from(USAGE_KEYS), _usage_value)
_metadata = st.dictionaries(
    st.sampled_from(["thread_id", "session_id", "conversation_id", "user", "usage_metadata"]),
    st.one_of(_scalar, _usage, _json),
)
_sdk_time = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2250, 1, 1), timezones=st.just(UTC)).map(
    lambda t: t.isoformat(timespec="microseconds")
)
_many = st.dictionaries(_text, _scalar, min_size=90, max_size=130)  # past flatten's 100 entries


# Each field: as the SDK sends it, and something else the Python path must judge (half the posts have only the
# former, so that most get as far as the row).
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "end_time": (_sdk_time, _time),
    "run_type": (st.sampled_from(["llm", "chain"]), st.sampled_from(["tool", "agent"])),
    "inputs": (st.one_of(st.dictionaries(_text, _json), _many), _json),
    "outputs": (st.fixed_dictionaries({"usage_metadata": _usage}, optional={"x": _json}), _json),
    "extra": (st.fixed_dictionaries({"metadata": _metadata}), st.fixed_dictionaries({"metadata": _json})),
    "events": (st.lists(st.one_of(st.fixed_dictionaries({"name": st.just("new_token"), "time": _time}), _json)), _json),
    "error": (_text, _json),
    "tags": (st.lists(_text, max_size=3), _json),
    "serialized": (st.dictionaries(_text, _json), _json),
    "session_id": (_uuid, _text),
    "session_name": (_text, _scalar),
    "reference_example_id": (_uuid, st.none()),
    "name": (_text, _scalar),
}


@st.composite
def posts(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, bytes]]:
    run_id = draw(_uuid)
    parent = draw(st.one_of(st.none(), st.fixed_dictionaries({"id": _uuid, "trace_id": _uuid})))
    if parent is not None:
        parent["dotted_order"] = "20261130T100000000000Z" + parent["id"]
    post = sdk_post(run_id, parent)
    clean = draw(st.booleans())
    post["start_time"] = draw(_sdk_time if clean else st.one_of(_sdk_time, _time))
    for name, (valid, other) in FIELDS.items():
        if draw(st.booleans()):
            post[name] = draw(valid if clean else st.one_of(valid, other))
    if draw(st.booleans()):
        post["id"] = draw(st.one_of(st.just(run_id), st.none(), _uuid))
    inline = draw(st.booleans())
    main = post if inline else {k: v for k, v in post.items() if k not in PAYLOAD_FIELDS}
    payloads = {} if inline else {k: v for k, v in post.items() if k in PAYLOAD_FIELDS}
    texts: dict[str, bytes] = {}
    for name, value in payloads.items():
        with contextlib.suppress(TypeError):  # an integer beyond 64 bits: parsed by the standard library, no text
            texts[name] = orjson.dumps(value)
    return run_id, main, payloads, texts


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(posts())
def test_random_posts_are_built_as_python_builds_them_or_declined(
    post: tuple[str, dict[str, Any], dict[str, Any], dict[str, bytes]],
) -> None:
    check(*post)


@given(st.one_of(st.binary(max_size=600), st.lists(st.sampled_from([b"{", b"[", b"}", b"a", b"\xff"])).map(b"".join)))
def test_openings_counts_as_bytes_count(data: bytes) -> None:
    assert openings(data) == data.count(b"{") + data.count(b"[")


def as_body(post: tuple[str, dict[str, Any], dict[str, Any], dict[str, bytes]]) -> list[Part]:
    """A post's parts as the SDK sends them: the main part, then each payload's."""
    run_id, main, payloads, texts = post
    parts = [Part(f"post.{run_id}", "application/json", _dumped(main))]
    parts.extend(
        Part(f"post.{run_id}.{k}", "application/json", texts.get(k) or _dumped(v)) for k, v in payloads.items()
    )
    return parts


def _dumped(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value).encode()


ODDITIES: dict[str, Any] = {
    "a patch": lambda run_id: [Part(f"patch.{run_id}", "application/json", b"{}")],
    "an attachment": lambda run_id: [Part(f"attachment.{run_id}.file", "text/plain", b"x")],
    "feedback": lambda run_id: [Part(f"feedback.{uuid.uuid4()}", "application/json", b"{}")],
    "a second main part": lambda run_id: [Part(f"post.{run_id}", "application/json", b"{}")],
    "JSON orjson does not read": lambda run_id: [
        Part(f"post.{run_id}.inputs", "application/json", b'{"a": "\\ud800"}')
    ],
    "a payload without its main part": lambda run_id: [Part(f"post.{uuid.uuid4()}.inputs", "application/json", b"{}")],
    "an id not in canonical text": lambda run_id: [Part(f"post.{run_id.upper()}", "application/json", b"{}")],
    "an unknown payload": lambda run_id: [Part(f"post.{run_id}.other", "application/json", b"{}")],
}


@pytest.mark.parametrize("oddity", ODDITIES)
def test_a_body_with_anything_but_posts_is_left_to_python(oddity: str) -> None:
    run_id = str(uuid.uuid4())
    parts = as_body((run_id, *as_parts(sdk_post(run_id)))) + ODDITIES[oddity](run_id)
    assert fresh.sdk_posts(parts) is None


def test_the_posts_it_declines_are_decoded_by_python_beside_those_it_builds() -> None:
    built_id, declined_id = str(uuid.uuid4()), str(uuid.uuid4())
    parts = as_body((built_id, *as_parts(sdk_post(built_id)))) + as_body(
        (declined_id, *as_parts(sdk_post(declined_id, inputs={"a.b": 1})))
    )
    decoded = decode.from_multipart(parts)
    assert [row[1] for row in decoded.built] == [built_id]
    assert [op.run_id for op in decoded.ops] == [declined_id]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(posts(), min_size=1, max_size=3))
def test_bodies_of_posts_are_built_as_each_post_is_or_left_to_python(
    posts: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, bytes]]],
) -> None:
    parts = [part for post in posts for part in as_body(post)]
    found = fresh.sdk_posts(parts)
    if found is None:
        assert not all(_orjson_reads(part.data) for part in parts), "a body of posts only is left to Python"
        return
    built, rest = found
    built_ids = {row[1] for row in built}
    for row in built:  # as `decode.from_multipart` reads the parts
        main, payloads, texts = jsonutil.loads(_part(parts, f"post.{row[1]}")), {}, {}
        for part in parts:
            if part.name.startswith(f"post.{row[1]}."):
                name = part.name.rsplit(".", 1)[1]
                payloads[name], text = jsonutil.loads_with_text(part.data)
                if text is not None:
                    texts[name] = text
        assert row == by_python(row[1], main, payloads, texts)
    expected = [part for post in posts if post[0] not in built_ids for part in as_body(post)]
    assert [(p.name, p.data) for p in rest] == [(p.name, p.data) for p in expected]


def _orjson_reads(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:  # integers beyond 64 bits, lone surrogates, Infinity (the standard library's)
        return False
    return True


def _part(parts: list[Part], name: str) -> bytes:
    return next(part.data for part in parts if part.name == name)
