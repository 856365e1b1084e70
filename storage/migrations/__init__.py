"""Versioned schema migrations: plain `NNNN_name.sql` files applied in order and recorded in ClickHouse.

The files are written for a single node. `render()` turns them into cluster DDL (`ON CLUSTER`, `Replicated*`
engines) so that one set of files serves both deployments.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from importlib import resources

from storage.clickhouse import ClickHouse

_MIGRATIONS_TABLE = "schema_migrations"
_CREATE_OR_ALTER = re.compile(
    r"^(\s*(?:CREATE\s+(?:TABLE|MATERIALIZED\s+VIEW|VIEW|DICTIONARY)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"|ALTER\s+TABLE\s+|DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?)[\w.`]+)",
    re.IGNORECASE,
)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*)MergeTree\s*\(([^)]*)\)", re.IGNORECASE)
# Replica path macros expand per table on every server, so one rendering works on every node.
REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self, cluster: str | None = None) -> list[str]:
        return [render(s, cluster) for s in split_statements(self.sql)]


def split_statements(sql: str) -> list[str]:
    """Split on `;` at the end of a line; comment lines are dropped (our files keep `;` out of comments)."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def render(statement: str, cluster: str | None) -> str:
    """Single-node DDL as written, or its cluster form: `ON CLUSTER` and `Replicated*MergeTree` engines."""
    if not cluster:
        return statement
    quoted = "'" + cluster.replace("'", "\\'") + "'"
    statement = _CREATE_OR_ALTER.sub(lambda m: f"{m.group(1)} ON CLUSTER {quoted}", statement, count=1)

    def replicate(m: re.Match[str]) -> str:
        args = m.group(2).strip()
        return f"ENGINE = Replicated{m.group(1)}MergeTree({REPLICA_PATH}{', ' + args if args else ''})"

    return _ENGINE.sub(replicate, statement)


def load() -> list[Migration]:
    found = []
    for entry in resources.files(__package__).iterdir():
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def apply(ch: ClickHouse) -> list[Migration]:
    """Apply pending migrations in order; returns what was applied. Safe to run again or concurrently-ish:
    every statement is idempotent (`IF NOT EXISTS`), and a version is recorded only after all its statements."""
    admin = ch.admin_client()
    try:
        admin.command(_create_database(ch.database, ch.cluster))
    finally:
        admin.close()
    client = ch.client()
    client.command(
        render(
            f"CREATE TABLE IF NOT EXISTS {_MIGRATIONS_TABLE} (version UInt32, name String, checksum String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree() ORDER BY version",
            ch.cluster,
        )
    )
    done = {row[0] for row in client.query(f"SELECT version FROM {_MIGRATIONS_TABLE} FINAL").result_rows}
    applied = []
    for migration in load():
        if migration.version in done:
            continue
        for statement in migration.statements(ch.cluster):
            client.command(statement)
        client.insert(
            _MIGRATIONS_TABLE,
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        applied.append(migration)
    return applied


def _create_database(database: str, cluster: str | None) -> str:
    on_cluster = f" ON CLUSTER '{cluster}'" if cluster else ""
    return f"CREATE DATABASE IF NOT EXISTS `{database}`{on_cluster}"


def wait_until_ready(ch: ClickHouse, *, timeout: float = 30.0) -> None:
    """Server mode: ClickHouse may still be starting when we are; retry the first connection until a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ch.admin_client().close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
