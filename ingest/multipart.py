"""multipart/form-data splitting for `POST /runs/multipart`.

Hand-written on purpose: python-multipart's callback parser took 7.0 ms per SDK-shaped request of 100 runs
(500 parts, 237 KB), ~70% of a core at the 10,000 runs/s target; splitting on the delimiter here takes 0.6 ms,
and 0.16 ms in C (`ingest/_multipart.c`) for the bodies whose every part has the SDK's header. The body is already
in memory (size-bounded), so a streaming parser buys nothing here.
"""

from __future__ import annotations

import re

from schemas import ApiError

try:  # SDK bodies split in C (6.4 -> 1.6 µs per SDK run); built where a C compiler is available (setup.py)
    from ingest._multipart import sdk_parts
except ImportError:
    sdk_parts = None

_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
_LENGTH_PARAM = re.compile(rb";\s*length=(\d+)", re.IGNORECASE)
# The Python SDK's exact part header (protocol §4.3), recognised by its fixed pieces: the general header loop
# below was 70% of splitting a request (measured 7 -> 2 µs per part), and a regular expression that matched the
# header in one go took 0.85 µs per part against 0.6 compiled. Anything else takes the general path.
_SDK_DISPOSITION = b'Content-Disposition: form-data; name="'
_SDK_TYPE = b'"\r\nContent-Type: '
_SDK_LENGTH = b"\r\nContent-Length: "
_JSON = b"application/json"


class Part:
    """A plain class, which mypyc compiles to a native one: constructing a NamedTuple runs its `__new__` in the
    interpreter (~0.3 µs per part), and a frozen dataclass's `__init__` cost 4 µs."""

    __slots__ = ("content_type", "data", "name")

    def __init__(self, name: str, content_type: str, data: bytes) -> None:
        self.name = name
        self.content_type = content_type
        self.data = data


def boundary_of(content_type: str) -> str:
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, f"expected multipart/form-data, got {content_type or 'no Content-Type'!r}")
    match = _BOUNDARY.search(content_type)
    if not match:
        raise ApiError(400, "multipart Content-Type has no boundary")
    return match.group(1)


def split_parts(body: bytes, boundary: str) -> list[Part]:
    """Parts in body order. Per-part `Content-Length` or `; length=` are checked when present, not required
    (the JS SDK and file attachments use the parameter form, protocol §4.3)."""
    delimiter = b"--" + boundary.encode("latin-1")
    if sdk_parts is not None:
        parts = sdk_parts(body, delimiter, Part)
        if parts is not None:
            return parts
    return split_any(body, delimiter)


def split_any(body: bytes, delimiter: bytes) -> list[Part]:
    """`split_parts` in Python: for any body, and where `ingest._multipart` is not built."""
    start = body.find(delimiter)
    if start < 0:
        raise ApiError(400, "malformed multipart body: boundary not found")
    chunks = body[start + len(delimiter) :].split(b"\r\n" + delimiter)
    if not chunks[-1].startswith(b"--"):
        raise ApiError(400, "malformed multipart body: missing closing boundary")
    parts = []
    for index, chunk in enumerate(chunks[:-1]):
        if not chunk.startswith(b"\r\n"):
            raise ApiError(400, f"malformed multipart body: bad delimiter before part {index}")
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        if not sep:
            raise ApiError(400, f"malformed multipart body: part {index} has no header terminator")
        parts.append(_part(index, head, data))
    return parts


def _part(index: int, head: bytes, data: bytes) -> Part:
    sdk = _sdk_part(head, data)
    if sdk is not None:
        return sdk
    name: str | None = None
    content_type = "application/octet-stream"
    length: int | None = None
    for line in head.split(b"\r\n"):
        colon = line.find(b":")
        key = line[:colon].strip().lower()
        value = line[colon + 1 :].strip()
        if key == b"content-disposition":
            start = value.find(b'name="')
            if start >= 0:
                end = value.find(b'"', start + 6)
                name = value[start + 6 : end].decode("utf-8", "replace") if end > 0 else None
        elif key == b"content-type":
            semicolon = value.find(b";")
            if semicolon >= 0:
                param = _LENGTH_PARAM.search(value, semicolon)
                if param:
                    length = int(param.group(1))
                value = value[:semicolon].strip()
            content_type = value.decode("latin-1") or content_type
        elif key == b"content-length":
            if not value.isdigit():
                raise ApiError(400, f"part {index}: invalid Content-Length {value.decode('latin-1')!r}")
            length = int(value)
    if name is None:
        raise ApiError(400, f"part {index} has no Content-Disposition name")
    if length is not None and length != len(data):
        raise _length_mismatch(name, length, len(data))
    return Part(name, content_type, data)


def _sdk_part(head: bytes, data: bytes) -> Part | None:
    """The part, when `head` is exactly the SDK's header with a plain name and content type (what the general
    path reads the same way); else None."""
    if not head.startswith(_SDK_DISPOSITION):
        return None
    name_end = head.find(b'"', len(_SDK_DISPOSITION))
    if name_end <= len(_SDK_DISPOSITION) or not head.startswith(_SDK_TYPE, name_end):
        return None
    type_start = name_end + len(_SDK_TYPE)
    type_end = head.find(b"\r", type_start)
    if type_end <= type_start or not head.startswith(_SDK_LENGTH, type_end):
        return None
    raw_name, content_type = head[len(_SDK_DISPOSITION) : name_end], head[type_start:type_end]
    length = head[type_end + len(_SDK_LENGTH) :]
    # find(), not `in`: bytes' `in` first tries its operand as an int and formats the error it then drops (~0.4 µs)
    if raw_name.find(b"\n") >= 0 or not length.isdigit():
        return None
    if content_type == _JSON:  # the SDK's type of every part but attachments
        type_text = "application/json"
    elif _plain_type(content_type):
        type_text = content_type.decode("latin-1")
    else:
        return None
    name = raw_name.decode("utf-8", "replace")
    declared = int(length)
    if declared != len(data):
        raise _length_mismatch(name, declared, len(data))
    return Part(name, type_text, data)


def _plain_type(content_type: bytes) -> bool:
    """A content type without parameters or surrounding whitespace: what the general path keeps whole."""
    return content_type.find(b";") < 0 and content_type.strip() == content_type


def _length_mismatch(name: str, declared: int, received: int) -> ApiError:
    return ApiError(
        400, f"part {name!r}: declared length {declared} but {received} bytes received", detail={"part": name}
    )
