"""CSV: one row a message, UTF-8 with a header; formula-like cells neutralized (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from . import ExportContext, ExportFormat, register

COLUMNS = ["thread_id", "thread_title", "message_id", "parent_id", "role", "type", "created_at", "content"]
# A spreadsheet runs a cell starting with one of these as a formula (or a DDE command).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> str:
    """The cell as text; one starting like a formula gets a leading apostrophe, shown as text."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _line(cells: list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([neutralize(cell) for cell in cells])
    return buffer.getvalue().encode()


@register
class CsvFormat(ExportFormat):
    name = "csv"
    extension = "csv"
    content_type = "text/csv; charset=utf-8"
    label = "CSV (spreadsheet)"
    default_branches = "all"

    def begin(self, context: ExportContext) -> Iterator[bytes]:
        # The byte-order mark makes spreadsheet programs read the file as UTF-8.
        yield b"\xef\xbb\xbf" + _line(COLUMNS)

    def thread(self, document: dict[str, Any], context: ExportContext, *, first: bool) -> Iterator[bytes]:
        for message in document["messages"]:
            yield _line(
                [
                    document["id"],
                    document["title"],
                    message["id"],
                    message["parent"],
                    message["role"],
                    message["type"],
                    message["created_at"],
                    message["content"],
                ]
            )
