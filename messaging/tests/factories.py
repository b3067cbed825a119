from __future__ import annotations

from typing import Any

from messaging.models import ChatAttachment, ChatMessage
from messaging.services import attachment_create, message_create
from threads.models import ChatThread


def make_message(thread: ChatThread, content: str = "Hello", role: str = "user", **fields: Any) -> ChatMessage:
    sender = fields.pop("sender", thread.owner if role == "user" else None)
    return message_create(thread=thread, role=role, content=content, sender=sender, **fields)


def make_attachment(message: ChatMessage, filename: str = "notes.txt", data: bytes = b"some notes\n") -> ChatAttachment:
    return attachment_create(message=message, filename=filename, data=data)
