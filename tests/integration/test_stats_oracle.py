"""Project, run and feedback statistics checked against a Python oracle over a generated dataset: several
projects, errors, tokens, numeric and categorical feedback, several feedbacks of one key per run, comments."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support import Server, feedback_oracle, wait_for

PROJECTS = 3
TRACES_PER_PROJECT = 40


def generate(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    runs, feedback = [], []
    now = datetime.now(UTC) - timedelta(hours=1)
    for p in range(PROJECTS):
        for t in range(TRACES_PER_PROJECT):
            root = str(uuid.uuid4())
            start = now + timedelta(seconds=p * 1000 + t)
            latency = rng.choice([0.5, 1.0, 2.0, 4.0])
            runs.append(
                {
                    "id": root,
                    "name": "root",
                    "run_type": "chain",
                    "session_name": f"oracle-{p}",
                    "start_time": start.isoformat(),
                    "end_time": (start + timedelta(seconds=latency)).isoformat(),
                    "inputs": {},
                    "outputs": {},
                    **({"error": "x"} if rng.random() < 0.2 else {}),
                }
            )
            for _ in range(rng.randrange(0, 3)):
                tokens = rng.randrange(1, 100)
                runs.append(
                    {
                        "id": str(uuid.uuid4()),
                        "parent_run_id": root,
                        "name": "llm",
                        "run_type": "llm",
                        "session_name": f"oracle-{p}",
                        "start_time": start.isoformat(),
                        "end_time": (start + timedelta(seconds=0.1)).isoformat(),
                        "inputs": {},
                        "outputs": {},
                        "extra": {
                            "metadata": {
                                "usage_metadata": {
                                    "input_tokens": tokens,
                                    "output_tokens": 1,
                                    "total_tokens": tokens + 1,
                                }
                            }
                        },
                    }
                )
            for _ in range(rng.randrange(0, 4)):
                kind = rng.random()
                item: dict[str, Any] = {"run_id": root, "key": "score" if kind < 0.5 else "label"}
                if kind < 0.5:
                    item["score"] = rng.choice([0, 0.25, 0.5, 1])
                else:
                    item["value"] = rng.choice(["good", "bad"])
                if rng.random() < 0.3:
                    item["comment"] = "c"
                feedback.append(item)
    return runs, feedback


def assert_stats(actual: dict[str, Any], expected: dict[str, dict[str, Any]]) -> None:
    assert set(actual) == set(expected)
    for key, want in expected.items():
        got = actual[key]
        for field in ("n", "values", "comment_count"):
            assert got[field] == want[field], (key, field)
        for field in ("avg", "stdev", "min", "max"):
            assert got[field] == (None if want[field] is None else pytest.approx(want[field])), (key, field)


def test_stats_match_the_oracle(server: Server) -> None:
    rng = random.Random(5)
    runs, feedback = generate(rng)
    http = httpx.Client(base_url=server.url, timeout=30)
    assert http.post("/runs/batch", json={"post": runs}).status_code == 202
    for item in feedback:
        http.post("/feedback", json=item).raise_for_status()
    wait_for(lambda: http.post("/runs/query", json={"id": [runs[-1]["id"]]}).json()["runs"], what="last run stored")
    by_project: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_project[run["session_name"]].append(run)
    root_project = {run["id"]: run["session_name"] for run in runs if run["name"] == "root"}
    for name, project_runs in by_project.items():
        project = http.get("/sessions", params={"name": name, "include_stats": "true"}).json()[0]
        roots = [r for r in project_runs if r["name"] == "root"]
        assert project["run_count"] == len(project_runs)
        assert project["error_rate"] == pytest.approx(sum("error" in r for r in roots) / len(roots))
        tokens = sum(r["extra"]["metadata"]["usage_metadata"]["total_tokens"] for r in project_runs if "extra" in r)
        assert project["total_tokens"] == tokens
        latencies = sorted(
            (datetime.fromisoformat(r["end_time"]) - datetime.fromisoformat(r["start_time"])).total_seconds()
            for r in roots
        )
        assert latencies[0] <= project["latency_p50"] <= latencies[-1]
        assert_stats(
            project["feedback_stats"], feedback_oracle([f for f in feedback if root_project[f["run_id"]] == name])
        )
        llm = http.post("/runs/stats", json={"session": [project["id"]], "run_type": "llm"}).json()
        assert llm["run_count"] == sum(r["run_type"] == "llm" for r in project_runs)
        assert llm["total_tokens"] == tokens
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in feedback:
        by_run[item["run_id"]].append(item)
    for run_id, items in list(by_run.items())[:15]:
        assert_stats(http.get(f"/runs/{run_id}").json()["feedback_stats"], feedback_oracle(items))
    everything = http.post(
        "/runs/stats",
        json={
            "session": [p["id"] for p in http.get("/sessions").json() if p["name"].startswith("oracle-")],
            "is_root": True,
        },
    ).json()
    assert everything["run_count"] == len(root_project)
    assert_stats(everything["feedback_stats"], feedback_oracle(feedback))
