"""`client.sessions` of the real langsmith SDK (0.15.0) against a server: the v1 methods (`/api/v1/sessions`) and
the v2 ones (`/api/v2/sessions`), with statistics checked against traces of known start times, latencies, tokens
and feedback, paging and sorting checked against the projects created, and refused options answering 422."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langsmith import BadRequestError, Client, ConflictError, NotFoundError, UnprocessableEntityError

from tests.support import Server, sdk, wait_for

# client.sessions.create/retrieve/update are deprecated in favour of the v2 methods, which are tested too.
pytestmark = pytest.mark.filterwarnings("ignore:Deprecated")
SUFFIX = uuid.uuid4().hex[:8]
BEGIN = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
OLD = BEGIN - timedelta(hours=2)  # the first trace's start, before stats_start_time


def trace(server: Server, project: str, start: datetime, latency: float, tokens: int, error: bool) -> str:
    """A root chain with one llm child of `tokens` tokens, both lasting `latency` seconds; returns the root id."""
    root, child = str(uuid.uuid4()), str(uuid.uuid4())
    end = (start + timedelta(seconds=latency)).isoformat()
    common = {"start_time": start.isoformat(), "end_time": end, "session_name": project, "inputs": {}, "outputs": {}}
    usage = {"input_tokens": tokens - 1, "output_tokens": 1, "total_tokens": tokens}
    runs = [
        {"id": root, "name": "root", "run_type": "chain", **common, **({"error": "boom"} if error else {})},
        {
            "id": child,
            "parent_run_id": root,
            "name": "llm",
            "run_type": "llm",
            **common,
            "extra": {"metadata": {"usage_metadata": usage}},
        },
    ]
    assert httpx.post(f"{server.url}/runs/batch", json={"post": runs}).status_code == 202
    wait_for(lambda: httpx.get(f"{server.url}/runs/{child}").status_code == 200, what=f"run {child}")
    return root


@pytest.fixture(scope="module")
def traced(server: Server, client: Client) -> dict[str, Any]:
    """A project with an old failed trace (1 s, 10 tokens, quality 0) and a recent one (3 s, 20 tokens,
    quality 1)."""
    name = f"sessions-stats-{SUFFIX}"
    old = trace(server, name, OLD, 1.0, 10, error=True)
    recent = trace(server, name, BEGIN, 3.0, 20, error=False)
    project = client.read_project(project_name=name)
    client.create_feedback(old, "quality", score=0.0, session_id=project.id)
    client.create_feedback(recent, "quality", score=1.0, session_id=project.id)
    wait_for(
        lambda: (
            httpx.get(f"{server.url}/sessions/{project.id}", params={"include_stats": True}).json()["feedback_stats"][
                "quality"
            ]["n"]
            == 2
        ),
        what="the feedback of both traces",
    )
    return {"id": str(project.id), "name": name}


def test_v1_methods_create_read_update_and_delete(server: Server) -> None:
    name = f"sessions-v1-{SUFFIX}"

    async def calls(client: Client) -> None:
        s = client.sessions
        created = await s.create(name=name, description="one", longlived_ttl_days=90, trace_tier="shortlived")
        assert (created.name, created.description, created.longlived_ttl_days) == (name, "one", 90)
        assert created.trace_tier == "shortlived"
        read = await s.retrieve(created.id)
        assert (read.id, read.name, read.longlived_ttl_days) == (created.id, name, 90)
        updated = await s.update(created.id, name=f"{name}-b", description="two", longlived_ttl_days=30)
        assert (updated.name, updated.description, updated.longlived_ttl_days) == (f"{name}-b", "two", 30)
        upserted = await s.create(name=f"{name}-b", upsert=True, description="three")
        assert (upserted.id, upserted.description) == (created.id, "three")
        with pytest.raises(ConflictError):
            await s.create(name=f"{name}-b")
        with pytest.raises(UnprocessableEntityError) as refused:
            await s.create(name=f"{name}-c", trace_tier="longlived")
        assert refused.value.body["detail"] == {"field": "trace_tier", "unsupported": True}
        await s.delete(created.id)
        with pytest.raises(NotFoundError):
            await s.retrieve(created.id)

    sdk(server, calls)


def test_v1_retrieve_with_stats_since_a_time(server: Server, traced: dict[str, Any]) -> None:
    async def calls(client: Client) -> None:
        every = await client.sessions.retrieve(traced["id"], include_stats=True)
        recent = await client.sessions.retrieve(
            traced["id"], include_stats=True, stats_start_time=BEGIN - timedelta(hours=1)
        )
        assert (every.run_count, every.total_tokens) == (4, 30)
        assert (recent.run_count, recent.total_tokens) == (2, 20)
        assert recent.feedback_stats is not None and recent.feedback_stats["quality"]["n"] == 1

    sdk(server, calls)


def test_v2_create_retrieve_and_update(server: Server) -> None:
    name = f"sessions-v2-{SUFFIX}"
    dataset = str(uuid.uuid4())

    async def calls(client: Client) -> None:
        s = client.sessions
        created = await s.create_v2(
            type="PROJECT",
            name=name,
            description="one",
            extra={"metadata": {"team": "a"}, "keep": 1, "drop": 2},
            longlived_ttl_days=60,
            trace_tier="SHORT_LIVED",
        )
        assert (created.type, created.trace_tier, created.longlived_ttl_days) == ("PROJECT", "SHORT_LIVED", 60)
        read = await s.retrieve_v2(created.id)
        assert (read.name, read.description, read.extra) == (name, "one", created.extra)
        assert read.run_count is None, "statistics only on request"
        updated = await s.update_v2(
            created.id, description=None, extra={"drop": None, "new": 3}, longlived_ttl_days=None
        )
        assert updated.description is None and updated.longlived_ttl_days is None
        assert updated.extra == {"metadata": {"team": "a"}, "keep": 1, "new": 3}
        assert (await s.retrieve_v2(created.id)).extra == updated.extra
        renamed = await s.update_v2(created.id, name=f"{name}-b")
        assert (renamed.name, renamed.extra) == (f"{name}-b", updated.extra), "omitted members stay"
        upserted = await s.create_v2(type="PROJECT", name=f"{name}-b", upsert=True, extra={"keep": None})
        assert (upserted.id, upserted.extra) == (created.id, {"metadata": {"team": "a"}, "new": 3})
        with pytest.raises(ConflictError):
            await s.create_v2(type="PROJECT", name=f"{name}-b")
        experiment = await s.create_v2(type="EXPERIMENT", name=f"{name}-exp", reference_dataset_id=dataset)
        assert (experiment.type, experiment.reference_dataset_id) == ("EXPERIMENT", dataset)
        with pytest.raises(NotFoundError):
            await s.retrieve_v2(str(uuid.uuid4()))

    sdk(server, calls)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.create_v2(type="AGENT", name=f"agent-{SUFFIX}"), "type"),
        (lambda s: s.create_v2(type="PROJECT", name=f"tier-{SUFFIX}", trace_tier="LONG_LIVED"), "trace_tier"),
        (lambda s: s.create_v2(type="PROJECT", name=f"exp-{SUFFIX}", num_examples=3), "num_examples"),
        (lambda s: s.list_v2(filter="eq(name, 'x')"), "filter"),
        (lambda s: s.list_v2(tag_value_id=[str(uuid.uuid4())]), "tag_value_id"),
        (lambda s: s.list_v2(sort_by="LATENCY_P50"), "sort_by"),
    ],
)
def test_v2_refuses_what_it_cannot_honour(server: Server, call: Any, field: str) -> None:
    async def calls(client: Client) -> None:
        with pytest.raises(UnprocessableEntityError) as refused:
            await call(client.sessions)
        assert refused.value.body["detail"] == {"field": field, "unsupported": True}

    sdk(server, calls)


def test_v2_bad_input_is_a_422_naming_the_field(server: Server) -> None:
    async def calls(client: Client) -> None:
        s = client.sessions
        created = await s.create_v2(type="PROJECT", name=f"bad-{SUFFIX}")
        for call, field in (
            (s.create_v2(type="EXPERIMENT", name=f"bad-exp-{SUFFIX}"), "type"),
            (s.update_v2(created.id, extra={"metadata": "text"}), "extra.metadata"),
            (s.list_v2(stats_select=["nonsense"], include_stats=True), "stats_select"),
            # in datetime's range as written, not in UTC: converting it overflowed, a 500
            (s.create_v2(type="PROJECT", name=f"t-{SUFFIX}", start_time="0001-01-01T00:00:00+00:01"), "start_time"),
        ):
            with pytest.raises(UnprocessableEntityError) as bad:
                await call
            assert bad.value.body["detail"]["field"] == field
        assert (await s.retrieve_v2(created.id)).extra == {}, "a refused update changes nothing"

    sdk(server, calls)


def test_v2_stats_since_a_time_and_filtered(server: Server, traced: dict[str, Any]) -> None:
    async def calls(client: Client) -> None:
        s = client.sessions
        every = await s.retrieve_v2(traced["id"], include_stats=True)
        assert (every.run_count, every.total_tokens, every.prompt_tokens, every.completion_tokens) == (4, 30, 28, 2)
        assert every.error_rate == pytest.approx(0.5)
        assert every.latency_p50 == pytest.approx(2.0) and every.latency_p99 == pytest.approx(2.98)
        assert every.last_run_start_time == BEGIN == every.last_run_start_time_live
        assert every.feedback_stats is not None
        quality = every.feedback_stats["quality"]
        assert (quality.n, quality.avg, quality.min, quality.max) == (2, 0.5, 0.0, 1.0)
        assert (quality.type, quality.contains_thread_feedback, quality.errors) == ("PRIMARY", False, 0)
        assert every.session_feedback_stats == {}

        recent = await s.retrieve_v2(traced["id"], include_stats=True, stats_start_time=BEGIN - timedelta(hours=1))
        assert (recent.run_count, recent.total_tokens, recent.error_rate) == (2, 20, 0.0)
        assert recent.feedback_stats is not None and recent.feedback_stats["quality"].avg == 1.0

        page = await s.list_v2(
            name=traced["name"], include_stats=True, stats_filter='eq(run_type, "llm")', include_facets=True
        )
        (llm,) = page.items
        assert (llm.id, llm.run_count, llm.total_tokens) == (traced["id"], 2, 30)
        assert llm.feedback_stats == {}, "the feedback is on the roots, which the filter leaves out"
        assert {(f["key"], f["value"]): f["count"] for f in llm.run_facets or []}[("run_type", "llm")] == 2

        (picked,) = (await s.list_v2(name=traced["name"], include_stats=True, stats_select=["RUN_COUNT"])).items
        assert (picked.run_count, picked.total_tokens, picked.feedback_stats) == (4, None, None)

    sdk(server, calls)


def test_v2_list_filters_sorts_and_pages(server: Server) -> None:
    prefix = f"sessions-list-{SUFFIX}"
    dataset = str(uuid.uuid4())
    # Names sort one way and start times the other, so that the two sorts tell each other apart.
    specs = [(f"{prefix}-{letter}", BEGIN - timedelta(minutes=i)) for i, letter in enumerate("abcde")]

    async def calls(client: Client) -> None:
        s = client.sessions
        created = {}
        for i, (name, start) in enumerate(specs):
            experiment = i == 4
            created[name] = await s.create_v2(
                type="EXPERIMENT" if experiment else "PROJECT",
                name=name,
                start_time=start,
                extra={"metadata": {"even": i % 2 == 0}},
                **({"reference_dataset_id": dataset} if experiment else {}),
            )
        names = sorted(created)

        async def listed(**options: Any) -> list[str]:
            return [p.name async for p in s.list_v2(name_contains=prefix, page_size=2, **options)]

        assert await listed(sort_by="NAME", sort_order="asc") == names
        assert await listed(sort_by="NAME", sort_order="desc") == names[::-1]
        assert await listed(sort_by="START_TIME", sort_order="asc") == names[::-1]
        assert await listed() == names, "newest first by default"
        assert await listed(type=["EXPERIMENT"]) == [names[4]]
        assert await listed(type=["PROJECT"]) == names[:4]
        assert await listed(type=["AGENT"]) == []
        assert await listed(metadata='{"even": true}', sort_by="NAME", sort_order="asc") == names[::2]
        assert await listed(reference_dataset_id=[dataset]) == [names[4]]
        wanted = [str(created[names[1]].id), str(created[names[3]].id)]
        assert await listed(id=wanted, sort_by="NAME", sort_order="asc") == [names[1], names[3]]
        assert [p.name async for p in s.list_v2(name=names[2])] == [names[2]]

        first = await s.list_v2(name_contains=prefix, page_size=2, sort_by="NAME", sort_order="asc")
        assert [p.name for p in first.items] == names[:2] and first.next_cursor
        with pytest.raises(BadRequestError) as other_sort:
            await s.list_v2(name_contains=prefix, page_size=2, sort_by="START_TIME", cursor=first.next_cursor)
        assert other_sort.value.body["detail"] == {"field": "cursor"}

    sdk(server, calls)
