"""Blob storage for large payloads and attachments: a local directory (embedded default) or S3 via boto3.

Objects are plain bytes under a key; tracehouse serves them itself (signed URLs in the query service), since
the store's own endpoint is often not reachable by clients. `compress=True` stores a zstd frame and `get()`
undoes it, so callers never see the encoding: the file store marks compressed objects with a `.zst` suffix,
S3 with `ContentEncoding: zstd`. Keys are `/`-separated and hierarchical (tenant/project/trace/run/...), so a whole
trace or project is removed with one prefix delete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import zstandard

_ZSTD_LEVEL = 3
_ZST = ".zst"


class BlobNotFound(KeyError):
    pass


class BlobStore(Protocol):
    def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream", compress: bool = False
    ) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, keys: Iterable[str]) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def delete_older_than(self, age_seconds: float) -> int:
        """Remove objects written more than `age_seconds` ago (retention); returns how many."""
        ...

    def check(self) -> None:
        """Raise if the store is unreachable; used by health checks and at start-up."""
        ...


def _validate_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class FileBlobStore:
    """Blobs as files under one directory; writes go through a temp file and rename, so readers never see
    a partial object and a crash leaves no torn file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _validate_key(key)

    def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream", compress: bool = False
    ) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        target, stale = (
            (path.with_name(path.name + _ZST), path) if compress else (path, path.with_name(path.name + _ZST))
        )
        payload = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(data) if compress else data
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        stale.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        compressed = path.with_name(path.name + _ZST)
        try:
            return zstandard.ZstdDecompressor().decompress(compressed.read_bytes())
        except FileNotFoundError:
            pass
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            path.with_name(path.name + _ZST).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        target = self._path(prefix.rstrip("/"))
        if not target.is_dir():
            return 0
        count = sum(1 for p in target.rglob("*") if p.is_file())
        shutil.rmtree(target, ignore_errors=True)
        return count

    def delete_older_than(self, age_seconds: float) -> int:
        cutoff = time.time() - age_seconds
        count = 0
        for path in self.root.rglob("*"):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                count += 1
        return count

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"blob directory {self.root} is not writable")


class S3BlobStore:
    """Any S3-compatible store through boto3 (AWS, MinIO, R2, GCS interop)."""

    def __init__(
        self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10),
        )
        self._errors = self._client.exceptions

    def _key(self, key: str) -> str:
        return self.prefix + _validate_key(key)

    def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream", compress: bool = False
    ) -> None:
        extra = {"ContentEncoding": "zstd"} if compress else {}
        body = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(data) if compress else data
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, ContentType=content_type, **extra)

    def get(self, key: str) -> bytes:
        try:
            obj = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._errors.NoSuchKey:
            raise BlobNotFound(key) from None
        data = obj["Body"].read()
        if obj.get("ContentEncoding") == "zstd":
            return zstandard.ZstdDecompressor().decompress(data)
        return data

    def delete(self, keys: Iterable[str]) -> None:
        batch = [{"Key": self._key(k)} for k in keys]
        for start in range(0, len(batch), 1000):  # DeleteObjects takes at most 1000 keys
            self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch[start : start + 1000], "Quiet": True}
            )

    def delete_prefix(self, prefix: str) -> int:
        count = 0
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix.rstrip("/")) + "/"):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
                count += len(objects)
        return count

    def delete_older_than(self, age_seconds: float) -> int:
        """Prefer a bucket lifecycle rule in production (no listing); this covers stores without one."""
        cutoff = datetime.now(UTC) - timedelta(seconds=age_seconds)
        count = 0
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            old = [{"Key": o["Key"]} for o in page.get("Contents", []) if o["LastModified"] < cutoff]
            if old:
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": old, "Quiet": True})
                count += len(old)
        return count

    def check(self) -> None:
        self._client.head_bucket(Bucket=self.bucket)


def open_blob_store(url: str, *, s3_endpoint_url: str | None = None, s3_region: str | None = None) -> BlobStore:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not parts.path:
            raise ValueError("file URL needs a directory, e.g. file:///var/lib/tracehouse/blobs")
        return FileBlobStore(Path(parts.path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError("s3 URL needs a bucket, e.g. s3://bucket/prefix")
        return S3BlobStore(parts.netloc, parts.path, endpoint_url=s3_endpoint_url, region=s3_region)
    raise ValueError(f"unsupported scheme {parts.scheme!r}: use file:///dir or s3://bucket/prefix")
