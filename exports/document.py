"""Threads as export documents: the dicts of the JSON format, which every other writer reads."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from messaging.models import ChatAttachment, ChatMessage
from threads.models import ChatThread


def _iso(value: datetime) -> str:
    return value.isoformat()


def _str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def attachment_path(attachment: ChatAttachment) -> str:
    """Where an attachment's file sits inside a ZIP archive."""
    return f"attachments/{attachment.thread_id}/{attachment.pk}/{attachment.filename}"


def attachment_document(attachment: ChatAttachment, *, inline: bool, in_archive: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": str(attachment.pk),
        "filename": attachment.filename,
        "file_type": attachment.file_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
    }
    if in_archive:
        document["path"] = attachment_path(attachment)
    if inline:
        with attachment.file.open("rb") as handle:
            document["data"] = base64.b64encode(handle.read()).decode("ascii")
    return document


def message_document(
    message: ChatMessage, attachments: list[ChatAttachment], *, inline: bool = False, in_archive: bool = False
) -> dict[str, Any]:
    return {
        "id": str(message.pk),
        "parent": _str(message.parent_id),
        "role": message.role,
        "type": message.type,
        "content": message.content,
        "metadata": message.metadata,
        "created_at": _iso(message.created_at),
        "attachments": [attachment_document(a, inline=inline, in_archive=in_archive) for a in attachments],
    }


def thread_document(
    thread: ChatThread,
    messages: list[ChatMessage],
    attachments: dict[uuid.UUID, list[ChatAttachment]],
    *,
    active_leaf: uuid.UUID | None,
    inline: bool = False,
    in_archive: bool = False,
) -> dict[str, Any]:
    return {
        "id": str(thread.pk),
        "title": thread.title,
        "summary": thread.summary,
        "status": thread.status,
        "metadata": thread.metadata,
        # The model chosen for the thread ("": the server's default) and its own custom instructions.
        "model": thread.model,
        "instructions": thread.instructions,
        "created_at": _iso(thread.created_at),
        "updated_at": _iso(thread.updated_at),
        "active_leaf": _str(active_leaf),
        "messages": [
            message_document(m, attachments.get(m.pk, []), inline=inline, in_archive=in_archive) for m in messages
        ],
    }
