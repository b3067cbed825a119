"""Reads of messages and attachments, always through a thread the user owns."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from chatproject.errors import NotFound
from threads.models import ChatThread
from threads.selectors import parse_uuid

from .models import ChatAttachment, ChatMessage


def message_list(*, thread: ChatThread) -> QuerySet[ChatMessage]:
    """The thread's messages, oldest first, attachments prefetched (one query per page for them)."""
    return ChatMessage.objects.filter(thread=thread).prefetch_related("attachments").order_by("created_at", "id")


def attachment_get(*, user: AbstractBaseUser, attachment_id: str | uuid.UUID) -> ChatAttachment:
    """An attachment in one of the user's visible threads, or NotFound."""
    pk = parse_uuid(attachment_id)
    if pk is None or not user.is_authenticated:
        raise NotFound("Attachment not found.")
    try:
        return ChatAttachment.objects.exclude(thread__status=ChatThread.Status.DELETED).get(pk=pk, thread__owner=user)
    except ChatAttachment.DoesNotExist:
        raise NotFound("Attachment not found.") from None
