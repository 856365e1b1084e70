"""JSON log lines: one object per record, access records as fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tracehouse import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.filters[:])
    yield
    root.handlers[:], access.filters[:] = saved[0], saved[2]
    root.setLevel(saved[1])


def test_json_lines_with_access_fields(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/runs/x", "1.1", 404)
    logging.getLogger("tracehouse").warning("spool %s full", "is", extra={"spool_bytes": 5})
    logging.getLogger("tracehouse").debug("not at info level")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2
    access, warning = lines
    assert access["method"] == "GET" and access["path"] == "/runs/x" and access["status"] == 404
    assert access["message"] == '127.0.0.1:5000 - "GET /runs/x HTTP/1.1" 404' and access["levelname"] == "INFO"
    assert warning["message"] == "spool is full" and warning["spool_bytes"] == 5 and "timestamp" in warning


def test_text_format(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("warning", "text")
    logging.getLogger("tracehouse").warning("plain")
    assert capsys.readouterr().err.rstrip().endswith("WARNING tracehouse plain")
