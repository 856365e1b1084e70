"""Storage: ClickHouse (embedded chDB or server, one code path), migrations, repositories, blob store."""

from __future__ import annotations

from dataclasses import dataclass

from storage import migrations
from storage.blobs import BlobStore, open_blob_store
from storage.clickhouse import ClickHouse, Target
from storage.feedback import FeedbackRepository
from storage.projects import ProjectRepository
from storage.retention import Retention


@dataclass
class Storage:
    """Everything the services need to reach stored data; built once by the composition root."""

    clickhouse: ClickHouse
    blobs: BlobStore
    projects: ProjectRepository
    feedback: FeedbackRepository
    retention: Retention

    @classmethod
    def open(
        cls,
        clickhouse_url: str,
        blob_url: str,
        *,
        s3_endpoint_url: str | None = None,
        s3_region: str | None = None,
        cluster: str | None = None,
        migrate: bool = True,
        short_ttl_days: int = 14,
        long_ttl_days: int = 400,
    ) -> Storage:
        ch = ClickHouse(Target.parse(clickhouse_url), cluster=cluster)
        if ch.target.kind == "http":
            migrations.wait_until_ready(ch)
        if migrate:
            migrations.apply(ch)
        blobs = open_blob_store(blob_url, s3_endpoint_url=s3_endpoint_url, s3_region=s3_region)
        projects = ProjectRepository(ch)
        retention = Retention(ch, projects, short_days=short_ttl_days, long_days=long_ttl_days)
        feedback = FeedbackRepository(ch, on_feedback=retention.upgrade)
        return cls(clickhouse=ch, blobs=blobs, projects=projects, feedback=feedback, retention=retention)

    def close(self) -> None:
        self.retention.close()
        self.clickhouse.close()


__all__ = ["BlobStore", "ClickHouse", "Storage", "Target"]
