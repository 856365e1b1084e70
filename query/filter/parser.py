"""Recursive-descent parser: filter text -> AST. Grammar:

    expr    := NAME '(' [arg (',' arg)*] ')'
    arg     := expr | literal | NAME
    literal := STRING | NUMBER | true | false | null | '[' [literal (',' literal)*] ']'

`and`/`or` take one or more expressions (nested `and`s are flattened, which is what lets a key and a value
in one `and` refer to the same metadata entry), `not` one; comparators take a field name and a literal.
"""

from __future__ import annotations

from query.filter.ast import And, Compare, Literal, Node, Not, Or, Search
from query.filter.lexer import FilterError, Token, tokenize

MAX_DEPTH = 64  # nesting of and/or/not; deeper filters are rejected rather than recursing without bound
COMPARATORS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "has", "in", "like"})
_CONSTANTS = {"true": True, "false": False, "null": None}


def parse(text: str) -> Node:
    parser = _Parser(tokenize(text))
    if parser.peek().kind == "end":
        raise FilterError("empty filter", 0)
    node = parser.expr()
    parser.expect("end", "end of filter")
    return node


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        token = self.next()
        if token.kind != kind:
            raise FilterError(f"expected {what}, found {_describe(token)}", token.pos)
        return token

    def expr(self) -> Node:
        head = self.expect("ident", "an operator such as eq(...) or and(...)")
        op = head.value.lower()
        self.expect("(", f"'(' after {head.value}")
        if op in ("and", "or"):
            items = self._expressions(head)
            if op == "and":
                flat: list[Node] = []
                for item in items:
                    flat.extend(item.items if isinstance(item, And) else (item,))
                return And(tuple(flat), head.pos)
            return Or(tuple(items), head.pos)
        if op == "not":
            items = self._expressions(head)
            if len(items) != 1:
                raise FilterError("not() takes exactly one expression", head.pos)
            return Not(items[0], head.pos)
        if op == "search":
            return self._search(head)
        if op in COMPARATORS:
            field = self.expect("ident", f"a field name as the first argument of {op}()")
            self.expect(",", f"',' after the field of {op}()")
            value = self.literal()
            self.expect(")", f"')' closing {op}()")
            return Compare(op, field.value.lower(), value, head.pos)
        raise FilterError(f"unknown operator {head.value!r}", head.pos)

    def _expressions(self, head: Token) -> list[Node]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"filter nested deeper than {MAX_DEPTH} levels", head.pos)
        items = [self.expr()]
        while self.peek().kind == ",":
            self.next()
            items.append(self.expr())
        self.depth -= 1
        self.expect(")", f"',' or ')' in {head.value}()")
        return items

    def _search(self, head: Token) -> Search:
        field = None
        if self.peek().kind == "ident":
            field = self.next().value.lower()
            self.expect(",", "',' after the field of search()")
        text = self.expect("string", "a quoted search text")
        self.expect(")", "')' closing search()")
        return Search(text.value, field, head.pos)

    def literal(self) -> Literal:
        token = self.next()
        if token.kind in ("string", "number"):
            return Literal(token.value, token.pos)
        if token.kind == "ident" and token.value.lower() in _CONSTANTS:
            return Literal(_CONSTANTS[token.value.lower()], token.pos)
        if token.kind == "[":
            values: list[object] = []
            if self.peek().kind != "]":
                values.append(self._scalar())
                while self.peek().kind == ",":
                    self.next()
                    values.append(self._scalar())
            self.expect("]", "',' or ']' in a list")
            return Literal(values, token.pos)
        raise FilterError(
            f"expected a value (string, number, true, false, null or list), found {_describe(token)}", token.pos
        )

    def _scalar(self) -> object:
        item = self.literal()
        if isinstance(item.value, list):
            raise FilterError("lists cannot be nested", item.pos)
        return item.value


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "end of filter"
    if token.kind == "string":
        return f"string {token.value!r}"
    return repr(str(token.value))
