"""ClickHouse access for both deployments through `clickhouse-connect`: `chdb:///dir` or `http(s)://…/db`.

The rest of tracehouse only sees `ClickHouse`: one object that hands each thread its own client, so that
concurrent inserts and queries do not serialise on one connection (chDB clients hold a per-handle lock;
HTTP clients keep per-session state). Clients on one chDB path share the same embedded engine.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from storage import metrics

DEFAULT_DATABASE = "tracehouse"

# Settings every query runs with: FINAL reads that do not merge across partitions are much cheaper, and our
# partition key (month of start_time) never changes between versions of a row, so it is correct. The batcher's
# lookups name up to 50,000 run ids in one literal (`storage.runs.id_sets`), beyond the default 256 KiB of SQL
# text ClickHouse parses; set per query instead, on chDB, it cost ~5 ms per lookup (measured).
SESSION_SETTINGS: dict[str, Any] = {"do_not_merge_across_partitions_select_final": 1, "max_query_size": 4 * 1024 * 1024}


@dataclass(frozen=True, slots=True)
class Target:
    """Where ClickHouse is, parsed once from the URL so errors name the setting at start-up."""

    kind: str  # "chdb" or "http"
    database: str
    path: str = ""  # chdb data directory
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""
    secure: bool = False

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme == "chdb":
            if not parts.path or parts.path == "/":
                raise ValueError("chdb URL needs an absolute data directory, e.g. chdb:///var/lib/tracehouse/ch")
            return cls(kind="chdb", database=DEFAULT_DATABASE, path=parts.path)
        if parts.scheme in ("http", "https"):
            if not parts.hostname:
                raise ValueError("ClickHouse URL has no host")
            secure = parts.scheme == "https"
            return cls(
                kind="http",
                database=parts.path.strip("/") or DEFAULT_DATABASE,
                host=parts.hostname,
                port=parts.port or (8443 if secure else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                secure=secure,
            )
        raise ValueError(f"unsupported scheme {parts.scheme!r}: use chdb:///dir or http(s)://user:pass@host:port/db")


def storable(value: Any) -> Any:
    """`value` with lone surrogates (valid in JSON text, not in UTF-8) replaced by U+FFFD, recursively.

    Payload columns hold JSON text that escapes them, so payloads round-trip exactly; this only touches the
    rare plain string (a run name, a metadata value, a filter literal) that carries one, which the driver
    could not encode and which would otherwise fail its whole batch."""
    if isinstance(value, str):
        return value if value.isascii() else value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list | tuple):
        return type(value)(storable(v) for v in value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    return value


class SafeClient:
    """The driver's client, with text that UTF-8 cannot carry made storable: always in query parameters
    (small), and in inserted data only when the driver refused it (free in the common case)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query(self, query: str, parameters: Any = None, **kwargs: Any) -> Any:
        return self._client.query(query, parameters=storable(parameters), **kwargs)

    def command(self, cmd: str, parameters: Any = None, **kwargs: Any) -> Any:
        return self._client.command(cmd, parameters=storable(parameters), **kwargs)

    def insert(self, table: str, data: Any, **kwargs: Any) -> Any:
        try:
            return self._client.insert(table, data, **kwargs)
        except UnicodeEncodeError:
            return self._client.insert(table, storable(list(data)), **kwargs)


class ClickHouse:
    """Thread-local clients for one target; `client()` is the only way code reaches ClickHouse."""

    def __init__(self, target: Target, *, cluster: str | None = None) -> None:
        self.target = target
        self.cluster = cluster
        self._local = threading.local()
        self._clients: dict[threading.Thread, SafeClient] = {}
        self._lock = threading.Lock()

    @property
    def database(self) -> str:
        return self.target.database

    def client(self) -> SafeClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = SafeClient(self._connect(self.target.database))
            self._local.client = client
            # Threads come and go (the server's worker threads retire when idle): a new client closes those of
            # threads that ended, so their number stays that of the live threads.
            with self._lock:
                ended = [thread for thread in self._clients if not thread.is_alive()]
                stale = [self._clients.pop(thread) for thread in ended]
                self._clients[threading.current_thread()] = client
                metrics.CLICKHOUSE_CLIENTS.set(len(self._clients))
            for old in stale:
                old.close()
        return client

    def admin_client(self) -> Client:
        """A client without a default database, for creating it; the caller closes it."""
        return self._connect(None)

    def _connect(self, database: str | None) -> Client:
        t = self.target
        if t.kind == "chdb":
            os.makedirs(t.path, exist_ok=True)
            return clickhouse_connect.get_client(dsn=f"chdb://{t.path}", database=database, settings=SESSION_SETTINGS)
        return clickhouse_connect.get_client(
            host=t.host,
            port=t.port,
            username=t.username,
            password=t.password,
            secure=t.secure,
            database=database or "default",
            settings=SESSION_SETTINGS,
            autogenerate_session_id=False,
            compress="lz4",
        )

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            metrics.CLICKHOUSE_CLIENTS.set(0)
        for client in clients:
            client.close()
        self._local = threading.local()
