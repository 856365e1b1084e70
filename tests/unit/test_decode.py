"""Wire decoding: multipart splitting, bounded decompression, validation, grouping into ops."""

from __future__ import annotations

import gzip
import io
import pickle
import uuid

import pytest
import zstandard

from ingest import decode
from ingest.body import decompress
from ingest.multipart import boundary_of, split_parts
from ingest.validate import normalise
from schemas import ApiError

B = "d5d85d1dd967442d9bd3e6f5d300bbe6"
RUN = "01a20a95-dbac-7068-9c02-8feadd41bb25"


def body(*parts: tuple[str, bytes, str], length_style: str = "header") -> bytes:
    out = b""
    for name, data, ctype in parts:
        if length_style == "header":
            headers = f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
        elif length_style == "param":
            headers = f"Content-Type: {ctype}; length={len(data)}\r\n"
        else:
            headers = f"Content-Type: {ctype}\r\n"
        out += f'--{B}\r\nContent-Disposition: form-data; name="{name}"\r\n{headers}\r\n'.encode() + data + b"\r\n"
    return out + f"--{B}--\r\n".encode()


POST = (
    f"post.{RUN}",
    b'{"id":"%s","name":"agent","run_type":"chain","start_time":"2024-01-01T00:00:00"}' % RUN.encode(),
    "application/json",
)


@pytest.mark.parametrize("style", ["header", "param", "none"])
def test_length_styles(style: str) -> None:
    data = body(POST, (f"post.{RUN}.inputs", b'{"q":"\\u0000x"}', "application/json"), length_style=style)
    decoded = decode.from_multipart(split_parts(data, B))
    (op,) = decoded.ops
    assert op.fields["inputs"] == {"q": "\x00x"}
    assert op.fields["start_time"] == "2024-01-01T00:00:00.000000+00:00", "naive timestamps are UTC"


@pytest.mark.parametrize(
    "headers",
    [
        "Content-Type: application/json\r\nContent-Length: {n}",  # the SDK's exact header: the fast path
        "content-type: application/json\r\ncontent-length: {n}",  # any other spelling: the general path
        "Content-Type: application/json; length={n}",
    ],
)
def test_a_declared_length_that_differs_from_the_part_is_rejected(headers: str) -> None:
    data = b'{"q":1}'

    def raw(declared: int) -> bytes:
        head = f'Content-Disposition: form-data; name="post.{RUN}.inputs"\r\n' + headers.format(n=declared)
        return f"--{B}\r\n{head}\r\n\r\n".encode() + data + f"\r\n--{B}--\r\n".encode()

    with pytest.raises(ApiError, match="declared length 8 but 7 bytes") as error:
        split_parts(raw(len(data) + 1), B)
    assert error.value.status == 400 and error.value.detail == {"part": f"post.{RUN}.inputs"}
    (part,) = split_parts(raw(len(data)), B)
    assert (part.name, part.content_type, part.data) == (f"post.{RUN}.inputs", "application/json", data)


@pytest.mark.parametrize(
    ("head", "name", "content_type"),
    [
        ('name="a\rb"\r\nContent-Type: text/plain\r\nContent-Length: 2', "a\rb", "text/plain"),
        ('name="x"\r\nContent-Type:  text/plain \r\nContent-Length: 2', "x", "text/plain"),
        ('name="x"\r\nContent-Type: text/plain;length=2\r\nContent-Length: 2', "x", "text/plain"),
        ('name="x"\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-Other: 1', "x", "text/plain"),
        ('name="x"; filename="f.txt"\r\nContent-Type: text/plain\r\nContent-Length: 2', "x", "text/plain"),
    ],
)
def test_headers_close_to_the_sdks_are_read_like_any_other(head: str, name: str, content_type: str) -> None:
    """The SDK's exact header has a fast path; one that differs anywhere must read as the general path reads it."""
    raw = f"--{B}\r\nContent-Disposition: form-data; {head}\r\n\r\nok\r\n--{B}--\r\n".encode()
    (part,) = split_parts(raw, B)
    assert (part.name, part.content_type, part.data) == (name, content_type, b"ok")


def test_post_and_patch_in_one_body_keep_body_order_and_attachments() -> None:
    patch = (f"patch.{RUN}", b'{"end_time":"2024-01-01T00:00:01Z","session_id":null}', "application/json")
    data = body(
        POST,
        patch,
        (f"attachment.{RUN}.img", b"\x89PNG", "image/png"),
        (f"patch.{RUN}.outputs", b'{"a":1}', "application/json"),
    )
    ops = decode.from_multipart(split_parts(data, B)).ops
    assert [op.kind for op in ops] == ["post", "patch"]
    assert ops[1].fields["outputs"] == {"a": 1} and "session_id" not in ops[1].fields
    assert ops[1].attachments == {"img": ("image/png", b"\x89PNG")}


def test_feedback_parts_are_collected() -> None:
    fb = (f"feedback.{uuid.uuid4()}", b'{"key":"k","score":1}', "application/json")
    assert decode.from_multipart(split_parts(body(fb), B)).feedback == [{"key": "k", "score": 1}]


@pytest.mark.parametrize(
    ("parts", "status", "needle"),
    [
        ([(f"post.{RUN}", b"{not json", "application/json")], 422, f"post.{RUN}"),
        ([(f"bogus.{RUN}", b"{}", "application/json")], 422, "unknown part"),
        ([POST, (f"patch.{RUN}.outputs", b"{}", "application/json")], 422, "without the main part"),
        ([(f"post.{RUN}", b'{"name":"a","run_type":"nope"}', "application/json")], 422, "run_type"),
        ([("post.not-a-uuid", b'{"name":"a","run_type":"llm"}', "application/json")], 422, "UUID"),
        (
            [(f"post.{RUN}", b'{"name":"a","run_type":"llm","start_time":"yesterday"}', "application/json")],
            422,
            "start_time",
        ),
        (  # in datetime's range as written, not in UTC: converting it overflowed, a 500
            [(f"feedback.{RUN}", b'{"key":"k","created_at":"0001-01-01T00:00:00+00:01"}', "application/json")],
            422,
            "created_at",
        ),
    ],
)
def test_bad_parts_reject_the_request(parts: list[tuple[str, bytes, str]], status: int, needle: str) -> None:
    with pytest.raises(ApiError) as error:
        decode.from_multipart(split_parts(body(*parts), B))
    assert error.value.status == status
    assert needle in error.value.message


def test_malformed_multipart() -> None:
    with pytest.raises(ApiError, match="closing boundary"):
        split_parts(body(POST)[:-10], B)
    with pytest.raises(ApiError, match="boundary not found"):
        split_parts(b"garbage", B)
    with pytest.raises(ApiError) as error:
        boundary_of("application/json")
    assert error.value.status == 415


def test_decompression_is_bounded() -> None:
    bomb = zstandard.ZstdCompressor().compress(b"\0" * 50_000_000)
    with pytest.raises(ApiError) as error:
        decompress(bomb, "zstd", max_bytes=1_000_000)
    assert error.value.status == 413
    stream = io.BytesIO()
    with zstandard.ZstdCompressor(level=1).stream_writer(stream, closefd=False) as writer:  # no content size
        writer.write(b"abc" * 1000)
    assert decompress(stream.getvalue(), "zstd", max_bytes=10_000) == b"abc" * 1000
    assert decompress(gzip.compress(b"hi"), "gzip", max_bytes=10) == b"hi"
    with pytest.raises(ApiError) as error:
        decompress(b"nope", "br", max_bytes=10)
    assert error.value.status == 415


def test_batch_and_dashless_uuid() -> None:
    run = uuid.uuid4()
    decoded = decode.from_batch(
        b'{"post":[{"id":"%s","name":"x","run_type":"tool","inputs":{"a":1}}],'
        b'"patch":[{"id":"%s","outputs":{"b":2}}]}' % (run.hex.encode(), str(run).encode())
    )
    assert [op.run_id for op in decoded.ops] == [str(run), str(run)]
    assert decoded.ops[0].fields["id"] == str(run)


def test_dotted_order_must_end_with_the_run() -> None:
    other = uuid.uuid4()
    with pytest.raises(ApiError, match="dotted_order"):
        normalise("post", RUN, {"name": "a", "run_type": "llm", "dotted_order": f"20240101T000000000000Z{other}"}, "p")


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("0001-01-01T00:00:00.000000+00:00", False),  # the SDK's own form
        ("1899-12-31T23:59:59", False),
        ("2300-01-01T00:00:00Z", False),
        ("1900-01-01T00:00:00.000000+00:00", True),
        ("2299-12-31T23:59:59.999999Z", True),
        ("0001-01-01T00:00:00+00:01", False),  # in datetime's range as written, not in UTC
        ("9999-12-31T23:59:59-00:01", False),
    ],
)
def test_run_times_outside_what_clickhouse_stores_are_refused(value: str, kept: bool) -> None:
    """Such a time stored, but reading the run back (a later patch) sent ClickHouse a parameter it cannot parse."""
    fields = {"name": "a", "run_type": "llm", "start_time": "2026-01-01T00:00:00Z", "end_time": value}
    if kept:
        assert normalise("post", RUN, fields, "post.x").fields["end_time"]
    else:
        with pytest.raises(ApiError, match="end_time must be between 1900 and 2299") as error:
            normalise("post", RUN, fields, "post.x")
        assert error.value.status == 422 and error.value.detail["field"] == "end_time"


def test_inline_attachments_are_decoded() -> None:
    op = decode.from_run(
        "post",
        None,
        {"id": RUN, "name": "a", "run_type": "llm", "attachments": {"att": ["image/png", "iVBORw0KGgpmYWtl"]}},
        "body",
    )
    assert op.attachments["att"][0] == "image/png" and op.attachments["att"][1].startswith(b"\x89PNG")


def test_ops_cross_processes_intact() -> None:
    """OTLP decode workers pickle ops back to the server; a compiled RunOp is rebuilt through its `__init__`."""
    op = decode.from_run("post", None, {"name": "n", "run_type": "llm", "attachments": {"a": ["t", "eA=="]}}, "t")
    op.texts["inputs"] = b"{}"
    again = pickle.loads(pickle.dumps(op, protocol=pickle.HIGHEST_PROTOCOL))
    assert again == op and again.attachments == {"a": ("t", b"x")} and again.texts == {"inputs": b"{}"}
