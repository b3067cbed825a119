from __future__ import annotations

from datetime import datetime, timedelta
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
    minutes_ago: float,
    *,
    total: int | None,
    first: int | None = None,
    queue: int | None = 5,
    status: str = "complete",
    model: str = "offline",
    at: datetime | None = None,
    **fields: Any,
) -> ReplyMetric:
    """A ``ReplyMetric`` row as ``stream_finish`` writes it, ``minutes_ago`` before now (or ``at``)."""
    at = at or timezone.now() - timedelta(minutes=minutes_ago)
    return ReplyMetric.objects.create(
        created_at=at,
        minute=int(at.timestamp()) // 60,
        user=user,
        model=model,
        status=status,
        queue_ms=queue,
        first_chunk_ms=first,
        total_ms=total,
        **fields,
    )
