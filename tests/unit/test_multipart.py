"""The C splitter of SDK bodies (`ingest._multipart`) against the Python one it stands in for: on any body it
either declines (None) or returns exactly the parts the Python code reads, and it takes every SDK-shaped body."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest import multipart
from ingest.multipart import Part, split_parts
from schemas import ApiError

native = pytest.importorskip("ingest._multipart", reason="built only where a C compiler is available")

BOUNDARY = "b0undary"
DELIMITER = b"--" + BOUNDARY.encode()


def sdk_header(name: bytes, content_type: bytes, length: bytes) -> bytes:
    return b'Content-Disposition: form-data; name="%s"\r\nContent-Type: %s\r\nContent-Length: %s' % (
        name,
        content_type,
        length,
    )


names = st.one_of(
    st.sampled_from([b"post.1", b"post.1.inputs", b"attachment.1.img", "feedback.é".encode()]),
    st.binary(max_size=12),
)
content_types = st.one_of(
    st.sampled_from([b"application/json", b"image/png", b" text/plain", b"text/plain ", b"a;length=3", b""]),
    st.binary(max_size=10),
)
payloads = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\r\n" + DELIMITER, b"\r\n" + DELIMITER + b"--", b"\r\n\r\n", b"{}"]),
)


@st.composite
def parts(draw: st.DrawFn) -> bytes:
    data = draw(payloads)
    length = str(len(data) + draw(st.sampled_from([0, 0, 0, 1, -1]))).encode()
    head = draw(
        st.one_of(
            st.builds(sdk_header, names, content_types, st.one_of(st.just(length), st.binary(max_size=3))),
            st.just(b'Content-Disposition: form-data; name="general"'),  # the general path's only
            st.binary(max_size=20),
        )
    )
    return b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n" + DELIMITER


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    body = draw(st.sampled_from([b"", b"preamble\r\n"])) + DELIMITER + b"".join(draw(st.lists(parts(), max_size=4)))
    return body + draw(st.sampled_from([b"--\r\n", b"--", b"", b"\r\n", b"--\r\n" + DELIMITER + b"--", b"junk"]))


def python_split(body: bytes) -> list[tuple[str, str, bytes]] | None:
    try:
        return [(p.name, p.content_type, p.data) for p in multipart.split_any(body, DELIMITER)]
    except ApiError:
        return None


@settings(max_examples=3000, deadline=None)
@given(bodies())
@example(DELIMITER + b"--")
@example(b"no delimiter at all")
def test_the_c_splitter_declines_or_agrees(body: bytes) -> None:
    found = native.sdk_parts(body, DELIMITER, Part)
    if found is not None:
        assert [(p.name, p.content_type, p.data) for p in found] == python_split(body)


sdk_names = st.text(min_size=1, max_size=12).map(str.encode).filter(lambda n: b'"' not in n and b"\n" not in n)
plain_payloads = st.binary(max_size=40).filter(lambda data: DELIMITER not in data)


@given(st.lists(st.tuples(sdk_names, st.sampled_from([b"application/json", b"image/png"]), plain_payloads), max_size=5))
def test_the_c_splitter_takes_every_sdk_shaped_body(specs: list[tuple[bytes, bytes, bytes]]) -> None:
    body = DELIMITER
    for name, content_type, data in specs:
        body += b"\r\n" + sdk_header(name, content_type, str(len(data)).encode()) + b"\r\n\r\n" + data
        body += b"\r\n" + DELIMITER
    body += b"--\r\n"
    found = native.sdk_parts(body, DELIMITER, Part)
    assert found is not None, "an SDK body is split in C"
    expected = [(name.decode(), content_type.decode(), data) for name, content_type, data in specs]
    assert [(p.name, p.content_type, p.data) for p in found] == expected == python_split(body)
    assert [(p.name, p.content_type, p.data) for p in split_parts(body, BOUNDARY)] == expected
