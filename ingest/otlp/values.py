"""OTLP `AnyValue`/`KeyValue` lists as plain Python values, the form every later step works on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

_SCALARS = frozenset({str, int, float, bool})


def value(v: AnyValue) -> Any:
    # ListFields() is the one call that yields the set member of the oneof: about a third cheaper than
    # WhichOneof() plus a getattr, on the hottest line of OTLP ingest.
    fields = v.ListFields()
    if not fields:
        return None
    found = fields[0][1]
    if type(found) in _SCALARS:
        return found
    if isinstance(found, bytes):
        return found.hex()
    if isinstance(found, ArrayValue):
        return [value(item) for item in found.values]
    return attributes(found.values)


class Attrs(dict[str, Any]):
    """A span's attributes, plus the set of their two-segment families (`gen_ai.prompt.`, `llm.token_count.`),
    so that a convention can tell in O(1) that none of its indexed keys are present: most spans carry one
    convention and most lookups miss."""

    __slots__ = ("families",)

    def __init__(self, items: dict[str, Any]) -> None:
        super().__init__(items)
        # key up to and including its second dot ("" when it has fewer than two dots)
        self.families = {key[: key.find(".", key.find(".") + 1) + 1] for key in items}


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}


def span_attributes(kvs: Iterable[KeyValue]) -> Attrs:
    return Attrs(attributes(kvs))
