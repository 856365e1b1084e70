"""Storage: ClickHouse (embedded chDB or server, one code path), migrations, repositories, blob store."""

from __future__ import annotations

from dataclasses import dataclass

from storage import migrations
from storage.blobs import BlobStore, open_blob_store
from storage.clickhouse import ClickHouse, Target
from storage.projects import ProjectRepository


@dataclass
class Storage:
    """Everything the services need to reach stored data; built once by the composition root."""

    clickhouse: ClickHouse
    blobs: BlobStore
    projects: ProjectRepository

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
    ) -> Storage:
        ch = ClickHouse(Target.parse(clickhouse_url), cluster=cluster)
        if ch.target.kind == "http":
            migrations.wait_until_ready(ch)
        if migrate:
            migrations.apply(ch)
        blobs = open_blob_store(blob_url, s3_endpoint_url=s3_endpoint_url, s3_region=s3_region)
        return cls(clickhouse=ch, blobs=blobs, projects=ProjectRepository(ch))

    def close(self) -> None:
        self.clickhouse.close()


__all__ = ["BlobStore", "ClickHouse", "Storage", "Target"]
