"""Tokens of the filter language. Strings take single or double quotes with JSON-style escapes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["ident", "string", "number", "(", ")", ",", "[", "]", "end"]


class FilterError(ValueError):
    """A filter that cannot be parsed or compiled; `pos` is the 0-based character offset it refers to."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} at position {pos}")
        self.message = message
        self.pos = pos


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    value: Any
    pos: int


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),[]":
            tokens.append(Token(ch, ch, i))  # type: ignore[arg-type]
            i += 1
        elif ch in "\"'":
            value, end = _string(text, i)
            tokens.append(Token("string", value, i))
            i = end
        elif m := _NUMBER.match(text, i):
            raw = m.group()
            is_float = any(c in raw for c in ".eE")
            tokens.append(Token("number", float(raw) if is_float else int(raw), i))
            i = m.end()
        elif m := _IDENT.match(text, i):
            tokens.append(Token("ident", m.group(), i))
            i = m.end()
        else:
            raise FilterError(f"unexpected character {ch!r}", i)
    tokens.append(Token("end", None, n))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(text):
            break
        esc = text[i + 1]
        if esc == "u":
            digits = text[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise FilterError("\\u escape needs four hex digits", i)
            code = int(digits, 16)
            i += 6
            low = text[i + 2 : i + 6] if text.startswith("\\u", i) else ""
            if 0xD800 <= code < 0xDC00 and re.fullmatch(r"[dD][c-fC-F][0-9a-fA-F]{2}", low):
                code = 0x10000 + ((code - 0xD800) << 10) + (int(low, 16) - 0xDC00)  # a JSON surrogate pair
                i += 6
            out.append(chr(code))
        elif esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        else:
            raise FilterError(f"unknown escape \\{esc}", i)
    raise FilterError("unterminated string", start)
