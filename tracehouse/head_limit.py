"""A size limit for request heads (request line and headers).

uvicorn's httptools protocol buffers a request's head without bound (a request with a 50 MB header was
accepted, measured), so one connection could hold any amount of memory before the app sees the request. h11
has a limit but parses in Python. This protocol counts the bytes received while a head is being parsed and
answers 431 past the limit.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Bounds memory per connection, well above real heads (nginx's default is 32 KiB; uvicorn reads 256 KiB at a
# time, so a head read in one piece is never counted past this by the body bytes that follow it).
MAX_HEAD_BYTES = 1024 * 1024


class BoundedHeadProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _in_head = True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head:
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            body = orjson.dumps(
                {"error": f"request head larger than {MAX_HEAD_BYTES} bytes", "status": 431, "detail": {}}
            )
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        super().on_message_complete()
