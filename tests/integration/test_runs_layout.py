"""The `runs` storage layout: fresh stores get small granules and compression blocks, and a data directory created
with the earlier layout (2,048-row granules, which cannot be ALTERed) still starts and gets the block sizes."""

from __future__ import annotations

import re
from pathlib import Path

from storage import Storage, migrations

BLOCKS = "min_compress_block_size = 4096, max_compress_block_size = 65536"


def _open(root: Path) -> Storage:
    return Storage.open(f"chdb://{root / 'clickhouse'}", f"file://{root / 'blobs'}")


def _runs_settings(storage: Storage) -> str:
    engine = storage.clickhouse.client().query("SELECT engine_full FROM system.tables WHERE name = 'runs'")
    return engine.result_rows[0][0].split(" SETTINGS ", 1)[1]


def test_fresh_store_layout(tmp_path: Path) -> None:
    storage = _open(tmp_path)
    try:
        assert _runs_settings(storage) == f"index_granularity = 256, {BLOCKS}"
    finally:
        storage.close()


def test_store_created_with_the_earlier_layout_starts(tmp_path: Path) -> None:
    storage = _open(tmp_path)
    try:
        client = storage.clickhouse.client()
        # Rebuild `runs` as the earlier 0001 created it, and forget that the block sizes were applied.
        runs_ddl = [s for m in migrations.load() if m.version < 40 for s in m.statements()]
        runs_ddl = [s for s in runs_ddl if re.search(r"(CREATE TABLE IF NOT EXISTS|ALTER TABLE) runs\b", s)]
        client.command("DROP TABLE run_ids_mv SYNC")
        client.command("DROP TABLE runs SYNC")
        client.command(re.sub(r"SETTINGS .*$", "SETTINGS index_granularity = 2048", runs_ddl[0], flags=re.S))
        for statement in runs_ddl[1:]:
            client.command(statement)
        client.command(next(s for m in migrations.load() for s in m.statements() if "run_ids_mv" in s))
        client.command("DELETE FROM schema_migrations WHERE version >= 40")
    finally:
        storage.close()

    storage = _open(tmp_path)
    try:
        assert _runs_settings(storage) == f"index_granularity = 2048, {BLOCKS}"
        versions = storage.clickhouse.client().query("SELECT max(version) FROM schema_migrations FINAL")
        assert versions.result_rows[0][0] == migrations.load()[-1].version
    finally:
        storage.close()
