"""The export format registry: one module per format, one registered writer each.

A writer turns thread documents (the dicts of the JSON export, see ``exports.document``) into
bytes, piece by piece, so every export streams: ``begin`` once, ``thread`` for each thread,
``end`` once. A single-thread download, a bulk download and each file of a ZIP archive are all
made of those three calls.

To add a format: write ``exports/formats/<name>.py`` with a subclass of ``ExportFormat``
decorated with ``@register``, and import the module at the bottom of this file; the API, the
export menus (``{% export_menu %}``), the commands and ZIP archives pick it up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chatproject.errors import InvalidInput


@dataclass
class ExportContext:
    """What a writer knows besides the documents: the choices of the request."""

    branches: str = "all"
    exported_at: str = ""
    # Inside a ZIP archive, attachments are files beside the document: links point at them.
    in_archive: bool = False
    # The site's address (``https://chat.example.com``) for links out of a downloaded file; empty:
    # links from the site's root (``/api/...``), as from a command.
    base_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ExportFormat:
    name: ClassVar[str]
    extension: ClassVar[str]
    content_type: ClassVar[str]
    # What the export menus call it.
    label: ClassVar[str]
    # "active" (the branch on screen) or "all" (the whole tree), when the request names none.
    default_branches: ClassVar[str] = "active"

    def begin(self, context: ExportContext) -> Iterator[bytes]:
        return iter(())

    def thread(self, document: dict[str, Any], context: ExportContext, *, first: bool) -> Iterator[bytes]:
        raise NotImplementedError

    def end(self, context: ExportContext) -> Iterator[bytes]:
        return iter(())


FORMATS: dict[str, ExportFormat] = {}


def register(cls: type[ExportFormat]) -> type[ExportFormat]:
    FORMATS[cls.name] = cls()
    return cls


def format_get(name: str) -> ExportFormat:
    """The registered writer, or InvalidInput naming ``format`` and the accepted values."""
    try:
        return FORMATS[name]
    except KeyError:
        raise InvalidInput.field("format", f'"{name}" is not a format: use one of {", ".join(FORMATS)}.') from None


from . import csv_export, html_export, json_export, markdown_export  # noqa: E402, F401  (registers the built-in formats)
