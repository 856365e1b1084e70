"""The filter language and run query arguments against a Python oracle over a generated dataset.

~2,000 runs over three projects, ~150 traces and five days are ingested through `POST /runs/batch`; feedback rows
are written into the `feedback` table while the server is stopped (no feedback endpoint exists yet). Every query is
paged through to the end and compared with the oracle's answer: same set of runs, no duplicates, newest first.
"""

from __future__ import annotations

import base64
import json
import operator
import random
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query.filter import And, Compare, Not, Or, Search, parse, search_tokens
from schemas import DEFAULT_TENANT_ID, jsonutil
from schemas.projects import project_id_for_name
from storage import Storage
from tests.support import Server, wait_for

pytestmark = pytest.mark.timeout(900)

PROJECTS = ["oracle-a", "oracle-b", "oracle-c"]
NAMES = ["agent", "retrieve docs", "o'neil", 'say "hi"', "llm_call", "tool-x", "Ünïcode name", "parse"]
RUN_TYPES = ["tool", "chain", "llm", "retriever", "embedding", "prompt", "parser"]
TAGS = ["alpha", "beta", "gamma", "two words"]
WORDS = ["apple", "banana", "cherry", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
REFS = [uuid.UUID(int=0xABC0 + i) for i in range(3)]
FEEDBACK_KEYS = ["correctness", "helpfulness"]


@dataclass
class Run:
    id: uuid.UUID
    session_id: uuid.UUID
    trace_id: uuid.UUID
    parent_run_id: uuid.UUID | None
    parent_run_ids: list[uuid.UUID]
    dotted_order: str
    name: str
    run_type: str
    start_time: datetime
    end_time: datetime | None
    error: str | None
    tags: list[str]
    metadata: dict[str, Any]
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    reference_example_id: uuid.UUID | None
    usage: dict[str, Any] = field(default_factory=dict)
    feedback: list[tuple[str, float | None, str | None]] = field(default_factory=list)

    def wire(self, project: str) -> dict[str, Any]:
        metadata = dict(self.metadata)
        if self.usage:
            metadata["usage_metadata"] = self.usage
        return {
            "id": str(self.id),
            "trace_id": str(self.trace_id),
            "parent_run_id": str(self.parent_run_id) if self.parent_run_id else None,
            "dotted_order": self.dotted_order,
            "session_name": project,
            "name": self.name,
            "run_type": self.run_type,
            "start_time": self.start_time.isoformat(),
            "end_time": self.end_time.isoformat() if self.end_time else None,
            "error": self.error,
            "tags": self.tags,
            "extra": {"metadata": metadata},
            "inputs": self.inputs,
            "outputs": self.outputs,
            "reference_example_id": str(self.reference_example_id) if self.reference_example_id else None,
        }

    # -- the stored/derived view the oracle evaluates -------------------------------------------------------

    def value(self, name: str) -> Any:
        usage = self.usage
        derived = {
            "status": "error" if self.error else ("success" if self.end_time else "pending"),
            "latency": (self.end_time - self.start_time).total_seconds() if self.end_time else None,
            "is_root": self.parent_run_id is None,
            "execution_order": len(self.parent_run_ids) + 1,
            "thread_id": str(self.metadata.get("thread_id") or ""),
            "first_token_time": None,
            "prompt_tokens": usage.get("input_tokens", 0),
            "completion_tokens": usage.get("output_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
            "prompt_cost": usage.get("input_cost"),
            "completion_cost": usage.get("output_cost"),
            "total_cost": usage.get("total_cost"),
        }
        return derived[name] if name in derived else getattr(self, name)

    def pairs(self, family: str) -> list[tuple[str, Any]]:
        if family == "metadata":
            md = dict(self.metadata)
            if self.usage:
                md["usage_metadata"] = self.usage
            return [(k, _text(v)) for k, v in md.items() if v is not None]
        if family == "inputs_kv":
            return list(_flatten(self.inputs).items())
        if family == "outputs_kv":
            return list(_flatten(self.outputs).items())
        return [(k, (s, v)) for k, s, v in self.feedback]

    def tokens(self) -> set[str]:
        texts = [self.name, self.error or "", *(v for _, v in self.pairs("metadata"))]
        texts += [v for _, v in self.pairs("inputs_kv")] + [v for _, v in self.pairs("outputs_kv")]
        return set(search_tokens(" ".join(texts)))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else jsonutil.dumps_str(value)


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(value, dict | list):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            path = f"{prefix}{key}"
            if isinstance(item, dict | list):
                out.update(_flatten(item, path + "."))
            elif item is not None:
                out[path] = _text(item)
    return out


def _dotted(t: datetime, run_id: uuid.UUID) -> str:
    return t.strftime("%Y%m%dT%H%M%S%fZ") + str(run_id)


def generate(seed: int = 4) -> list[Run]:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    runs: list[Run] = []
    for project in PROJECTS:
        session = project_id_for_name(DEFAULT_TENANT_ID, project)
        for _ in range(50):
            start = now - timedelta(seconds=rng.randrange(5 * 86400), microseconds=rng.randrange(1_000_000))
            thread = f"th-{rng.randrange(8)}" if rng.random() < 0.4 else None
            trace: list[Run] = []
            for _ in range(rng.randint(1, 25)):
                run_id = uuid.uuid4()
                parent = trace[rng.randrange(len(trace))] if trace else None
                # Some siblings start in the same microsecond as their parent: ties broken by id.
                st_ = (
                    parent.start_time + timedelta(microseconds=rng.choice([0, rng.randrange(1, 3_000_000)]))
                    if parent
                    else start
                )
                words = " ".join(rng.sample(WORDS, 3))
                pending = rng.random() < 0.05
                run_type = rng.choice(RUN_TYPES)
                metadata: dict[str, Any] = {
                    "env": rng.choice(["prod", "dev"]),
                    "user": f"u{rng.randrange(20)}",
                    "score": rng.randrange(10),
                    "ratio": rng.choice([0.5, 1.5]),
                    "flag": rng.random() < 0.5,
                }
                if thread:
                    metadata["thread_id"] = thread
                usage = {}
                if run_type == "llm" and rng.random() < 0.8:
                    a, b = rng.randrange(200), rng.randrange(100)
                    usage = {
                        "input_tokens": a,
                        "output_tokens": b,
                        "total_tokens": a + b,
                        "input_cost": a / 10000,
                        "output_cost": b / 5000,
                        "total_cost": round(a / 10000 + b / 5000, 6),
                    }
                run = Run(
                    id=run_id,
                    session_id=session,
                    trace_id=trace[0].id if trace else run_id,
                    parent_run_id=parent.id if parent else None,
                    parent_run_ids=[*parent.parent_run_ids, parent.id] if parent else [],
                    dotted_order=(parent.dotted_order + "." if parent else "") + _dotted(st_, run_id),
                    name=rng.choice(NAMES),
                    run_type=run_type,
                    start_time=st_,
                    end_time=None if pending else st_ + timedelta(microseconds=rng.randrange(5_000_000)),
                    error=f"boom {rng.choice(WORDS)}" if rng.random() < 0.1 else None,
                    tags=rng.sample(TAGS, rng.randint(0, 2)),
                    metadata=metadata,
                    inputs={"question": words, "ctx": {"docs": [rng.choice(WORDS), {"page": rng.randrange(8)}]}},
                    outputs=None if pending else {"answer": rng.choice(WORDS)},
                    reference_example_id=rng.choice(REFS) if rng.random() < 0.1 else None,
                    usage=usage,
                )
                if rng.random() < 0.3:
                    for key in rng.sample(FEEDBACK_KEYS, rng.randint(1, 2)):
                        run.feedback.append((key, rng.choice([0.0, 0.5, 1.0, None]), rng.choice(["good", "bad", None])))
                trace.append(run)
            runs.extend(trace)
    return runs


# -- the oracle -------------------------------------------------------------------------------------------------

_PAIRS = {
    "metadata_key": ("metadata", "key"),
    "metadata_value": ("metadata", "value"),
    "input_key": ("inputs_kv", "key"),
    "input_value": ("inputs_kv", "value"),
    "output_key": ("outputs_kv", "key"),
    "output_value": ("outputs_kv", "value"),
    "feedback_key": ("feedback", "key"),
    "feedback_score": ("feedback", "score"),
    "feedback_value": ("feedback", "value"),
}
_OPS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _like(pattern: str, text: str) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _literal(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in ("id", "trace_id", "session_id", "parent_run_id", "reference_example_id"):
        return uuid.UUID(value)
    if name in ("start_time", "end_time", "first_token_time"):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if name == "latency" and isinstance(value, str):
        m = re.fullmatch(r"([\d.]+)(ms|s|m)?", value)
        assert m
        return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]
    if name in (
        "latency",
        "total_tokens",
        "prompt_tokens",
        "completion_tokens",
        "total_cost",
        "prompt_cost",
        "completion_cost",
        "execution_order",
    ):
        return float(value)
    if name == "is_root":
        return bool(value)
    return value if isinstance(value, str) else _text(value)


def matches(node: Any, run: Run) -> bool:
    if isinstance(node, And):
        groups: dict[str, list[Compare]] = {}
        ok = True
        for item in node.items:
            if isinstance(item, Compare) and item.field in _PAIRS:
                groups.setdefault(_PAIRS[item.field][0], []).append(item)
            else:
                ok = ok and matches(item, run)
        return ok and all(_group(family, group, run) for family, group in groups.items())
    if isinstance(node, Or):
        return any(matches(i, run) for i in node.items)
    if isinstance(node, Not):
        return not matches(node.item, run)
    if isinstance(node, Search):
        if node.field is None:
            return set(search_tokens(node.text)) <= run.tokens()
        value = run.value(node.field)
        if isinstance(value, list):
            return any(node.text.lower() in v.lower() for v in value)
        return value is not None and node.text.lower() in value.lower()
    if node.field in _PAIRS:
        return _group(_PAIRS[node.field][0], [node], run)
    if node.field == "metadata":
        wanted = json.loads(node.value.value)
        pairs = dict(run.pairs("metadata"))
        return all(pairs.get(k) == _text(v) for k, v in wanted.items())
    if node.op == "neq":
        return not matches(Compare("eq", node.field, node.value, node.pos), run)
    value = run.value(node.field)
    lit = node.value.value
    if node.field == "tags":
        if node.op in ("eq", "has"):
            return lit in value
        if node.op == "in":
            return any(v in value for v in lit)
        return any(_like(lit, v) for v in value)
    if node.op == "eq" and lit is None:
        return value is None
    if value is None:
        return False
    if node.op == "in":
        return value in [_literal(node.field, v) for v in lit]
    if node.op == "like":
        return _like(lit, value)
    if node.op == "eq":
        return value == _literal(node.field, lit)
    return _OPS[node.op](value, _literal(node.field, lit))


def _entry_ok(c: Compare, role: str, entry: tuple[str, Any], family: str) -> bool:
    if c.op == "neq":
        return not _entry_ok(Compare("eq", c.field, c.value, c.pos), role, entry, family)
    key, rest = entry
    if role == "key":
        target = key
    elif family == "feedback":
        target = rest[0] if role == "score" else rest[1]
    else:
        target = rest
    lit = c.value.value
    if role == "score":
        if lit is None:
            return target is None
        return target is not None and (target == float(lit) if c.op == "eq" else _OPS[c.op](target, float(lit)))
    if target is None:
        return False
    if c.op == "in":
        texts = [_text(v) for v in lit]
        return target in texts or (family == "feedback" and target in [json.dumps(t) for t in texts])
    if c.op == "like":
        return _like(lit, target)
    if c.op in _OPS:
        if isinstance(lit, int | float) and not isinstance(lit, bool):
            try:
                return _OPS[c.op](float(target), float(lit))
            except ValueError:
                return False
        return _OPS[c.op](target, lit)
    return target == _text(lit) or (family == "feedback" and target == json.dumps(_text(lit)))


def _group(family: str, group: list[Compare], run: Run) -> bool:
    entries = run.pairs(family)
    absent = [c for c in group if _PAIRS[c.field][1] == "key" and c.op == "neq"]
    rest = [c for c in group if c not in absent]
    ok = all(not any(e[0] == c.value.value for e in entries) for c in absent)
    if rest and all(c.op == "neq" for c in rest):
        for c in rest:
            eq = Compare("eq", c.field, c.value, c.pos)
            ok = ok and not any(_entry_ok(eq, _PAIRS[c.field][1], e, family) for e in entries)
    elif rest:
        ok = ok and any(all(_entry_ok(c, _PAIRS[c.field][1], e, family) for c in rest) for e in entries)
    return ok


# -- fixtures ---------------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    server: Server
    runs: list[Run]
    http: httpx.Client

    @property
    def by_id(self) -> dict[uuid.UUID, Run]:
        return {r.id: r for r in self.runs}

    def sessions(self) -> list[str]:
        return [str(project_id_for_name(DEFAULT_TENANT_ID, p)) for p in PROJECTS]

    def query_all(self, body: dict[str, Any], limit: int = 100) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        body = {"session": self.sessions(), "select": ["id", "start_time"], "limit": limit, **body}
        for _ in range(1000):
            resp = self.http.post("/runs/query", json=body)
            assert resp.status_code == 200, resp.text
            page = resp.json()
            out.extend(page["runs"])
            if not page["cursors"]["next"]:
                return out
            body = {**body, "cursor": page["cursors"]["next"]}
        raise AssertionError("paging did not end")


def _insert_feedback(data_dir: Path, runs: list[Run]) -> None:
    storage = Storage.open(f"chdb://{data_dir / 'clickhouse'}", f"file://{data_dir / 'blobs'}")
    try:
        rows = []
        now = datetime.now(UTC)
        cols = [
            "tenant_id",
            "run_id",
            "key",
            "id",
            "trace_id",
            "session_id",
            "score",
            "value",
            "created_at",
            "modified_at",
            "version",
            "is_deleted",
        ]
        for run in runs:
            for key, score, value in run.feedback:
                rows.append(
                    [
                        DEFAULT_TENANT_ID,
                        run.id,
                        key,
                        uuid.uuid4(),
                        run.trace_id,
                        run.session_id,
                        score,
                        value,
                        now,
                        now,
                        time.time_ns(),
                        0,
                    ]
                )
            if run.feedback and run.id.int % 3 == 0:  # a deleted feedback row must be invisible
                fid = uuid.uuid4()
                rows.append(
                    [
                        DEFAULT_TENANT_ID,
                        run.id,
                        "deleted_key",
                        fid,
                        run.trace_id,
                        run.session_id,
                        1.0,
                        None,
                        now,
                        now,
                        time.time_ns(),
                        0,
                    ]
                )
                rows.append(
                    [
                        DEFAULT_TENANT_ID,
                        run.id,
                        "deleted_key",
                        fid,
                        run.trace_id,
                        run.session_id,
                        1.0,
                        None,
                        now,
                        now,
                        time.time_ns() + 1,
                        1,
                    ]
                )
        storage.clickhouse.client().insert("feedback", rows, column_names=cols)
    finally:
        storage.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dataset]:
    runs = generate()
    data_dir = tmp_path_factory.mktemp("oracle") / "data"
    server = Server(data_dir).start()
    try:
        with server.client() as http:
            by_project: dict[uuid.UUID, str] = {project_id_for_name(DEFAULT_TENANT_ID, p): p for p in PROJECTS}
            wire = [r.wire(by_project[r.session_id]) for r in runs]
            for start in range(0, len(wire), 400):
                resp = http.post("/runs/batch", json={"post": wire[start : start + 400]})
                assert resp.status_code == 202, resp.text
            ids = [str(r.id) for r in runs]

            def all_visible() -> bool:
                for start in range(0, len(ids), 100):
                    chunk = ids[start : start + 100]
                    got = http.post("/runs/query", json={"id": chunk, "select": ["id"], "limit": 100}).json()
                    if len(got["runs"]) != len(chunk):
                        return False
                return True

            wait_for(all_visible, timeout=120, interval=0.5, what="generated runs to be queryable")
        server.stop()
        _insert_feedback(data_dir, runs)
        server.start()
        with server.client() as http:
            yield Dataset(server, runs, http)
    finally:
        server.stop()


def check(data: Dataset, body: dict[str, Any], expected: list[Run], limit: int = 100) -> None:
    got = data.query_all(body, limit=limit)
    ids = [uuid.UUID(r["id"]) for r in got]
    assert len(ids) == len(set(ids)), f"duplicates for {body}"
    missing = {r.id for r in expected} - set(ids)
    extra = set(ids) - {r.id for r in expected}
    assert not missing and not extra, (
        f"{body}: {len(missing)} missing e.g. {list(missing)[:2]}, {len(extra)} unexpected e.g. {list(extra)[:2]}"
    )
    times = [r["start_time"] for r in got]
    assert times == sorted(times, reverse=body.get("order", "desc") == "desc")


# -- the filters ------------------------------------------------------------------------------------------------


def atoms(runs: list[Run]) -> list[str]:
    some = runs[len(runs) // 3]
    child = next(r for r in runs if r.parent_run_id is not None)
    times = sorted(r.start_time for r in runs)
    mid = times[len(times) // 2].isoformat()
    ended = sorted(r.end_time for r in runs if r.end_time)
    word = WORDS[3]
    return [
        f'eq(id, "{some.id}")',
        f'neq(id, "{some.id}")',
        f'in(id, ["{some.id}", "{child.id}"])',
        f'eq(trace_id, "{child.trace_id}")',
        "eq(parent_run_id, null)",
        "neq(parent_run_id, null)",
        f'eq(parent_run_id, "{child.parent_run_id}")',
        f'eq(reference_example_id, "{REFS[0]}")',
        "eq(reference_example_id, null)",
        'eq(name, "o\'neil")',
        "eq(name, 'say \"hi\"')",
        'eq(name, "\\u00dcn\\u00efcode name")',
        'neq(name, "agent")',
        'in(name, ["agent", "parse"])',
        'like(name, "%o%")',
        'search(name, "NEIL")',
        'gt(name, "p")',
        'eq(run_type, "llm")',
        'in(run_type, ["tool", "chain"])',
        'eq(status, "pending")',
        'eq(status, "error")',
        "eq(error, null)",
        "neq(error, null)",
        'search(error, "BOOM")',
        'like(error, "boom e%")',
        f'gt(start_time, "{mid}")',
        f'lte(start_time, "{mid}")',
        f'eq(start_time, "{some.start_time.isoformat()}")',
        f'gte(start_time, "{some.start_time.isoformat()}")',
        f'lt(start_time, "{some.start_time.replace(tzinfo=None).isoformat()}")',
        f'gt(end_time, "{ended[len(ended) // 2].isoformat()}")',
        "eq(end_time, null)",
        'gt(latency, "2s")',
        "lt(latency, 0.5)",
        'gte(latency, "1500ms")',
        "lte(latency, 3)",
        "eq(first_token_time, null)",
        "gt(total_tokens, 100)",
        "eq(total_tokens, 0)",
        "gte(prompt_tokens, 50)",
        "lt(completion_tokens, 20)",
        "gt(total_cost, 0.02)",
        "eq(total_cost, null)",
        "lte(prompt_cost, 0.005)",
        "gt(completion_cost, 0.01)",
        "eq(is_root, true)",
        "eq(is_root, false)",
        "eq(execution_order, 1)",
        "gt(execution_order, 2)",
        'has(tags, "alpha")',
        'eq(tags, "two words")',
        'neq(tags, "beta")',
        'in(tags, ["beta", "gamma"])',
        'like(tags, "%mm%")',
        'eq(thread_id, "th-1")',
        'neq(thread_id, "")',
        'eq(metadata_key, "thread_id")',
        'and(eq(metadata_key, "env"), eq(metadata_value, "prod"))',
        'and(eq(metadata_key, "env"), neq(metadata_value, "prod"))',
        'neq(metadata_key, "thread_id")',
        'and(neq(metadata_key, "thread_id"), eq(metadata_value, "prod"))',
        'and(neq(metadata_key, "thread_id"), neq(metadata_value, "th-2"))',
        'neq(metadata_value, "th-3")',
        "and(eq(metadata_key, 'score'), gt(metadata_value, 5))",
        "and(eq(metadata_key, 'ratio'), eq(metadata_value, 1.5))",
        'and(eq(metadata_key, "flag"), eq(metadata_value, true))',
        'in(metadata_key, ["usage_metadata", "nope"])',
        'like(metadata_value, "u1%")',
        'has(metadata, \'{"env": "prod", "flag": true}\')',
        "has(metadata, '{\"score\": 3}')",
        'and(eq(input_key, "ctx.docs.1.page"), gte(input_value, 4))',
        f'eq(input_value, "{word}")',
        f'and(eq(output_key, "answer"), eq(output_value, "{word}"))',
        'neq(output_key, "answer")',
        'eq(feedback_key, "correctness")',
        'and(eq(feedback_key, "correctness"), eq(feedback_score, 1))',
        'and(eq(feedback_key, "helpfulness"), gte(feedback_score, 0.5))',
        'neq(feedback_key, "correctness")',
        'and(eq(feedback_key, "correctness"), eq(feedback_value, "good"))',
        "eq(feedback_score, null)",
        'eq(feedback_key, "deleted_key")',
        f'search("{word}")',
        f'search("{WORDS[1].upper()}, {WORDS[2]}")',
        'search("boom")',
        'search("unicode")',
    ]


def test_every_field_and_comparator_matches_the_oracle(data: Dataset) -> None:
    for text in atoms(data.runs):
        node = parse(text)
        check(data, {"filter": text}, [r for r in data.runs if matches(node, r)])


def test_nesting_matches_the_oracle(data: Dataset) -> None:
    for text in [
        'or(and(eq(run_type, "llm"), gt(latency, "1s")), not(has(tags, "alpha")))',
        'not(or(eq(error, null), eq(status, "pending")))',
        'and(or(eq(metadata_key, "thread_id"), eq(name, "agent")), not(and(eq(metadata_key, "env"), '
        'eq(metadata_value, "dev"))))',
        'and(gt(start_time, "2020-01-01T00:00:00Z"), or(neq(error, null), and(eq(feedback_key, "correctness"), '
        "eq(feedback_score, 0.0))))",
        'and(eq(metadata_key, "env"), and(eq(metadata_value, "prod"), eq(is_root, true)))',
        "not(not(eq(is_root, true)))",
    ]:
        node = parse(text)
        check(data, {"filter": text}, [r for r in data.runs if matches(node, r)])


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_random_filter_trees_match_the_oracle(data: Dataset, draw: st.DataObject) -> None:
    leaves = st.sampled_from(atoms(data.runs))
    tree = st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: f"and({', '.join(xs)})"),
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: f"or({', '.join(xs)})"),
            inner.map(lambda x: f"not({x})"),
        ),
        max_leaves=5,
    )
    text = draw.draw(tree)
    node = parse(text)
    check(data, {"filter": text}, [r for r in data.runs if matches(node, r)])


def test_trace_filter_and_tree_filter(data: Dataset) -> None:
    by_id = data.by_id
    cases = [
        ('eq(name, "o\'neil")', 'and(eq(feedback_key, "correctness"), eq(feedback_score, 1))', None),
        ('eq(run_type, "llm")', None, 'eq(name, "parse")'),
        (None, 'eq(metadata_key, "thread_id")', "neq(error, null)"),
        ('eq(name, "agent")', 'and(eq(metadata_key, "env"), eq(metadata_value, "prod"))', 'gt(latency, "4s")'),
    ]
    for filt, trace_filter, tree_filter in cases:
        body = {
            k: v for k, v in {"filter": filt, "trace_filter": trace_filter, "tree_filter": tree_filter}.items() if v
        }
        expected = []
        for run in data.runs:
            if filt and not matches(parse(filt), run):
                continue
            if trace_filter and not matches(parse(trace_filter), by_id[run.trace_id]):
                continue
            if tree_filter and not any(matches(parse(tree_filter), r) for r in data.runs if r.trace_id == run.trace_id):
                continue
            expected.append(run)
        check(data, body, expected)


def test_query_arguments(data: Dataset) -> None:
    runs = data.runs
    child = next(r for r in runs if len(r.parent_run_ids) >= 2)
    times = sorted(r.start_time for r in runs)
    lo, hi = times[len(times) // 4], times[3 * len(times) // 4]
    sessions = data.sessions()
    one = uuid.UUID(sessions[1])
    cases: list[tuple[dict[str, Any], list[Run]]] = [
        ({"is_root": True}, [r for r in runs if r.parent_run_id is None]),
        ({"is_root": False}, [r for r in runs if r.parent_run_id is not None]),
        ({"execution_order": 1}, [r for r in runs if r.parent_run_id is None]),
        ({"run_type": "llm"}, [r for r in runs if r.run_type == "llm"]),
        ({"error": True}, [r for r in runs if r.error]),
        ({"error": False}, [r for r in runs if not r.error]),
        ({"start_time": lo.isoformat()}, [r for r in runs if r.start_time >= lo]),
        ({"end_time": hi.isoformat()}, [r for r in runs if r.end_time and r.end_time <= hi]),
        ({"trace": str(child.trace_id)}, [r for r in runs if r.trace_id == child.trace_id]),
        (
            {"trace": str(child.trace_id), "is_root": False},
            [r for r in runs if r.trace_id == child.trace_id and r.parent_run_id],
        ),
        ({"parent_run": str(child.parent_run_id)}, [r for r in runs if r.parent_run_id == child.parent_run_id]),
        ({"id": [str(r.id) for r in runs[:30]]}, runs[:30]),
        ({"reference_example": [str(REFS[1])]}, [r for r in runs if r.reference_example_id == REFS[1]]),
        ({"session": [str(one)]}, [r for r in runs if r.session_id == one]),
        (
            {"session": None, "session_id": str(one), "is_root": True},
            [r for r in runs if r.session_id == one and r.parent_run_id is None],
        ),
        ({"query": WORDS[4]}, [r for r in runs if WORDS[4] in r.tokens()]),
        ({"order": "asc", "run_type": "tool"}, [r for r in runs if r.run_type == "tool"]),
    ]
    for body, expected in cases:
        check(data, {k: v for k, v in body.items()}, expected)


def test_paging_with_small_limits_is_complete_stable_and_reversible(data: Dataset) -> None:
    body = {"filter": 'eq(run_type, "tool")', "select": ["id", "start_time"]}
    expected = [r for r in data.runs if r.run_type == "tool"]
    for order in ("desc", "asc"):
        check(data, {**body, "order": order}, expected, limit=7)
    first = data.query_all({**body, "order": "desc"}, limit=7)
    assert first == data.query_all({**body, "order": "desc"}, limit=7)  # deterministic, ties included
    assert first == data.query_all({**body, "order": "desc"}, limit=100)  # page size does not change the order
    # prev cursors lead back to the same pages
    req = {"session": data.sessions(), "limit": 5, **body}
    pages, cursors = [], []
    for _ in range(3):
        page = data.http.post("/runs/query", json=req).json()
        pages.append([r["id"] for r in page["runs"]])
        cursors.append(page["cursors"])
        req = {**req, "cursor": page["cursors"]["next"]}
    assert cursors[0]["prev"] is None
    back = data.http.post("/runs/query", json={**req, "cursor": cursors[2]["prev"]}).json()
    assert [r["id"] for r in back["runs"]] == pages[1]
    assert [uuid.UUID(i) for p in pages for i in p] == [uuid.UUID(r["id"]) for r in first[:15]]


def test_ties_on_start_time_are_broken_by_id(data: Dataset) -> None:
    counts: dict[datetime, int] = {}
    for run in data.runs:
        counts[run.start_time] = counts.get(run.start_time, 0) + 1
    assert max(counts.values()) > 1, "the dataset must contain ties for this test to mean anything"


def test_bad_requests_are_4xx_naming_the_problem(data: Dataset) -> None:
    resp = data.http.post("/runs/query", json={"filter": 'and(eq(name, "x"), gt(latency, ))'})
    assert resp.status_code == 400
    assert resp.json()["detail"] == {"field": "filter", "position": 31, "filter": 'and(eq(name, "x"), gt(latency, ))'}
    resp = data.http.post("/runs/query", json={"tree_filter": "eq(nope, 1)"})
    assert resp.status_code == 400 and "unknown field 'nope'" in resp.json()["error"]
    assert resp.json()["detail"]["field"] == "tree_filter"
    resp = data.http.post("/runs/query", json={"cursor": "garbage"})
    assert resp.status_code == 400 and resp.json()["detail"]["field"] == "cursor"
    for t in (12 * 10**15, 10**30):  # forged cursors: year 2350 (beyond DateTime64), beyond Python dates
        forged = base64.urlsafe_b64encode(jsonutil.dumps({"t": t, "i": str(uuid.uuid4()), "d": "next", "o": "desc"}))
        resp = data.http.post("/runs/query", json={"cursor": forged.decode()})
        assert resp.status_code == 400 and resp.json()["detail"]["field"] == "cursor", resp.text
    resp = data.http.post("/runs/query", json={"start_time": "0001-01-01T00:00:00Z"})
    assert resp.status_code == 422 and "start_time" in resp.text, resp.text
    resp = data.http.post("/runs/query", json={"limit": 0})
    assert resp.status_code == 422
    resp = data.http.post("/runs/query", json={"limit": 1000, "session": data.sessions(), "select": ["id"]})
    assert resp.status_code == 200 and len(resp.json()["runs"]) == 100
