"""FileProcessor: what is in the thread's attachments.

CSV: rows, columns and per-column statistics; JSON: its structure; text and Markdown: counts,
keywords and a summary. Other types get a clear answer; nothing is executed or rendered.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

from agent import text as textlib

from . import AttachmentInfo, Tool, ToolContext, register

MAX_READ_BYTES = 5 * 1024 * 1024
MAX_COLUMNS_SHOWN = 20


def _number(value: str) -> float | None:
    try:
        return float(value.replace(",", "")) if value.strip() else None
    except ValueError:
        return None


def describe_csv(data: str) -> str:
    try:
        dialect = csv.Sniffer().sniff(data[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(data), dialect))
    except csv.Error as exc:
        return f"The file could not be read as CSV ({exc})."
    if not rows:
        return "The CSV file is empty."
    header, body = rows[0], [r for r in rows[1:] if any(cell.strip() for cell in r)]
    lines = [f"CSV with {len(body)} rows and {len(header)} columns: {', '.join(header[:MAX_COLUMNS_SHOWN])}."]
    for index, name in enumerate(header[:MAX_COLUMNS_SHOWN]):
        values = [r[index] for r in body if index < len(r)]
        numbers = [n for n in (_number(v) for v in values) if n is not None]
        if numbers and len(numbers) >= max(1, len([v for v in values if v.strip()]) * 0.8):
            lines.append(
                f"- {name}: numeric, min {min(numbers):g}, max {max(numbers):g}, "
                f"mean {statistics.fmean(numbers):.4g}, sum {sum(numbers):g}"
            )
        else:
            distinct = sorted({v for v in values if v.strip()})
            sample = ", ".join(distinct[:5])
            lines.append(
                f"- {name}: text, {len(distinct)} distinct values ({sample}{', …' if len(distinct) > 5 else ''})"
            )
    return "\n".join(lines)


def _shape(value: Any, depth: int = 0) -> str:
    if depth > 3:
        return "…"
    if isinstance(value, dict):
        inner = ", ".join(f"{key}: {_shape(item, depth + 1)}" for key, item in list(value.items())[:12])
        return "{" + inner + (", …" if len(value) > 12 else "") + "}"
    if isinstance(value, list):
        return f"list of {len(value)}" + (f" [{_shape(value[0], depth + 1)}]" if value else "")
    return type(value).__name__.replace("str", "string").replace("NoneType", "null")


def describe_json(data: str) -> str:
    try:
        value = json.loads(data)
    except ValueError as exc:
        return f"The file is not valid JSON ({exc})."
    return f"JSON structure: {_shape(value)}"


def describe_text(data: str) -> str:
    stats = textlib.stats(data)
    return (
        f"{textlib.counted(stats['words'], 'word')}, {textlib.counted(stats['sentences'], 'sentence')}, "
        f"{textlib.counted(stats['paragraphs'], 'paragraph')} "
        f"(about {stats['reading_minutes']} min to read). Keywords: {', '.join(textlib.keywords(data, 6)) or 'none'}.\n"
        f"Summary: {textlib.summarize(data)}"
    )


def describe(attachment: AttachmentInfo) -> str:
    path = Path(attachment.path)
    try:
        with path.open("rb") as stored:
            raw = stored.read(MAX_READ_BYTES + 1)
    except OSError:
        return f"{attachment.filename}: the stored file could not be read."
    truncated = len(raw) > MAX_READ_BYTES
    kind = attachment.file_type
    name = attachment.filename.lower()
    if kind in ("text/csv",) or name.endswith(".csv"):
        describer = describe_csv
    elif kind == "application/json" or name.endswith(".json"):
        describer = describe_json
    elif kind.startswith("text/") or name.endswith((".txt", ".md", ".markdown")):
        describer = describe_text
    else:
        return (
            f"{attachment.filename} ({kind}, {attachment.size} bytes): I can read CSV, JSON, text and Markdown "
            "files; this type is stored but not analysed."
        )
    body = describer(raw[:MAX_READ_BYTES].decode("utf-8", errors="replace"))
    note = f" (only the first {MAX_READ_BYTES // (1024 * 1024)} MB read)" if truncated else ""
    return f"{attachment.filename}{note}:\n{body}"


@register("file_processor", order=30)
def make_file_processor(context: ToolContext) -> Tool:
    def file_processor(filename: str = "") -> str:
        """Describe a file attached to this conversation: CSV statistics, JSON structure, or a text's
        counts and summary. filename may be empty for the latest file."""
        if not context.attachments:
            return "There is no file in this conversation. Attach one with the paperclip (or a 'file' frame)."
        wanted = (filename or "").strip().lower()
        matches = [a for a in context.attachments if wanted and a.filename.lower() == wanted]
        matches = matches or [a for a in context.attachments if wanted and wanted in a.filename.lower()]
        attachment = matches[-1] if matches else context.attachments[-1]
        if wanted and not matches:
            names = ", ".join(a.filename for a in context.attachments)
            return f"No file named {filename!r} here (files: {names}). " + describe(attachment)
        return describe(attachment)

    return file_processor
