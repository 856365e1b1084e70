"""The filter language's lexer and parser: structure, literals, escapes and error positions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from query.filter import And, Compare, FilterError, Not, Or, Search, parse


def test_nested_expression_structure() -> None:
    node = parse('and(eq(run_type, "llm"), or(gt(latency, "2s"), not(has(tags, \'x\'))))')
    assert isinstance(node, And)
    first, second = node.items
    assert first == Compare("eq", "run_type", first.value, 4) and first.value.value == "llm"
    assert isinstance(second, Or)
    assert isinstance(second.items[1], Not)


def test_nested_ands_are_flattened_so_pairs_group() -> None:
    node = parse('and(eq(metadata_key, "a"), and(eq(metadata_value, "b"), eq(name, "n")))')
    assert isinstance(node, And) and len(node.items) == 3


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("eq(total_tokens, 5)", 5),
        ("eq(total_cost, -0.25)", -0.25),
        ("eq(total_cost, 1e-3)", 0.001),
        ("eq(is_root, true)", True),
        ("eq(is_root, FALSE)", False),
        ("eq(error, null)", None),
        ("in(name, [\"a\", 'b', 3])", ["a", "b", 3]),
        ("in(name, [])", []),
    ],
)
def test_literals(text: str, value: object) -> None:
    node = parse(text)
    assert isinstance(node, Compare) and node.value.value == value


def test_search_with_and_without_field() -> None:
    assert parse('search("hello world")') == Search("hello world", None, 0)
    assert parse("search(name, 'x')") == Search("x", "name", 0)


@given(st.text())
def test_any_string_round_trips_through_double_quoted_json_escapes(text: str) -> None:
    node = parse(f"eq(name, {json.dumps(text)})")
    assert isinstance(node, Compare) and node.value.value == text


@given(st.text(alphabet=st.characters(blacklist_characters="'\\")))
def test_single_quoted_strings_keep_double_quotes(text: str) -> None:
    node = parse(f"eq(name, '{text}')")
    assert isinstance(node, Compare) and node.value.value == text


@pytest.mark.parametrize(
    ("text", "pos", "fragment"),
    [
        ("", 0, "empty filter"),
        ("eq(name", 7, "expected ','"),
        ('eq(name, "x"', 12, "')' closing eq()"),
        ('eq(name, "x") extra', 14, "end of filter"),
        ('foo(name, "x")', 0, "unknown operator"),
        ('and(eq(name, "x"), )', 19, "operator"),
        ('eq(name, "unterminated)', 9, "unterminated string"),
        ('eq(name, "bad \\q")', 14, "unknown escape"),
        ('eq(name, "\\u12")', 10, "four hex digits"),
        ("eq(name, #)", 9, "unexpected character"),
        ("not(eq(a, 1), eq(b, 2))", 0, "exactly one"),
        ("in(name, [[1]])", 10, "nested"),
        ('eq("name", 1)', 3, "field name"),
    ],
)
def test_syntax_errors_name_the_position(text: str, pos: int, fragment: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(text)
    assert caught.value.pos == pos, caught.value
    assert fragment in caught.value.message
    assert f"at position {pos}" in str(caught.value)
