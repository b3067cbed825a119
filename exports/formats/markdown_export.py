"""Markdown: the title, then each message of the branch under its role and time."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

from . import ExportContext, ExportFormat, register
from .common import attachment_href, role_label, time_label, tool_steps


def _quote_block(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _message(thread_id: str, message: dict[str, Any], context: ExportContext) -> str:
    parts = [f"### {role_label(message['role'])} · {time_label(message['created_at'])}"]
    if message["type"] not in ("text", "file"):
        parts.append(f"*({message['type']})*")
    if message["content"]:
        parts.append(message["content"])
    for attachment in message.get("attachments", []):
        href = attachment_href(thread_id, attachment, context)
        parts.append(f"📎 [{attachment['filename']}]({href}) ({attachment['file_type']}, {attachment['size']} bytes)")
    steps = tool_steps(message)
    if steps:
        lines = ["<details><summary>Tool steps</summary>", ""]
        for step in steps:
            args = json.dumps(step.get("tool_args", {}), ensure_ascii=False)
            lines.append(f"- **{step.get('tool_name')}** `{args}`")
            if step.get("observation") is not None:
                lines.append(textwrap.indent(_quote_block(str(step["observation"])), "  "))
        lines += ["", "</details>"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


@register
class MarkdownFormat(ExportFormat):
    name = "md"
    extension = "md"
    content_type = "text/markdown; charset=utf-8"
    label = "Markdown"
    default_branches = "active"

    def thread(self, document: dict[str, Any], context: ExportContext, *, first: bool) -> Iterator[bytes]:
        head = "" if first else "\n\n---\n\n"
        title = document["title"] or "Untitled"
        yield f"{head}# {title}\n\n*Created {time_label(document['created_at'])}*\n\n".encode()
        for message in document["messages"]:
            yield (_message(document["id"], message, context) + "\n\n").encode()
