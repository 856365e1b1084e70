"""RowBinary rows (`storage.rowbinary`): the C packer writes exactly the bytes the Python reference writes, the
bytes read back as the values packed, and ClickHouse stores them as those values in `runs`' column types."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from storage import Storage, rowbinary
from storage.runs import RUN_CODES, RUN_COLUMNS, from_ticks, insert_settings, pack_rows, schema, ticks

native = pytest.importorskip("storage._rowbinary", reason="built only where a C compiler is available")

texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(["", "é", "\x00", "\U0001f600"])
uuids = st.uuids().map(str) | st.uuids() | st.uuids().map(lambda u: str(u).upper()) | st.uuids().map(lambda u: u.hex)
maps = st.dictionaries(texts, texts, max_size=4)
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "U": uuids,
    "S": texts | texts.map(str.encode),
    "Y": st.binary(max_size=12) | texts,
    "b": st.booleans(),
    "B": st.integers(0, 255),
    "H": st.integers(0, 2**16 - 1),
    "Q": st.integers(0, 2**64 - 1),
    "T": st.integers(-(2**63), 2**63 - 1),
    "F": st.floats(allow_nan=False) | st.integers(-(2**53), 2**53),
    "M": maps,
}


def values(code: str) -> st.SearchStrategy[Any]:
    if code[0] == "?":
        return st.none() | SCALARS[code[1]]
    if code[0] == "[":
        return st.lists(SCALARS[code[1]], max_size=3)
    return SCALARS[code]


RUN_ROWS = st.tuples(*(values(RUN_CODES[column]) for column in RUN_COLUMNS))


def expected(code: str, value: Any) -> Any:
    """What `unpack_row` gives back for a value packed with this code."""
    if value is None:
        return None
    if code[0] == "?":
        return expected(code[1], value)
    if code[0] == "[":
        return [expected(code[1], item) for item in value]
    if code == "U":
        return str(uuid.UUID(str(value)))
    if code == "S":
        return value.decode() if isinstance(value, bytes) else value
    if code == "Y":
        return value.encode() if isinstance(value, str) else value
    if code == "b":
        return bool(value)
    if code == "F":
        return float(value)
    return value


@settings(max_examples=500, deadline=None)
@given(st.lists(RUN_ROWS, max_size=3))
@example([])
def test_c_and_python_write_the_same_bytes_and_read_back_the_values(rows: list[tuple[Any, ...]]) -> None:
    run_schema = schema(RUN_COLUMNS)
    packed = native.pack_rows(rows, run_schema)
    assert packed == rowbinary.pack_rows_py(rows, run_schema)
    codes = rowbinary.columns(run_schema)
    for row, data in zip(rows, packed, strict=True):
        values = [expected(code, value) for code, value in zip(codes, row, strict=True)]
        assert native.unpack_row(data, run_schema) == values
        assert rowbinary.unpack_row_py(data, run_schema) == values


SMALL_SCHEMAS = st.lists(st.sampled_from([*SCALARS, *(f"?{c}" for c in SCALARS), *(f"[{c}" for c in SCALARS)]))


@settings(max_examples=2000, deadline=None)
@given(SMALL_SCHEMAS.map("".join), st.binary(max_size=40))
@example("[U", b"\xff\xff\xff\xff\x0f")
@example("S", b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01")
def test_c_reads_any_bytes_as_python_does_or_refuses_them(row_schema: str, data: bytes) -> None:
    """Truncated rows, lengths past the end, bytes left over, text that is not UTF-8: both refuse, or both read
    the same values."""
    try:
        values = rowbinary.unpack_row_py(data, row_schema)
    except (ValueError, IndexError, struct.error):
        with pytest.raises(ValueError):
            native.unpack_row(data, row_schema)
    else:
        assert native.unpack_row(data, row_schema) == values


@pytest.mark.parametrize(
    ("schema_", "row", "error"),
    [
        ("U", ["not a uuid"], ValueError),
        ("S", [None], TypeError),
        ("?U[S", [None], ValueError),
        ("H", [2**16], (OverflowError, struct.error)),  # C says OverflowError, struct says struct.error
        ("Q", [-1], (OverflowError, struct.error)),
        ("M", [["not", "a map"]], (TypeError, AttributeError)),
    ],
)
def test_bad_values_raise_in_both(schema_: str, row: list[Any], error: Any) -> None:
    with pytest.raises(error):
        native.pack_rows([row], schema_)
    with pytest.raises(error):
        rowbinary.pack_rows_py([row], schema_)


def test_text_utf8_cannot_carry_is_made_storable_in_both() -> None:
    row = ["a\ud800b", {"k\udfff": "\ud83d\ude00"}]
    assert native.pack_rows([row], "SM") == rowbinary.pack_rows_py([row], "SM")
    assert rowbinary.unpack_row(native.pack_rows([row], "SM")[0], "SM") == ["a\ufffdb", {"k\ufffd": "\U0001f600"}]


def test_clickhouse_stores_the_rows_as_the_values_packed(storage: Storage) -> None:
    """Inserted as ingest inserts them, read back through the driver: every column type, NULLs and not, times
    before 1970, a UUID's byte order."""
    tenant, run_id, parent = uuid.uuid4(), str(uuid.uuid4()), str(uuid.uuid4())
    start = datetime(1905, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    full: dict[str, Any] = {
        "tenant_id": str(tenant),
        "session_id": tenant,
        "id": run_id,
        "trace_id": parent,
        "parent_run_id": parent,
        "parent_run_ids": [parent],
        "dotted_order": "d",
        "is_root": False,
        "name": "ünï",
        "run_type": "llm",
        "status": "success",
        "start_time": ticks(start),
        "end_time": 1_700_000_000_000_001,
        "first_token_time": None,
        "error": "boom",
        "inputs": b'{"a":1}',
        "outputs": None,
        "extra": b"{}",
        "events": b"[]",
        "serialized": b"{}",
        "payload_refs": {"inputs": "k"},
        "attachments": {},
        "tags": ["x", "y"],
        "metadata": {"m": "1"},
        "inputs_kv": {"a": "1"},
        "outputs_kv": {},
        "thread_id": "t",
        "reference_example_id": None,
        "prompt_tokens": 10,
        "completion_tokens": 2**63,
        "total_tokens": 0,
        "prompt_cost": 0.5,
        "completion_cost": None,
        "total_cost": 1,
        "prompt_token_details": "{}",
        "completion_token_details": "",
        "prompt_cost_details": "",
        "completion_cost_details": "",
        "ttl_days": 400,
        "version": 7,
        "is_deleted": 0,
    }
    assert list(full) == list(RUN_COLUMNS)
    client = storage.clickhouse.client()
    client.raw_insert(
        "runs",
        RUN_COLUMNS,
        insert_block=b"".join(pack_rows([list(full.values())])),
        fmt="RowBinary",
        settings=insert_settings(storage.clickhouse),
    )
    got = client.query(
        f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE tenant_id = {{t:UUID}}", parameters={"t": tenant}
    ).named_results()
    row = next(got)
    assert row["start_time"].replace(tzinfo=UTC) == start
    assert row["end_time"].replace(tzinfo=UTC) == from_ticks(full["end_time"])
    for column in ("start_time", "end_time"):
        row[column] = full[column]
    for column in ("inputs", "extra", "events", "serialized"):
        row[column] = row[column].encode()
    row["session_id"] = tenant
    for column in ("tenant_id", "id", "trace_id", "parent_run_id"):
        row[column] = str(row[column])
    row["parent_run_ids"] = [str(p) for p in row["parent_run_ids"]]
    assert row == full


def test_run_codes_are_the_types_of_runs_columns(storage: Storage) -> None:
    """Every column an insert writes, in the table's order, with the code of its type: RowBinary carries no
    types, so a code that does not match its column would store garbage, or shift every column after it."""
    codes = {"UUID": "U", "String": "SY", "LowCardinality(String)": "S", "Bool": "b", "UInt8": "B", "UInt16": "H"}
    codes |= {"UInt64": "Q", "DateTime64(6, 'UTC')": "T", "Float64": "F"}
    described = storage.clickhouse.client().query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'runs' "
        "AND default_kind IN ('', 'DEFAULT') AND name != 'inserted_at' ORDER BY position"
    )
    assert tuple(name for name, _ in described.result_rows) == RUN_COLUMNS
    for name, type_ in described.result_rows:
        code = RUN_CODES[name]
        if type_.startswith("Map("):
            assert code == "M", name
            continue
        inner = type_.removeprefix("Nullable(").removeprefix("Array(")
        if inner != type_:
            assert code[0] == ("?" if type_.startswith("Nullable(") else "["), name
            inner, code = inner[:-1], code[1:]
        assert code in codes[inner], (name, type_, code)
