"""The filter AST. Nodes keep the position of their source text so that later errors can point at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Python values a literal can hold: str, int, float, bool, None or a list of those.
Value = Any


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value
    pos: int


@dataclass(frozen=True, slots=True)
class Compare:
    """`op(field, value)` for op in eq, neq, gt, gte, lt, lte, has, in, like."""

    op: str
    field: str
    value: Literal
    pos: int


@dataclass(frozen=True, slots=True)
class Search:
    """`search("text")` (full text over the run) or `search(field, "text")` (substring of one field)."""

    text: str
    field: str | None
    pos: int


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    item: Node
    pos: int


Node = Compare | Search | And | Or | Not
