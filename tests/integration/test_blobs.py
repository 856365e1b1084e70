"""Blob store against a real S3 protocol server (moto, server mode) and the local directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storage.blobs import BlobNotFound, BlobStore, FileBlobStore, open_blob_store
from tests.support import MotoServer


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "file":
        return open_blob_store(f"file://{tmp_path / 'blobs'}")
    bucket = request.getfixturevalue("s3_bucket")
    moto: MotoServer = request.getfixturevalue("moto_server")
    return open_blob_store(f"s3://{bucket}/pre/fix", s3_endpoint_url=moto.url, s3_region="us-east-1")


def test_put_get_delete(store: BlobStore) -> None:
    payload = b'{"text": "' + b"x" * 50_000 + b'"}'
    store.put("t/p/trace/run/inputs", payload, content_type="application/json", compress=True)
    store.put("t/p/trace/run/photo", b"\x89PNG raw", content_type="image/png")
    assert store.get("t/p/trace/run/inputs") == payload
    assert store.get("t/p/trace/run/photo") == b"\x89PNG raw"
    store.put("t/p/trace/run/inputs", b"replaced")  # overwrite switches encoding cleanly
    assert store.get("t/p/trace/run/inputs") == b"replaced"
    store.delete(["t/p/trace/run/photo"])
    with pytest.raises(BlobNotFound):
        store.get("t/p/trace/run/photo")
    store.check()


def test_delete_prefix_removes_a_whole_trace_only(store: BlobStore) -> None:
    for i in range(3):
        store.put(f"t/p/trace1/run{i}/inputs", b"a", compress=True)
    store.put("t/p/trace2/run/inputs", b"b")
    assert store.delete_prefix("t/p/trace1") == 3
    with pytest.raises(BlobNotFound):
        store.get("t/p/trace1/run0/inputs")
    assert store.get("t/p/trace2/run/inputs") == b"b"


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_rejects_unsafe_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        open_blob_store(f"file://{tmp_path}").put(key, b"x")


def test_delete_older_than(store: BlobStore, tmp_path: Path) -> None:
    store.put("t/p/old/run/inputs", b"old", compress=True)
    store.put("t/p/new/run/inputs", b"new")
    if isinstance(store, FileBlobStore):  # age one object; S3 objects cannot be back-dated, so age is 0 there
        for path in (tmp_path / "blobs" / "t/p/old/run").iterdir():
            os.utime(path, (time.time() - 7200, time.time() - 7200))
        assert store.delete_older_than(3600) == 1
        assert store.get("t/p/new/run/inputs") == b"new"
        with pytest.raises(BlobNotFound):
            store.get("t/p/old/run/inputs")
    else:
        assert store.delete_older_than(3600) == 0
        assert store.delete_older_than(-1) == 2
