"""JSON that users send: measured without recursion, parsed without a 500 on hostile nesting.

Python's json module recurses once per nesting level: a body of a few hundred thousand ``[``
raises RecursionError (not ValueError) in the parser, and a structure a few hundred levels deep
raises it again in ``json.dumps``. DRF lets both through as 500s; these wrappers answer 400.
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, parsers, serializers

# Deeper than any valid request: a metadata object at METADATA_MAX_DEPTH inside the body's own
# object. Past this the whole body is refused before any field sees it.
MAX_BODY_DEPTH = 64


def json_depth(value: Any, *, stop_after: int) -> int:
    """How deeply ``value`` nests (a scalar 0, ``{}`` 1, ``{"a": []}`` 2), without recursion.

    Stops counting once past ``stop_after``: the answer is then ``stop_after + 1``.
    """
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > stop_after:
            return stop_after + 1
        deepest = max(deepest, depth)
        pending.extend((child, depth) for child in children)
    return deepest


def json_nul_free(value: Any) -> tuple[Any, bool]:
    """``value`` with every NUL character (in keys and strings) replaced by U+FFFD, and whether
    there was one. PostgreSQL stores neither a NUL in text nor ``\\u0000`` in jsonb (the insert
    fails), so what reaches the database must have none. Walks without recursion."""
    found = False

    def clean(text: str) -> str:
        nonlocal found
        if "\x00" in text:
            found = True
            return text.replace("\x00", "\ufffd")
        return text

    if isinstance(value, str):
        return clean(value), found
    root: list[Any] = [value]
    pending: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while pending:
        parent, key, item = pending.pop()
        if isinstance(item, dict):
            copy: dict[str, Any] = {}
            for name, child in item.items():
                copy[clean(name) if isinstance(name, str) else name] = child
            parent[key] = copy
            pending.extend((copy, name, child) for name, child in copy.items())
        elif isinstance(item, list):
            items = list(item)
            parent[key] = items
            pending.extend((items, index, child) for index, child in enumerate(items))
        elif isinstance(item, str):
            parent[key] = clean(item)
    return root[0], found


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON; ValueError for NaN/Infinity (not JSON)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with 400 instead of 500 for bodies nested past MAX_BODY_DEPTH."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_BODY_DEPTH} levels.") from None
        if json_depth(data, stop_after=MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_BODY_DEPTH} levels.")
        return data


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONField(serializers.JSONField):
    """DRF's JSONField, with a 400 instead of a 500 for values nested past MAX_BODY_DEPTH.

    Form posts (the browsable API) hand it JSON text that it parses itself, past our parser.
    """

    default_error_messages = {"too_deep": f"Nested deeper than {MAX_BODY_DEPTH} levels."}

    def to_internal_value(self, data: Any) -> Any:
        # Parsed bodies were measured by JSONParser; this also covers callers that skip it.
        if json_depth(data, stop_after=MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
            self.fail("too_deep")
        try:
            value = super().to_internal_value(data)
        except RecursionError:
            self.fail("too_deep")
        if json_depth(value, stop_after=MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
            self.fail("too_deep")
        return value


# No database column takes a NUL (PostgreSQL refuses it; DRF's CharField refuses it too), so the
# schema of every string users send says so: clients and the contract test know it up front.
NO_NUL_PATTERN = "^[^\\u0000]*$"
NOT_BLANK_NO_NUL_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


class StrictCharField(serializers.CharField):
    """A CharField that takes only JSON strings: DRF's own turns ``0`` or ``true`` into text,
    which the published schema (``type: string``) says is invalid."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharFieldSchema(OpenApiSerializerFieldExtension):
    target_class = StrictCharField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema.setdefault("pattern", NO_NUL_PATTERN)
        return schema
