"""Share links of threads: a token per thread of a project, which the owner creates, reads and deletes.

Deletes are new versions, as for run shares (`storage.run_shares`), read with FINAL.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from storage.clickhouse import ClickHouse

_COLUMNS = ["tenant_id", "session_id", "thread_id", "share_token", "version", "is_deleted"]


@dataclass(frozen=True, slots=True)
class ThreadShare:
    tenant_id: uuid.UUID
    session_id: uuid.UUID
    thread_id: str
    share_token: uuid.UUID


class ThreadShareRepository:
    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch

    def get(self, tenant_id: uuid.UUID, session_id: uuid.UUID, thread_id: str) -> ThreadShare | None:
        rows = (
            self._ch.client()
            .query(
                "SELECT tenant_id, session_id, thread_id, share_token FROM thread_shares FINAL "
                "WHERE tenant_id = {tenant:UUID} AND session_id = {session:UUID} AND thread_id = {thread:String}",
                parameters={"tenant": tenant_id, "session": session_id, "thread": thread_id},
            )
            .result_rows
        )
        return ThreadShare(*rows[0]) if rows else None

    def save(self, share: ThreadShare, *, deleted: bool = False) -> None:
        row = [share.tenant_id, share.session_id, share.thread_id, share.share_token, time.time_ns(), int(deleted)]
        self._ch.client().insert("thread_shares", [row], column_names=_COLUMNS)
