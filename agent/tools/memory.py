"""MemoryTool: BM25 search over the user's own past messages in all their threads."""

from __future__ import annotations

from . import Tool, ToolContext, register


@register("memory_search", order=40)
def make_memory_search(context: ToolContext) -> Tool:
    def memory_search(query: str) -> str:
        """Search what the user said before, in any of their conversations. Returns the best
        matching messages with their conversation and date."""
        if context.memory_search is None:
            return "Memory is unavailable in this conversation."
        if not (query or "").strip():
            return "Memory search error: no query."
        hits = context.memory_search(query, 5)
        if not hits:
            return f"Nothing in your earlier messages matches {query!r}."
        lines = [f"From your earlier messages ({len(hits)} found):"]
        lines += [f"- In “{hit['thread_title']}” on {hit['date']}: {hit['snippet']}" for hit in hits]
        return "\n".join(lines)

    return memory_search
