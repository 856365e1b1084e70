"""The filter compiler: user values only ever become bound parameters, and type errors name the position."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from query.filter import FilterError, Params, compile_filter, parse, search_tokens
from query.filter.compiler import METADATA_ENTRIES_SQL


def compiled(text: str) -> tuple[str, dict[str, object]]:
    params = Params()
    return compile_filter(parse(text), params), params.values


@given(st.text(min_size=1))
def test_user_text_never_reaches_sql(text: str) -> None:
    text = "§" + text  # generated SQL is ASCII: the marked text can only appear in it if it leaked
    literal = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    for template in (
        "eq(name, {})",
        "like(error, {})",
        "and(eq(metadata_key, {0}), neq(metadata_value, {0}))",
        "has(tags, {})",
        "eq(feedback_value, {})",
        "search(name, {})",
    ):
        sql, values = compiled(template.format(literal))
        assert text in values.values() or any(text in v for v in values.values() if isinstance(v, list))
        assert text not in sql


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('eq(nope, "x")', "unknown field 'nope'"),
        ('gt(id, "00000000-0000-0000-0000-000000000000")', "supports eq, neq and in"),
        ('eq(id, "not-a-uuid")', "not a UUID"),
        ('gt(start_time, "yesterday")', "ISO 8601"),
        ('gt(start_time, "0001-01-01T00:00:00+00:01")', "ISO 8601"),  # out of datetime's range in UTC
        ('gt(latency, "fast")', "duration"),
        ('gt(total_tokens, "many")', "not a number"),
        ("gt(end_time, null)", "cannot compare with null"),
        ('like(total_tokens, "1%")', "text fields"),
        ('eq(is_root, "maybe")', "true or false"),
        ('search("!!!")', "no words"),
        ('in(name, "x")', "takes a list"),
        ('gt(metadata_key, "a")', "supports eq, neq, in and like"),
        ('like(feedback_score, "1")', "feedback_score supports"),
    ],
)
def test_type_errors(text: str, fragment: str) -> None:
    with pytest.raises(FilterError) as caught:
        compiled(text)
    assert fragment in caught.value.message


def test_latency_units() -> None:
    for text, seconds in [
        ('gt(latency, "2s")', 2.0),
        ('gt(latency, "500ms")', 0.5),
        ("gt(latency, 3)", 3.0),
        ('gt(latency, "1.5m")', 90.0),
    ]:
        _, values = compiled(text)
        assert list(values.values()) == [seconds]


def test_metadata_conditions_use_the_indexes_and_check_the_entry() -> None:
    for text, hints in [
        ('and(eq(metadata_key, "k"), eq(metadata_value, "v"))', [("METADATA_ENTRIES", "k=v")]),
        ('and(eq(metadata_key, "k"), eq(metadata_value, 3))', [("METADATA_ENTRIES", "k=3")]),
        ('eq(metadata_value, "v")', [("METADATA_ENTRIES", "v")]),
        ('eq(metadata_key, "k")', [("mapKeys(metadata)", "k")]),
        ("has(metadata, '{\"k\": true}')", [("METADATA_ENTRIES", "k=true")]),
    ]:
        sql, values = compiled(text)
        assert "arrayExists" in sql or "metadata[" in sql, text
        for expression, value in hints:
            expression = METADATA_ENTRIES_SQL if expression == "METADATA_ENTRIES" else expression
            assert any(f"has({expression}, {{{name}:String}})" in sql for name, v in values.items() if v == value), text
    sql, _ = compiled('and(eq(metadata_key, "k"), like(metadata_value, "v%"))')
    assert "has(mapKeys(metadata)" in sql and METADATA_ENTRIES_SQL not in sql


def test_search_tokens_match_split_by_non_alpha() -> None:
    assert search_tokens("Hello, WÖrld_x-1 a.b") == ["hello", "wÖrld", "x", "1", "a", "b"]
