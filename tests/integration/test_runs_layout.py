"""The `runs` storage layout: fresh stores get small granules and compression blocks and the text indexes the
filter compiler queries, and a data directory created with the earlier layout (2,048-row granules, which cannot be
ALTERed) still starts, gets the block sizes and payload codecs, and gets the runs it holds into `runs_by_start`."""

from __future__ import annotations

import re
from pathlib import Path

from query.filter.compiler import METADATA_ENTRIES_SQL, SEARCH_SQL
from storage import Storage, migrations

TENANT, RUN = "00000000-0000-0000-0000-0000000000e1", "00000000-0000-0000-0000-0000000000e2"
BLOCKS = "min_compress_block_size = 4096, max_compress_block_size = 65536"


def _open(root: Path) -> Storage:
    return Storage.open(f"chdb://{root / 'clickhouse'}", f"file://{root / 'blobs'}")


def _runs_settings(storage: Storage) -> str:
    engine = storage.clickhouse.client().query("SELECT engine_full FROM system.tables WHERE name = 'runs'")
    return engine.result_rows[0][0].split(" SETTINGS ", 1)[1]


def _payload_codecs(storage: Storage) -> set[str]:
    """The codecs of `runs`' payload columns (0090: ZSTD level 1)."""
    codecs = storage.clickhouse.client().query(
        "SELECT compression_codec FROM system.columns WHERE database = currentDatabase() AND table = 'runs' "
        "AND name IN ('error', 'inputs', 'outputs', 'extra', 'events', 'serialized', 'inputs_kv', 'outputs_kv')"
    )
    return {codec for (codec,) in codecs.result_rows}


def test_fresh_store_layout(tmp_path: Path) -> None:
    storage = _open(tmp_path)
    try:
        assert _runs_settings(storage) == f"index_granularity = 256, {BLOCKS}"
        assert _payload_codecs(storage) == {"CODEC(ZSTD(1))"}
        indexes = storage.clickhouse.client().query(
            "SELECT name, expr FROM system.data_skipping_indices WHERE database = currentDatabase() AND table = 'runs'"
        )
        expressions = dict(indexes.result_rows)
        # The filter compiler must query the text indexes with their expressions verbatim, or they are not used.
        assert expressions["idx_search"] == SEARCH_SQL
        assert expressions["idx_metadata_entries"] == METADATA_ENTRIES_SQL
        assert "idx_metadata_values" not in expressions
    finally:
        storage.close()


def test_store_created_with_the_earlier_layout_starts(tmp_path: Path) -> None:
    storage = _open(tmp_path)
    try:
        client = storage.clickhouse.client()
        # Rebuild `runs` as the earlier 0001 created it, and forget that the block sizes were applied.
        runs_ddl = [s for m in migrations.load() if m.version < 40 for s in m.statements()]
        runs_ddl = [s for s in runs_ddl if re.search(r"(CREATE TABLE IF NOT EXISTS|ALTER TABLE) runs\b", s)]
        for table in ("run_ids_mv", "runs_by_start_mv", "runs_by_start", "runs"):
            client.command(f"DROP TABLE {table} SYNC")
        client.command(re.sub(r"SETTINGS .*$", "SETTINGS index_granularity = 2048", runs_ddl[0], flags=re.S))
        for statement in runs_ddl[1:]:
            client.command(statement)
        client.command(next(s for m in migrations.load() for s in m.statements() if "run_ids_mv" in s))
        client.command("DELETE FROM schema_migrations WHERE version >= 40")
        client.command(
            f"INSERT INTO run_ids VALUES ('{TENANT}', '{RUN}', '{TENANT}', '2026-01-01 00:00:00', '{RUN}', 1, 0)"
        )
    finally:
        storage.close()

    storage = _open(tmp_path)
    try:
        assert _runs_settings(storage) == f"index_granularity = 2048, {BLOCKS}"
        assert _payload_codecs(storage) == {"CODEC(ZSTD(1))"}  # 0001 wrote ZSTD(3)
        versions = storage.clickhouse.client().query("SELECT max(version) FROM schema_migrations FINAL")
        assert versions.result_rows[0][0] == migrations.load()[-1].version
        located = storage.clickhouse.client().query("SELECT tenant_id, start_time, id FROM runs_by_start")
        assert [(str(t), str(s), str(i)) for t, s, i in located.result_rows] == [(TENANT, "2026-01-01 00:00:00", RUN)]
    finally:
        storage.close()
