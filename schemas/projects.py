"""Projects (LangSmith "sessions")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

DEFAULT_PROJECT_NAME = "default"


def project_id_for_name(tenant_id: uuid.UUID, name: str) -> uuid.UUID:
    """Projects created implicitly from a run's `session_name` get an id derived from the name, so that two
    ingest replicas racing to create the same project agree on its id without coordinating."""
    return uuid.uuid5(tenant_id, f"project:{name}")


class Project(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    description: str | None = None
    start_time: datetime
    end_time: datetime | None = None
    extra: dict[str, Any] | None = Field(default_factory=dict)
    reference_dataset_id: uuid.UUID | None = None
    short_ttl_days: int | None = None
    long_ttl_days: int | None = None
