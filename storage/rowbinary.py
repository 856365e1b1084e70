"""Rows in ClickHouse's RowBinary format, as `runs` is inserted (`storage.runs.pack_rows`).

RowBinary rather than MsgPack: ClickHouse parsed the same 30,000 stored runs in 16-17 µs of CPU per row from
RowBinary against 21-22 from MsgPack (3 rounds each, alternated; the bytes made by ClickHouse itself, so only its
parsing differs). Like MsgPack, and unlike the columnar Native format, a row's bytes are the concatenation of its
values', so rows packed apart (in the decode workers) and pieces of rows (the columns only the batcher knows) join
into one insert by concatenation. No library writes RowBinary row by row from Python values; the driver writes
Native.

A schema is one code per column, in order, each optionally prefixed by `?` (Nullable) or `[` (Array):
`U` UUID (text or `uuid.UUID`), `S` and `Y` String (`str`, or `bytes` as they are; `Y` reads back as bytes),
`b` Bool, `B` UInt8, `H` UInt16, `Q` UInt64, `T` DateTime64 as ticks (Int64), `F` Float64, `M` Map(String, String).
LowCardinality(String) is written as String. Text that UTF-8 cannot carry (a lone surrogate) is made storable,
as `SafeClient.insert` does for the driver.

This module is the reference and the fallback; `storage/_rowbinary.c` packs and reads rows in C where it is built
(setup.py), and tests/unit/test_rowbinary.py checks that both agree. Interpreted, this takes ~50 µs to pack a run's
row and as long to read one (C ~3 and ~5, msgpack's C library ~4 and ~6).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from storage.clickhouse import storable

_U8, _U16, _U64, _I64, _F64 = (struct.Struct(f"<{c}") for c in "BHQqd")
_INTEGERS = {"b": _U8, "B": _U8, "H": _U16, "Q": _U64, "T": _I64}
_PREFIXES = "?["


def columns(schema: str) -> list[str]:
    """The schema's codes, one per column (`?U`, `[S`, `Q`, ...)."""
    out: list[str] = []
    at = 0
    while at < len(schema):
        size = 2 if schema[at] in _PREFIXES else 1
        out.append(schema[at : at + size])
        at += size
    return out


def pack_rows_py(rows: Iterable[Sequence[Any]], schema: str) -> list[bytes]:
    codes = columns(schema)
    packed = []
    for row in rows:
        if len(row) != len(codes):
            raise ValueError(f"a row of {len(row)} values for a schema of {len(codes)} columns")
        out = bytearray()
        for code, value in zip(codes, row, strict=True):
            _pack(out, code, value)
        packed.append(bytes(out))
    return packed


def _pack(out: bytearray, code: str, value: Any) -> None:
    if code[0] == "?":
        if value is None:
            out.append(1)
            return
        out.append(0)
        code = code[1]
    elif code[0] == "[":
        _varint(out, len(value))
        for item in value:
            _pack(out, code[1], item)
        return
    if value is None:
        raise TypeError(f"None for a column of code {code!r}, which is not Nullable")
    if code in ("S", "Y"):
        _string(out, value)
    elif code == "U":
        data = (value if isinstance(value, uuid.UUID) else uuid.UUID(value)).bytes
        out += data[7::-1]
        out += data[15:7:-1]
    elif code == "M":
        _varint(out, len(value))
        for key, item in value.items():
            _string(out, key)
            _string(out, item)
    elif code == "F":
        out += _F64.pack(value)
    else:
        out += _INTEGERS[code].pack(value)


def _string(out: bytearray, value: Any) -> None:
    if isinstance(value, bytes):
        data = value
    else:
        text = value if isinstance(value, str) else str(value)
        try:
            data = text.encode()
        except UnicodeEncodeError:
            data = storable(text).encode()
    _varint(out, len(data))
    out += data


def _varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def unpack_row_py(data: bytes, schema: str) -> list[Any]:
    """A row `pack_rows` packed, its values as they were given, except that UUIDs come back as canonical text,
    bools as bools and `S` strings as str."""
    values: list[Any] = []
    at = 0
    for code in columns(schema):
        value, at = _unpack(data, at, code)
        values.append(value)
    if at != len(data):
        raise ValueError(f"{len(data) - at} bytes after the row's last column")
    return values


def _unpack(data: bytes, at: int, code: str) -> tuple[Any, int]:
    if code[0] == "?":
        if data[at]:
            return None, at + 1
        return _unpack(data, at + 1, code[1])
    if code[0] == "[":
        count, at = _read_varint(data, at)
        items = []
        for _ in range(count):
            item, at = _unpack(data, at, code[1])
            items.append(item)
        return items, at
    if code in ("S", "Y"):
        raw, at = _read_string(data, at)
        return (raw.decode() if code == "S" else raw), at
    if code == "U":
        raw = data[at : at + 16]
        return str(uuid.UUID(bytes=raw[7::-1] + raw[15:7:-1])), at + 16
    if code == "M":
        count, at = _read_varint(data, at)
        found = {}
        for _ in range(count):
            key, at = _read_string(data, at)
            item, at = _read_string(data, at)
            found[key.decode()] = item.decode()
        return found, at
    kind = _F64 if code == "F" else _INTEGERS[code]
    value = kind.unpack_from(data, at)[0]
    return (bool(value) if code == "b" else value), at + kind.size


def _read_string(data: bytes, at: int) -> tuple[bytes, int]:
    size, at = _read_varint(data, at)
    if at + size > len(data):
        raise ValueError("a string runs past the row's end")
    return data[at : at + size], at + size


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


try:  # in C where it is built (setup.py)
    from storage._rowbinary import pack_rows, unpack_row
except ImportError:
    pack_rows, unpack_row = pack_rows_py, unpack_row_py
