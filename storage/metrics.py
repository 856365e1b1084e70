"""Prometheus metrics of the write path and storage, declared once here so that every layer can record them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS_ACCEPTED = Counter("tracehouse_ingest_runs_total", "Runs (posts and patches) acknowledged", ["source"])
FEEDBACK_ACCEPTED = Counter("tracehouse_ingest_feedback_total", "Feedback items acknowledged through ingest")
SPOOL_BYTES = Gauge("tracehouse_spool_bytes", "Bytes acknowledged but not yet stored in ClickHouse")
FLUSH_RECORDS = Histogram(
    "tracehouse_flush_batch_records", "Spool records per ClickHouse batch", buckets=(1, 5, 10, 25, 50, 100, 250, 1000)
)
FLUSH_SECONDS = Histogram(
    "tracehouse_flush_seconds",
    "Time from staging one batch (decode, merge) to its write completing",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FLUSH_FAILURES = Counter("tracehouse_flush_failures_total", "Batches that storage refused (kept in the spool)")
QUARANTINED = Counter("tracehouse_spool_quarantined_total", "Spool records set aside because storage refused them")
CLICKHOUSE_CLIENTS = Gauge("tracehouse_clickhouse_clients", "Open ClickHouse clients (one per thread that queries)")
