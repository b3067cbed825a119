"""Writes to messages and attachments."""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import reverse
from django.utils.text import get_valid_filename

from chatproject.errors import InvalidInput
from threads.models import ChatThread
from threads.selectors import parse_uuid
from threads.services import thread_touch, validate_metadata

from .models import ChatAttachment, ChatMessage
from .signals import user_message_posted


def _clean_content(content: Any, *, allow_empty: bool) -> str:
    if not isinstance(content, str):
        raise InvalidInput.field("content", "Must be a string.")
    if not allow_empty and not content.strip():
        raise InvalidInput.field("content", "This field may not be blank.")
    if len(content) > settings.MAX_MESSAGE_CHARS:
        raise InvalidInput.field(
            "content",
            f"Ensure this field has no more than {settings.MAX_MESSAGE_CHARS} characters ({len(content)} given).",
        )
    return content


def _resolve_parent(*, thread: ChatThread, parent_id: Any) -> uuid.UUID | None:
    if parent_id is None:
        return None
    pk = parse_uuid(parent_id)
    if pk is None or not ChatMessage.objects.filter(pk=pk, thread=thread).exists():
        raise InvalidInput.field("parent", "No such message in this thread.")
    return pk


@transaction.atomic
def message_create(
    *,
    thread: ChatThread,
    role: str,
    content: str,
    sender: AbstractBaseUser | None = None,
    type: str = ChatMessage.Type.TEXT,
    metadata: dict[str, Any] | None = None,
    parent_id: Any = None,
) -> ChatMessage:
    """Store a message of any role and bump the thread's activity time. Triggers nothing."""
    if role not in ChatMessage.Role.values:
        raise InvalidInput.field("role", f'"{role}" is not a valid choice.')
    if type not in ChatMessage.Type.values:
        raise InvalidInput.field("type", f'"{type}" is not a valid choice.')
    message = ChatMessage.objects.create(
        thread=thread,
        sender=sender if role == ChatMessage.Role.USER else None,
        role=role,
        type=type,
        content=_clean_content(content, allow_empty=role != ChatMessage.Role.USER or type == ChatMessage.Type.FILE),
        metadata=validate_metadata(metadata),
        parent_id=_resolve_parent(thread=thread, parent_id=parent_id),
    )
    thread_touch(thread_id=thread.pk)
    return message


@transaction.atomic
def message_send(
    *,
    thread: ChatThread,
    sender: AbstractBaseUser,
    content: str,
    metadata: dict[str, Any] | None = None,
    parent_id: Any = None,
) -> ChatMessage:
    """Store a user's text message; once committed, send ``user_message_posted`` (the agent replies)."""
    message = message_create(
        thread=thread,
        role=ChatMessage.Role.USER,
        sender=sender,
        content=content,
        metadata=metadata,
        parent_id=parent_id,
    )
    transaction.on_commit(
        lambda: user_message_posted.send(sender=ChatMessage, message_id=message.pk, thread_id=thread.pk)
    )
    return message


def _safe_filename(filename: Any) -> str:
    """The last path component, reduced to safe characters; refuses names with nothing left."""
    if not isinstance(filename, str):
        raise InvalidInput.field("filename", "Must be a string.")
    base = PurePosixPath(filename.replace("\\", "/")).name.strip()
    try:
        return get_valid_filename(base)[-200:]
    except SuspiciousFileOperation:  # nothing usable left, e.g. "..", "???"
        raise InvalidInput.field("filename", "A file name is required.") from None


def attachment_create(
    *, message: ChatMessage, filename: str, data: bytes, content_type: str = "", metadata: dict[str, Any] | None = None
) -> ChatAttachment:
    """Store ``data`` as a file of ``message`` with its size and sha256; refuses empty or oversized files."""
    if not data:
        raise InvalidInput.field("data", "The file is empty.")
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise InvalidInput.field("data", f"The file is larger than {settings.MAX_UPLOAD_BYTES} bytes.")
    safe_name = _safe_filename(filename)
    file_type = content_type or mimetypes.guess_type(safe_name)[0] or "application/octet-stream"
    attachment = ChatAttachment(
        message=message,
        thread_id=message.thread_id,
        filename=safe_name,
        file_type=file_type[:100],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        metadata=validate_metadata(metadata),
    )
    attachment.url = reverse("attachment-download", kwargs={"attachment_id": attachment.id})
    attachment.file.save(safe_name, ContentFile(data), save=False)
    try:
        attachment.save()
    except Exception:
        # The row did not land: do not leave an orphan file behind.
        attachment.file.delete(save=False)
        raise
    return attachment
