"""Public share links of runs. A share is a capability: whoever holds the token may read that run's trace."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from storage.clickhouse import ClickHouse

_COLUMNS = ["tenant_id", "run_id", "share_token", "trace_id", "session_id", "version", "is_deleted"]


@dataclass(frozen=True, slots=True)
class RunShare:
    tenant_id: uuid.UUID
    run_id: uuid.UUID
    share_token: uuid.UUID
    trace_id: uuid.UUID
    session_id: uuid.UUID


class RunShareRepository:
    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch

    def _select(self, where: str, params: dict[str, Any]) -> list[RunShare]:
        rows = (
            self._ch.client()
            .query(
                f"SELECT tenant_id, run_id, share_token, trace_id, session_id FROM run_shares FINAL WHERE {where}",
                parameters=params,
            )
            .result_rows
        )
        return [RunShare(*row) for row in rows]

    def get(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> RunShare | None:
        found = self._select("tenant_id = {tenant:UUID} AND run_id = {run:UUID}", {"tenant": tenant_id, "run": run_id})
        return found[0] if found else None

    def by_token(self, token: uuid.UUID) -> RunShare | None:
        """The public read: the token is all the caller has, so this is the one read not led by a tenant."""
        found = self._select("share_token = {token:UUID}", {"token": token})
        return found[0] if found else None

    def of_trace(self, tenant_id: uuid.UUID, trace_id: uuid.UUID, session_id: uuid.UUID) -> list[RunShare]:
        """Every share that exposes the trace, whichever of its runs it was made on. Not in the sort key past the
        tenant, which is fine: a tenant's shares are few."""
        return self._select(
            "tenant_id = {tenant:UUID} AND trace_id = {trace:UUID} AND session_id = {session:UUID}",
            {"tenant": tenant_id, "trace": trace_id, "session": session_id},
        )

    def save(self, share: RunShare) -> None:
        self._insert([share], deleted=False)

    def delete(self, shares: Iterable[RunShare]) -> None:
        self._insert(shares, deleted=True)

    def _insert(self, shares: Iterable[RunShare], *, deleted: bool) -> None:
        version = time.time_ns()
        rows = [[s.tenant_id, s.run_id, s.share_token, s.trace_id, s.session_id, version, int(deleted)] for s in shares]
        if rows:
            self._ch.client().insert("run_shares", rows, column_names=_COLUMNS)
