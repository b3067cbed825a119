"""TextProcessor: counts, keywords, an extractive summary, case changes and find/replace."""

from __future__ import annotations

import json

from agent import text as textlib

from . import Tool, ToolContext, register

MAX_TEXT_CHARS = 200_000
OPERATIONS = ("stats", "count", "keywords", "summary", "upper", "lower", "title", "replace")


def process(operation: str, text: str, find: str = "", replace: str = "") -> str:
    operation = (operation or "stats").strip().lower()
    if not isinstance(text, str) or not text.strip():
        return "Text processor error: there is no text to work on."
    if len(text) > MAX_TEXT_CHARS:
        return f"Text processor error: texts are limited to {MAX_TEXT_CHARS} characters."
    if operation in ("count", "occurrences") and find:
        times = text.lower().count(find.lower())
        return f"{find!r} appears {textlib.counted(times, 'time')} in {text!r}."
    if operation in ("stats", "count", "counts"):
        stats = textlib.stats(text)
        counted = textlib.counted
        return (
            f"{counted(stats['words'], 'word')}, {counted(stats['characters'], 'character')} "
            f"({stats['characters_without_spaces']} without spaces), {counted(stats['sentences'], 'sentence')}, "
            f"{counted(stats['paragraphs'], 'paragraph')}; about {stats['reading_minutes']} min to read."
        )
    if operation == "keywords":
        return "Keywords: " + (", ".join(textlib.keywords(text)) or "none found")
    if operation in ("summary", "summarize"):
        return "Summary: " + textlib.summarize(text)
    if operation in ("upper", "uppercase"):
        return text.upper()
    if operation in ("lower", "lowercase"):
        return text.lower()
    if operation in ("title", "titlecase"):
        return text.title()
    if operation == "replace":
        if not find:
            return "Text processor error: replace needs the text to find."
        count = text.count(find)
        return json.dumps({"replacements": count, "text": text.replace(find, replace)}, ensure_ascii=False)
    return f"Text processor error: unknown operation {operation!r}; use one of {', '.join(OPERATIONS)}."


@register("text_processor", order=20)
def make_text_processor(context: ToolContext) -> Tool:
    def text_processor(operation: str, text: str, find: str = "", replace: str = "") -> str:
        """Work on a text. operation is one of: stats (words, characters, sentences, reading time),
        keywords, summary, upper, lower, title, replace (with find and replace), count (how many times
        find occurs, ignoring case)."""
        return process(operation, text, find, replace)

    return text_processor
