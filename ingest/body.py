"""Reading request bodies within limits: size before and after decompression, so no body can exhaust memory.

The SDK's zstd frames are streamed and carry no content size (protocol §4.5), so decompression is always
incremental with a running bound, never a one-shot call that trusts a header.
"""

from __future__ import annotations

import io
import zlib

import zstandard
from starlette.requests import Request

from schemas import ApiError

_CHUNK = 1 << 20


async def read_raw(request: Request, *, max_bytes: int) -> bytes:
    """The body as sent (maybe compressed), or 413 if it exceeds `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def content_encoding(request: Request) -> str:
    return request.headers.get("content-encoding", "identity").strip().lower()


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The decoded body, or 413 if the body or its decompressed form exceeds `max_bytes`."""
    return decompress(await read_raw(request, max_bytes=max_bytes), content_encoding(request), max_bytes=max_bytes)


def decompress(body: bytes, encoding: str, *, max_bytes: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding == "zstd":
        return _zstd(body, max_bytes)
    if encoding in ("gzip", "x-gzip"):
        return _zlib(body, 16 + zlib.MAX_WBITS, max_bytes, "gzip")
    if encoding == "deflate":
        # RFC 9110 "deflate" is zlib-wrapped; some clients send raw deflate. Accept both.
        return _zlib(body, zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS, max_bytes, "deflate")
    raise ApiError(415, f"unsupported Content-Encoding {encoding!r}; use zstd, gzip or deflate")


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"decompressed body exceeds the limit of {max_bytes} bytes")


def _zstd(body: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True) as reader:
            while piece := reader.read(min(_CHUNK, max_bytes + 1 - len(out))):
                out += piece
                if len(out) > max_bytes:
                    raise _too_large(max_bytes)
    except zstandard.ZstdError as exc:
        raise ApiError(400, f"body is not valid zstd: {exc}") from None
    return bytes(out)


def _zlib(body: bytes, wbits: int, max_bytes: int, name: str) -> bytes:
    decoder = zlib.decompressobj(wbits)
    out = bytearray()
    try:
        chunk = body
        while chunk:
            out += decoder.decompress(chunk, max_bytes + 1 - len(out))
            if len(out) > max_bytes:
                raise _too_large(max_bytes)
            chunk = decoder.unconsumed_tail
        out += decoder.flush()
    except zlib.error as exc:
        raise ApiError(400, f"body is not valid {name}: {exc}") from None
    if len(out) > max_bytes:
        raise _too_large(max_bytes)
    if not decoder.eof:
        raise ApiError(400, f"body is a truncated {name} stream")
    return bytes(out)
