from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from messaging.models import ChatAttachment, ChatMessage, ReplyMetric
from messaging.services import attachment_create, message_create
from threads.models import ChatThread


def make_message(thread: ChatThread, content: str = "Hello", role: str = "user", **fields: Any) -> ChatMessage:
    sender = fields.pop("sender", thread.owner if role == "user" else None)
    return message_create(thread=thread, role=role, content=content, sender=sender, **fields)


def make_attachment(message: ChatMessage, filename: str = "notes.txt", data: bytes = b"some notes\n") -> ChatAttachment:
    return attachment_create(message=message, filename=filename, data=data)


def make_reply_metric(
    user: Any,
    at: datetime | None = None,
    *,
    prompt_tokens: int | None = 0,
    completion_tokens: int = 0,
    status: str = "complete",
    **fields: Any,
) -> ReplyMetric:
    """A reply's metrics row as ``stream_finish`` writes it, ended ``at`` (default now)."""
    at = at or timezone.now()
    return ReplyMetric.objects.create(
        created_at=at,
        minute=int(at.timestamp()) // 60,
        user=user,
        model=fields.pop("model", "offline"),
        status=status,
        queue_ms=fields.pop("queue_ms", 5),
        total_ms=fields.pop("total_ms", 100),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        **fields,
    )
