"""Presigned feedback tokens: the token id is the credential, so the public lookup is by id alone."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from schemas import jsonutil
from schemas.times import times_as_utc
from storage.clickhouse import ClickHouse

_COLUMNS = ("tenant_id", "id", "run_id", "feedback_key", "feedback_config", "expires_at", "version", "is_deleted")
_READ = "tenant_id, id, run_id, feedback_key, feedback_config, expires_at, created_at"


class FeedbackTokens:
    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch

    def create(self, tenant_id: uuid.UUID, tokens: list[dict[str, Any]]) -> None:
        """Each token: id, run_id, feedback_key, feedback_config, expires_at (datetime or None)."""
        version = time.time_ns()
        rows = [
            [
                tenant_id,
                t["id"],
                t["run_id"],
                t["feedback_key"],
                None if t.get("feedback_config") is None else jsonutil.dumps_str(t["feedback_config"]),
                t.get("expires_at"),
                version,
                0,
            ]
            for t in tokens
        ]
        self._ch.client().insert("feedback_tokens", rows, column_names=_COLUMNS)

    def _select(self, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        result = self._ch.client().query(f"SELECT {_READ} FROM feedback_tokens FINAL WHERE {where}", parameters=params)
        out = []
        for row in result.named_results():
            row["feedback_config"] = jsonutil.loads(row["feedback_config"]) if row["feedback_config"] else None
            times_as_utc(row, ("expires_at", "created_at"))
            out.append(row)
        return out

    def valid(self, token_id: uuid.UUID) -> dict[str, Any] | None:
        """The token if it exists and has not expired (public: no tenant, the token is the credential)."""
        found = self._select("id = {id:UUID}", {"id": token_id})
        if not found:
            return None
        token = found[0]
        if token["expires_at"] is not None and token["expires_at"] <= datetime.now(UTC):
            return None
        return token

    def for_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID, limit: int, offset: int) -> list[dict[str, Any]]:
        return self._select(
            "tenant_id = {t:UUID} AND run_id = {run:UUID} ORDER BY created_at, id LIMIT {n:UInt32} OFFSET {o:UInt32}",
            {"t": tenant_id, "run": run_id, "n": limit, "o": offset},
        )
