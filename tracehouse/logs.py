"""Log set-up: text for people, or one JSON object per line for log pipelines (`TRACEHOUSE_LOG_FORMAT=json`).

In JSON mode uvicorn's access records become fields (client, method, path, status) rather than one formatted
string, so a pipeline can filter on status or path without parsing text. (Named `logs`, not `logging`, so that
no module of this package can shadow the standard library's.)
"""

from __future__ import annotations

import logging
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _AccessFields(logging.Filter):
    """uvicorn logs each request with (client, method, path, HTTP version, status) as the format arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            record.client, record.method, record.path, record.http_version, record.status = record.args
        return True


def configure(level: str, fmt: Literal["text", "json"]) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter(_FORMAT, timestamp=True))
        logging.getLogger("uvicorn.access").addFilter(_AccessFields())
    else:
        handler.setFormatter(logging.Formatter(_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
