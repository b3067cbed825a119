"""JSON: the versioned ``chat-export`` document (schema: static/schema/chat-export-v1.json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from . import ExportContext, ExportFormat, register

FORMAT_NAME = "chat-export"
FORMAT_VERSION = 1


@register
class JsonFormat(ExportFormat):
    name = "json"
    extension = "json"
    content_type = "application/json"
    label = "JSON (re-importable)"
    default_branches = "all"

    def begin(self, context: ExportContext) -> Iterator[bytes]:
        head = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "exported_at": context.exported_at})
        yield (head[:-1] + ', "threads": [').encode()

    def thread(self, document: dict[str, Any], context: ExportContext, *, first: bool) -> Iterator[bytes]:
        yield (("" if first else ",\n") + json.dumps(document, ensure_ascii=False)).encode()

    def end(self, context: ExportContext) -> Iterator[bytes]:
        yield b"]}\n"
