"""HTML: one self-contained page per export (inline CSS, no script, nothing fetched), print-ready.

Message content is Markdown rendered here by markdown-it-py with raw HTML off, then sanitized by
nh3 (Ammonia): no script, event handler, ``javascript:`` URL or remote image survives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from html import escape
from typing import Any

import nh3
from markdown_it import MarkdownIt

from . import ExportContext, ExportFormat, register
from .common import attachment_href, role_label, time_label, tool_steps

# Images would be fetched when the file is opened: they are left out (their alt text stays).
_TAGS = set(nh3.ALLOWED_TAGS) - {"img", "map", "area"}
_URL_SCHEMES = {"http", "https", "mailto"}

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; background: #f6f8fa;
  margin: 0; }
main { max-width: 820px; margin: 0 auto; padding: 24px 16px; }
h1 { font-size: 1.5em; margin: 0 0 4px; }
.meta { color: #59636e; font-size: 0.85em; margin-bottom: 20px; }
.msg { border-radius: 10px; padding: 10px 14px; margin: 10px 0; background: #fff; border: 1px solid #d1d9e0;
  break-inside: avoid; }
.msg.user { background: #ddf4ff; border-color: #b6e3ff; margin-left: 15%; }
.msg.system { background: #fff8c5; border-color: #eed888; }
.msg.error { background: #ffebe9; border-color: #ffcecb; }
.who { font-size: 0.8em; color: #59636e; margin-bottom: 4px; }
.who b { color: #1f2328; }
pre { background: #f6f8fa; padding: 8px; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9em; }
table { border-collapse: collapse; } td, th { border: 1px solid #d1d9e0; padding: 2px 6px; }
details { font-size: 0.85em; color: #59636e; margin-top: 6px; }
.files { font-size: 0.85em; margin-top: 6px; }
section.thread + section.thread { border-top: 2px solid #d1d9e0; margin-top: 32px; padding-top: 16px; }
@media print { body { background: #fff; } main { max-width: none; padding: 0; }
  .msg { border-color: #999; } details { display: block; } a { color: inherit; } }
"""


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def render_markdown(text: str) -> str:
    """Markdown as sanitized HTML, safe to put in the page."""
    return nh3.clean(
        _markdown().render(text),
        tags=_TAGS,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


def _message(thread_id: str, message: dict[str, Any], context: ExportContext) -> str:
    classes = f"msg {escape(message['role'])}" + (" error" if message["type"] == "error" else "")
    parts = [
        f'<article class="{classes}">',
        f'<div class="who"><b>{escape(role_label(message["role"]))}</b> · '
        f'<time datetime="{escape(message["created_at"])}">{escape(time_label(message["created_at"]))}</time></div>',
        render_markdown(message["content"]),
    ]
    if message.get("attachments"):
        links = [
            f'<a href="{escape(attachment_href(thread_id, a, context))}">{escape(a["filename"])}</a> '
            f"({escape(a['file_type'])}, {int(a['size'])} bytes)"
            for a in message["attachments"]
        ]
        parts.append('<div class="files">📎 ' + "<br>".join(links) + "</div>")
    steps = tool_steps(message)
    if steps:
        items = []
        for step in steps:
            args = json.dumps(step.get("tool_args", {}), ensure_ascii=False)
            observation = step.get("observation")
            result = f"<pre>{escape(str(observation))}</pre>" if observation is not None else ""
            items.append(f"<li><b>{escape(str(step.get('tool_name')))}</b> <code>{escape(args)}</code>{result}</li>")
        parts.append(f"<details><summary>Tool steps ({len(steps)})</summary><ul>{''.join(items)}</ul></details>")
    parts.append("</article>")
    return "\n".join(parts)


@register
class HtmlFormat(ExportFormat):
    name = "html"
    extension = "html"
    content_type = "text/html; charset=utf-8"
    label = "HTML (print)"
    default_branches = "active"

    def begin(self, context: ExportContext) -> Iterator[bytes]:
        yield (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            # Opened from disk or served, the page may fetch and run nothing.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
            f"<title>Chat export</title>\n<style>{STYLE}</style></head><body><main>\n"
        ).encode()

    def thread(self, document: dict[str, Any], context: ExportContext, *, first: bool) -> Iterator[bytes]:
        title = escape(document["title"] or "Untitled")
        yield (
            f'<section class="thread"><h1>{title}</h1>'
            f'<div class="meta">Created {escape(time_label(document["created_at"]))} · '
            f"{len(document['messages'])} messages</div>\n"
        ).encode()
        for message in document["messages"]:
            yield (_message(document["id"], message, context) + "\n").encode()
        yield b"</section>\n"

    def end(self, context: ExportContext) -> Iterator[bytes]:
        yield b"</main></body></html>\n"
