"""The run filter language: lexer -> parser -> AST -> parameterised ClickHouse SQL.

`parse()` turns text such as `and(eq(run_type, "llm"), gt(latency, "2s"))` into an AST; `compile_filter()` turns
the AST into a SQL condition whose user-provided values are all bound parameters.
"""

from query.filter.ast import And, Compare, Literal, Node, Not, Or, Search
from query.filter.compiler import FIELDS, Params, compile_filter, search_tokens
from query.filter.lexer import FilterError
from query.filter.parser import parse

__all__ = [
    "FIELDS",
    "And",
    "Compare",
    "FilterError",
    "Literal",
    "Node",
    "Not",
    "Or",
    "Params",
    "Search",
    "compile_filter",
    "parse",
    "search_tokens",
]
