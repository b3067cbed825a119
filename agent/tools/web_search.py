"""WebSearch: DuckDuckGo's instant answers, or SerpAPI when SERPAPI_API_KEY is set.

Off unless configured (no network the operator did not ask for). Any failure is an observation
("web search is unavailable: ...") within WEB_TIMEOUT_SECONDS, never an exception.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from agent.http import FetchError, fetch_json

from . import Tool, ToolContext, register

MAX_RESULTS = 5


def _duckduckgo(query: str) -> list[dict[str, str]]:
    data = fetch_json(
        settings.DUCKDUCKGO_URL,
        params={"q": query, "format": "json", "no_html": 1, "skip_disambig": 1},
        timeout=settings.WEB_TIMEOUT_SECONDS,
    )
    results = []
    if data.get("AbstractText"):
        results.append(
            {"title": data.get("Heading") or query, "snippet": data["AbstractText"], "url": data.get("AbstractURL", "")}
        )
    topics: list[Any] = list(data.get("RelatedTopics") or [])
    while topics and len(results) < MAX_RESULTS:
        topic = topics.pop(0)
        if "Topics" in topic:
            topics = list(topic["Topics"]) + topics
        elif topic.get("Text"):
            results.append(
                {"title": topic["Text"].split(" - ")[0], "snippet": topic["Text"], "url": topic.get("FirstURL", "")}
            )
    return results


def _serpapi(query: str) -> list[dict[str, str]]:
    data = fetch_json(
        settings.SERPAPI_URL,
        params={"q": query, "engine": "google", "api_key": settings.SERPAPI_API_KEY, "num": MAX_RESULTS},
        timeout=settings.WEB_TIMEOUT_SECONDS,
    )
    if data.get("error"):
        raise FetchError(str(data["error"]))
    return [
        {"title": r.get("title", ""), "snippet": r.get("snippet", ""), "url": r.get("link", "")}
        for r in (data.get("organic_results") or [])[:MAX_RESULTS]
    ]


def search(query: str) -> str:
    query = (query or "").strip()
    if not query:
        return "Web search error: no query."
    provider = "serpapi" if settings.SERPAPI_API_KEY else settings.WEB_SEARCH_PROVIDER
    if provider not in ("duckduckgo", "serpapi"):
        return (
            "Web search is unavailable: it is turned off on this server "
            "(set WEB_SEARCH_PROVIDER=duckduckgo or SERPAPI_API_KEY to turn it on)."
        )
    try:
        results = _serpapi(query) if provider == "serpapi" else _duckduckgo(query)
    except FetchError as exc:
        return f"Web search is unavailable: {provider} {exc}."
    except (AttributeError, KeyError, TypeError):
        return f"Web search is unavailable: {provider} answered in an unexpected shape."
    if not results:
        return f"No web results for {query!r}."
    lines = [f"Web results for {query!r} ({provider}):"]
    lines += [f"{n}. {r['title']}: {r['snippet']} {r['url']}".rstrip() for n, r in enumerate(results[:MAX_RESULTS], 1)]
    return "\n".join(lines)


@register("web_search", order=60)
def make_web_search(context: ToolContext) -> Tool:
    def web_search(query: str) -> str:
        """Search the web for current information. Returns titles, snippets and links."""
        return search(query)

    return web_search
