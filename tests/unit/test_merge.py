"""The merge rules: any arrival order of a run's ops gives the same stored run."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.merge import HAS_POST, apply
from schemas.runs import RunOp

RUN = "01a20a95-dbac-7068-9c02-8feadd41bb25"
POST = RunOp(
    "post",
    RUN,
    {
        "id": RUN,
        "name": "agent",
        "run_type": "chain",
        "start_time": "2026-11-23T22:45:22.988214+00:00",
        "session_name": "p1",
        "trace_id": RUN,
        "inputs": {"q": "hello"},
        "tags": ["a"],
        "extra": {"metadata": {"a": 1, "b": 1}, "runtime": {"sdk": "x"}},
    },
)
PATCH = RunOp(
    "patch",
    RUN,
    {
        "id": RUN,
        "end_time": "2026-11-23T22:45:23.000000+00:00",
        "outputs": {"text": "hi"},
        "session_name": "other",
        "extra": {"metadata": {"b": 2, "c": 3}},
        "tags": ["a", "b"],
    },
)


def fold(ops: list[RunOp]) -> dict[str, Any]:
    state = None
    for op in ops:
        state = apply(state, op)
    assert state is not None
    return state


def test_post_then_patch() -> None:
    state = fold([POST, PATCH])
    assert state[HAS_POST]
    assert state["outputs"] == {"text": "hi"} and state["inputs"] == {"q": "hello"}
    assert state["session_name"] == "p1", "a patch never moves a run to another project"
    assert state["extra"]["metadata"] == {"a": 1, "b": 2, "c": 3}
    assert state["extra"]["runtime"] == {"sdk": "x"}
    assert state["tags"] == ["a", "b"]


def test_every_order_of_post_patch_and_duplicates_agrees() -> None:
    expected = fold([POST, PATCH])
    for ops in itertools.permutations([POST, PATCH, POST, PATCH]):
        assert fold(list(ops)) == expected


def test_patch_alone_is_not_a_post() -> None:
    assert fold([PATCH])[HAS_POST] is False


def test_apply_does_not_modify_its_input() -> None:
    state = apply(None, POST)
    snapshot = {k: (dict(v) if isinstance(v, dict) else v) for k, v in state.items()}
    apply(state, PATCH)
    assert state == snapshot


_values = st.one_of(st.none(), st.integers(), st.text(max_size=5))
_payload = st.dictionaries(st.sampled_from(["x", "y", "z"]), _values, max_size=3)
_extra = st.fixed_dictionaries({"metadata": _payload}, optional={"runtime": _payload})


@st.composite
def run_ops(draw: st.DrawFn) -> list[RunOp]:
    post_fields = {
        "id": RUN,
        "name": draw(st.sampled_from(["a", "b"])),
        "run_type": "chain",
        "start_time": "2026-01-01T00:00:00.000000+00:00",
        "inputs": draw(_payload),
        "extra": draw(_extra),
        "session_name": "p",
    }
    patch_fields = {
        "id": RUN,
        "end_time": "2026-01-01T00:00:01.000000+00:00",
        "outputs": draw(_payload),
        "extra": draw(_extra),
        "error": draw(st.none() | st.just("boom")),
    }
    patch_fields = {k: v for k, v in patch_fields.items() if v is not None}
    return [RunOp("post", RUN, post_fields), RunOp("patch", RUN, patch_fields)]


@settings(max_examples=200, deadline=None)
@given(run_ops(), st.permutations(range(4)))
def test_order_independence_property(ops: list[RunOp], order: list[int]) -> None:
    """Any interleaving of a post, its patch and a duplicate of each gives the state of post-then-patch."""
    post, patch = ops
    sequence = [post, patch, post, patch]
    assert fold([sequence[i] for i in order]) == fold([post, patch])
