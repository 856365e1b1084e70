"""Public share links of runs. A share is a capability: whoever holds the token may read that run's trace."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

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

    def get(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> RunShare | None:
        rows = (
            self._ch.client()
            .query(
                "SELECT tenant_id, run_id, share_token, trace_id, session_id FROM run_shares FINAL "
                "WHERE tenant_id = {tenant:UUID} AND run_id = {run:UUID}",
                parameters={"tenant": tenant_id, "run": run_id},
            )
            .result_rows
        )
        return RunShare(*rows[0]) if rows else None

    def by_token(self, token: uuid.UUID) -> RunShare | None:
        """The public read: the token is all the caller has, so this is the one read not led by a tenant."""
        rows = (
            self._ch.client()
            .query(
                "SELECT tenant_id, run_id, share_token, trace_id, session_id FROM run_shares FINAL "
                "WHERE share_token = {token:UUID}",
                parameters={"token": token},
            )
            .result_rows
        )
        return RunShare(*rows[0]) if rows else None

    def save(self, share: RunShare, *, deleted: bool = False) -> None:
        row = [share.tenant_id, share.run_id, share.share_token, share.trace_id, share.session_id]
        self._ch.client().insert("run_shares", [[*row, time.time_ns(), int(deleted)]], column_names=_COLUMNS)
