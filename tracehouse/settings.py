"""Settings from flags or `TRACEHOUSE_*` environment variables; the only place tracehouse reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.batcher import MAX_BATCH_BYTES
from storage.clickhouse import Target

Service = Literal["all", "ingest", "query"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRACEHOUSE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(1984, ge=0, le=65535)
    data_dir: Path = Path("./.tracehouse")
    clickhouse_url: str = ""  # default chdb://<data_dir>/clickhouse
    clickhouse_cluster: str | None = None  # render migrations ON CLUSTER with Replicated* engines
    blob_url: str = ""  # default file://<data_dir>/blobs
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    auth: Literal["none", "api-key"] = "none"
    rate_limit_rps: float = Field(0, ge=0)  # requests per second per tenant; 0 = unlimited
    rate_limit_burst: int = Field(100, ge=1)
    secret_key: str | None = None  # signs attachment/share URLs; generated under data_dir when unset
    max_body_bytes: int = Field(100 * 1024 * 1024, gt=0)  # decompressed request body limit
    max_json_body_bytes: int = Field(10 * 1024 * 1024, gt=0)  # body limit of the routes outside ingest
    max_trace_runs: int = Field(20_000, gt=0)  # runs a read of a whole trace returns at most (422 above)
    blob_offload_bytes: int = Field(20 * 1024, ge=0)  # payloads larger than this go to the blob store
    spool_max_bytes: int = Field(1024 * 1024 * 1024, gt=0)
    flush_interval_ms: int = Field(250, gt=0, le=1000)  # longest delay from ack to ClickHouse at low load
    flush_busy_interval_ms: int = Field(1000, gt=0, le=10_000)  # the same under load: larger, cheaper batches
    # Processes decoding ingest requests (0: in the server process). Two: decoding builds the rows of presumed-new
    # runs too, and one worker bounded acks on 2 cores (OTLP 5,500 -> 7,300 spans/s acked, tests/bench/otlp.py).
    decode_workers: int = Field(2, ge=0, le=64)
    merge_cache_runs: int = Field(50_000, ge=0)  # open runs cached for their patch; 0 with several ingest replicas
    flush_max_bytes: int = Field(MAX_BATCH_BYTES, gt=0)  # spooled bytes per ClickHouse batch
    short_ttl_days: int = Field(14, gt=0)
    long_ttl_days: int = Field(400, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for log pipelines
    request_timeout_s: float = Field(60, gt=0)  # a request (including reading its body) must finish within

    @field_validator("clickhouse_url")
    @classmethod
    def _check_clickhouse(cls, value: str) -> str:
        if value:
            Target.parse(value)
        return value

    @field_validator("blob_url")
    @classmethod
    def _check_blob(cls, value: str) -> str:
        if value and not value.startswith(("file://", "s3://")):
            raise ValueError("use file:///dir or s3://bucket/prefix")
        return value

    @model_validator(mode="after")
    def _defaults_under_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.clickhouse_url:
            self.clickhouse_url = f"chdb://{self.data_dir / 'clickhouse'}"
        if not self.blob_url:
            self.blob_url = f"file://{self.data_dir / 'blobs'}"
        return self

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"


def describe(error: ValidationError) -> str:
    """One line naming the setting as the user would set it."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "settings"
    message = first["msg"].removeprefix("Value error, ")
    return f"invalid setting TRACEHOUSE_{field.upper()} (--{field.replace('_', '-')}): {message}"
