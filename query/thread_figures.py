"""What the two thread statistics routes (`query.thread_stats_api`, one thread, and
`query.thread_aggregate_stats_api`, a project's threads) share: the figures summed over runs, named as both the
SDK's answers and `RunReader`'s rows name them, and the feedback stats of the runs a figure covers."""

from __future__ import annotations

import uuid
from typing import Any

from query.run_reads import RunReads
from query.runs_v2_shape import feedback_stats_v2
from storage.feedback import of_runs

SUMS = ("prompt_tokens", "completion_tokens", "total_tokens", "prompt_cost", "completion_cost", "total_cost")
DETAILS = ("prompt_token_details", "completion_token_details", "prompt_cost_details", "completion_cost_details")
# The answer members not named as their select is.
LATENCY_MEMBERS = {"LATENCY_P50": "latency_p50_seconds", "LATENCY_P99": "latency_p99_seconds"}


def feedback_stats(reads: RunReads, tenant_id: uuid.UUID, where: str, params: dict[str, Any]) -> dict[str, Any]:
    """v2 FeedbackStats per key of the feedback of the runs that `where` selects: those the other figures
    cover, so that feedback and figures describe the same runs."""
    return feedback_stats_v2(reads.storage.feedback.stats_by_key(tenant_id, of_runs(where), params))
