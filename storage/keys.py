"""API keys and tenants. A key is shown once at creation and stored as its SHA-256 hash: the keys are long
random tokens, so a fast hash is enough (no password stretching needed), and lookups stay cheap."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas import DEFAULT_TENANT_ID
from storage.clickhouse import ClickHouse

KEY_PREFIX = "th_"
_VISIBLE = 10  # characters of the key kept in clear for listings
_TENANT_NAME = re.compile(r"[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]{0,127}")
_KEY_FORMAT = re.compile(r"th_[A-Za-z0-9_-]{43}")  # KEY_PREFIX + secrets.token_urlsafe(32)

Grant = tuple[uuid.UUID, ...]  # the tenants a key reaches, its default first; () for an unknown or revoked key


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def tenant_id_for_name(name: str) -> uuid.UUID:
    """The default tenant keeps its fixed id (data written with auth off stays reachable); others derive it."""
    return DEFAULT_TENANT_ID if name == "default" else uuid.uuid5(DEFAULT_TENANT_ID, f"tenant:{name}")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: uuid.UUID
    prefix: str
    tenant_ids: tuple[uuid.UUID, ...]
    tenant_names: tuple[str, ...]
    created_at: datetime
    revoked: bool


class KeyRepository:
    def __init__(self, ch: ClickHouse, *, cache_seconds: float = 10.0) -> None:
        """Lookups are cached for `cache_seconds`: a revoked key stops working within that time."""
        self._ch = ch
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Grant]] = {}  # key hash -> (read at, grant)
        self._lock = threading.Lock()

    def create(self, tenant_names: list[str]) -> tuple[KeyInfo, str]:
        """A new key for these tenants (created if new); returns its info and the key, shown only now.

        A tenant's id derives from its name, so a name is an identity: it must be non-empty printable text."""
        for name in tenant_names:
            if not _TENANT_NAME.fullmatch(name):
                raise ValueError(f"invalid tenant name {name!r}: 1-128 printable characters, not starting with a space")
        client = self._ch.client()
        version = time.time_ns()
        tenant_ids = [tenant_id_for_name(name) for name in tenant_names]
        client.insert(
            "tenants",
            [[tid, name, version, 0] for tid, name in zip(tenant_ids, tenant_names, strict=True)],
            column_names=["id", "name", "version", "is_deleted"],
        )
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = uuid.uuid4()
        client.insert(
            "api_keys",
            [[key_hash(key), key_id, key[:_VISIBLE], tenant_ids, None, version, 0]],
            column_names=["key_hash", "id", "prefix", "tenant_ids", "revoked_at", "version", "is_deleted"],
        )
        info = KeyInfo(key_id, key[:_VISIBLE], tuple(tenant_ids), tuple(tenant_names), datetime.now(UTC), False)
        return info, key

    def list(self) -> list[KeyInfo]:
        rows = (
            self._ch.client()
            .query(
                "SELECT id, prefix, tenant_ids, created_at, revoked_at IS NOT NULL "
                "FROM api_keys FINAL ORDER BY created_at"
            )
            .result_rows
        )
        names = self.tenant_names()
        return [
            KeyInfo(r[0], r[1], tuple(r[2]), tuple(names.get(t, "?") for t in r[2]), r[3], bool(r[4])) for r in rows
        ]

    def revoke(self, id_or_prefix: str) -> int:
        """Revoke keys by id or by their visible prefix; returns how many."""
        client = self._ch.client()
        rows = client.query(
            "SELECT key_hash, id, prefix, tenant_ids FROM api_keys FINAL WHERE revoked_at IS NULL "
            "AND (toString(id) = {k:String} OR prefix = {k:String})",
            parameters={"k": id_or_prefix},
        ).result_rows
        now, version = datetime.now(UTC), time.time_ns()
        if rows:
            client.insert(
                "api_keys",
                [[h, i, p, t, now, version, 0] for h, i, p, t in rows],
                column_names=["key_hash", "id", "prefix", "tenant_ids", "revoked_at", "version", "is_deleted"],
            )
        with self._lock:
            self._cache.clear()
        return len(rows)

    def cached(self, key: str) -> Grant | None:
        """The grant from memory, or None when storage must be asked (`tenants_of`). Never blocks on storage, so
        the server answers most requests without leaving the event loop. A string that cannot be a key is
        refused here, so guessed keys cost no query and fill no cache."""
        if not _KEY_FORMAT.fullmatch(key):
            return ()
        cached = self._cache.get(key_hash(key))
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        return None

    def tenants_of(self, key: str) -> Grant:
        """The grant of a key, read from storage unless cached (blocking: call it off the event loop)."""
        found = self.cached(key)
        if found is not None:
            return found
        digest = key_hash(key)
        rows = (
            self._ch.client()
            .query(
                "SELECT tenant_ids FROM api_keys FINAL WHERE key_hash = {h:String} AND revoked_at IS NULL",
                parameters={"h": digest},
            )
            .result_rows
        )
        found = tuple(rows[0][0]) if rows else ()
        with self._lock:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[digest] = (time.monotonic(), found)
        return found

    def tenant_names(self) -> dict[uuid.UUID, str]:
        return dict(self._ch.client().query("SELECT id, name FROM tenants FINAL").result_rows)
