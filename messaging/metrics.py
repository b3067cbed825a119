"""Per-reply metrics: what an ended reply cost and how long it took, in its message's metadata,
in a ``ReplyMetric`` row and in the running totals of GET /metrics (see ``stream_finish``, the
one place a reply ends).

Latencies count from the moment the user message asked for the reply (stored, or regenerated),
so that ``queue <= first_chunk <= total`` always holds and each is what the person waited.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from chatproject.totals import REPLIES, REPLY_FIRST_CHUNK, REPLY_TOKENS, REPLY_TOTAL, TOOL_CALLS, Totals

from .models import ReplyMetric, ReplyStream, ToolCallMetric

logger = logging.getLogger(__name__)

_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@cache
def _encoding() -> Any:
    """tiktoken's cl100k_base from the copy LiteLLM ships (never downloaded), else None."""
    spec = importlib.util.find_spec("litellm")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled))
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base")
    except Exception as exc:  # no bundled file: count words and punctuation instead
        logger.warning("token counts are approximate (no cl100k_base encoding: %s)", exc)
        return None


def token_counter_load() -> None:
    """Load the encoding now (about half a second, once a process), not inside a transaction."""
    _encoding()


def count_tokens(text: str) -> int:
    """Tokens of a text as OpenAI's cl100k_base counts them (for models that report none)."""
    if not text:
        return 0
    encoding = _encoding()
    return len(encoding.encode_ordinary(text)) if encoding else len(_WORDS.findall(text))


def _ms(later: datetime | None, earlier: datetime | None) -> int | None:
    if later is None or earlier is None:
        return None
    return max(0, round((later - earlier).total_seconds() * 1000))


def reply_metrics(*, stream: ReplyStream, status: str, text: str, given: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a stream that has just ended, for the AI message's metadata.

    ``given`` is what the worker knew (``model``, ``usage``, ``cost_usd``); a stream ended by
    someone else (stopped, interrupted) has none of it: its model is the thread's, and only the
    text it produced is counted.
    """
    from chatproject.catalog import default_spec

    requested = stream.requested_at or stream.started_at
    usage = given.get("usage") or {}
    if "completion_tokens" not in usage:
        # An error reply's text ends with the error: only what came before it was produced.
        produced = given["partial"] if isinstance(given.get("partial"), str) else text
        usage = {"prompt_tokens": None, "completion_tokens": count_tokens(produced), "counted": True}
    return {
        "model": given.get("model") or stream.thread.model or default_spec().name,
        "status": status,
        "latency_ms": {
            "queue": _ms(stream.started_at, requested),
            "first_chunk": _ms(stream.first_chunk_at, requested),
            "total": _ms(stream.ended_at, requested),
        },
        "usage": usage,
        "cost_usd": given.get("cost_usd"),
        "tools": list(stream.tools),
    }


def reply_metric_record(*, stream: ReplyStream, metrics: dict[str, Any], message_id: Any) -> ReplyMetric:
    """Store the ``ReplyMetric`` row (and its tool rows) of an ended reply, and add it to the
    running totals (``chatproject.totals``). Call inside its transaction."""
    ended = stream.ended_at
    latency, usage, tools = metrics["latency_ms"], metrics["usage"], metrics["tools"]
    metric = ReplyMetric.objects.create(
        created_at=ended,
        minute=int(ended.timestamp()) // 60,
        user_id=stream.thread.owner_id,
        message_id=message_id,
        model=str(metrics["model"])[:200],
        status=metrics["status"],
        queue_ms=latency["queue"],
        first_chunk_ms=latency["first_chunk"],
        total_ms=latency["total"],
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens") or 0,
        cost_usd=metrics["cost_usd"],
        tool_calls=len(tools),
        tool_errors=sum(not tool.get("ok", True) for tool in tools),
    )
    tool_rows = [
        ToolCallMetric(
            reply=metric,
            created_at=ended,
            name=str(tool.get("name") or "?")[:100],
            duration_ms=tool.get("duration_ms"),
            ok=bool(tool.get("ok", True)),
        )
        for tool in tools
    ]
    if tool_rows:
        ToolCallMetric.objects.bulk_create(tool_rows)
    _totals_add(metric, tool_rows)
    return metric


def reply_metrics_prune(*, before: datetime, batch: int = 5000) -> int:
    """Delete up to ``batch`` reply metrics (and their tool rows) created before ``before``; how many went.

    Bounded so that one run holds no long lock; the oldest go first, by the ``created_at`` index.
    """
    ids = list(
        ReplyMetric.objects.filter(created_at__lt=before).order_by("created_at").values_list("pk", flat=True)[:batch]
    )
    if not ids:
        return 0
    ToolCallMetric.objects.filter(reply_id__in=ids).delete()
    ReplyMetric.objects.filter(pk__in=ids).delete()
    return len(ids)


def _totals_add(metric: ReplyMetric, tools: list[ToolCallMetric]) -> None:
    totals = Totals()
    model = metric.model
    totals.count(REPLIES, model=model, status=metric.status)
    if metric.prompt_tokens is not None:
        totals.count(REPLY_TOKENS, metric.prompt_tokens, model=model, type="prompt")
    totals.count(REPLY_TOKENS, metric.completion_tokens, model=model, type="completion")
    if metric.first_chunk_ms is not None:
        totals.observe(REPLY_FIRST_CHUNK, metric.first_chunk_ms, model=model)
    totals.observe(REPLY_TOTAL, metric.total_ms, model=model)
    for tool in tools:
        totals.count(TOOL_CALLS, tool=tool.name, outcome="ok" if tool.ok else "error")
    totals.save()


def tool_step(status: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics entry of a ``tool_end`` status event (None for any other step)."""
    if status.get("step") != "tool_end":
        return None
    duration = status.get("duration_ms")
    return {
        "name": status.get("tool"),
        "duration_ms": duration if isinstance(duration, int) else None,
        "ok": status.get("ok", True) is not False,
    }
