"""Cluster DDL rendering: checked on text, since only the single-node form can run on this machine."""

from __future__ import annotations

import re

from storage import migrations


def test_files_are_ordered_and_unique() -> None:
    loaded = migrations.load()
    assert loaded, "no migrations found"
    versions = [m.version for m in loaded]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_single_node_is_unchanged() -> None:
    sql = "CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = ReplacingMergeTree(version, is_deleted) ORDER BY a"
    assert migrations.render(sql, None) == sql


def test_cluster_rendering_of_every_statement() -> None:
    for migration in migrations.load():
        for statement in migration.statements("prod"):
            head = statement.split("(")[0]
            if re.match(r"\s*(CREATE|ALTER|DROP)", statement, re.I):
                assert "ON CLUSTER 'prod'" in statement, statement[:200]
            if "MergeTree" in statement and "ENGINE" in statement:
                assert re.search(
                    r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/\{database\}/"
                    r"\{table\}', '\{replica\}'",
                    statement,
                ), statement
            assert "ON CLUSTER" not in head or head.count("ON CLUSTER") == 1


def test_engine_arguments_are_kept() -> None:
    rendered = migrations.render(
        "CREATE TABLE IF NOT EXISTS runs (a UInt8) ENGINE = ReplacingMergeTree(version, is_deleted) ORDER BY a", "c1"
    )
    assert rendered == (
        "CREATE TABLE IF NOT EXISTS runs ON CLUSTER 'c1' (a UInt8) ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version, is_deleted) ORDER BY a"
    )
    assert migrations.render("CREATE TABLE t (a UInt8) ENGINE = MergeTree() ORDER BY a", "c1") == (
        "CREATE TABLE t ON CLUSTER 'c1' (a UInt8) ENGINE = ReplicatedMergeTree("
        "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}') ORDER BY a"
    )
    mv = migrations.render("CREATE MATERIALIZED VIEW IF NOT EXISTS x_mv TO x AS SELECT 1", "c1")
    assert mv == "CREATE MATERIALIZED VIEW IF NOT EXISTS x_mv ON CLUSTER 'c1' TO x AS SELECT 1"


def test_split_statements_ignores_comments() -> None:
    sql = "-- a comment; with semicolon\nCREATE TABLE a (x UInt8) ENGINE = MergeTree ORDER BY x;\n\nSELECT 1;\n"
    assert migrations.split_statements(sql) == ["CREATE TABLE a (x UInt8) ENGINE = MergeTree ORDER BY x", "SELECT 1"]
