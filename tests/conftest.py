from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest
from langsmith import Client

from storage import Storage
from tests.support import S3_ENV, MotoServer, Server
from tracehouse import compiled


def pytest_configure(config: pytest.Config) -> None:
    refusal = compiled.refusal()
    if refusal:
        raise pytest.UsageError(refusal)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the moto server; AWS credentials set for boto3 in this process and children."""
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    name = f"th-{uuid.uuid4().hex}"
    boto3.client("s3", endpoint_url=moto_server.url).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One embedded-mode server per test module (chDB start-up is the slow part)."""
    srv = Server(tmp_path_factory.mktemp("server") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Client]:
    """The real langsmith SDK against the module's server; flushed at the end so no trace is left unsent."""
    sdk = Client(api_url=server.url, api_key="unused")
    yield sdk
    sdk.flush()


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    """Embedded storage opened in the test process, one per module (chDB serves one data directory per process at
    a time, and closing it before the next module's opens keeps to that)."""
    root = tmp_path_factory.mktemp("storage")
    opened = Storage.open(f"chdb://{root}/ch", f"file://{root}/blobs")
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _no_proxy() -> None:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
