"""Reads of threads, always scoped to the user asking."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from chatproject.errors import NotFound

from .models import ChatPreferences, ChatThread


def parse_uuid(value: str | uuid.UUID) -> uuid.UUID | None:
    """A UUID from a path segment or payload, or None when it is malformed."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def thread_list(*, user: User, status: str | None = None, search: str | None = None) -> QuerySet[ChatThread]:
    """The user's visible threads (never deleted ones), most recently active first."""
    threads = ChatThread.objects.filter(owner=user).exclude(status=ChatThread.Status.DELETED)
    if status:
        threads = threads.filter(status=status)
    if search:
        threads = threads.filter(title__icontains=search)
    return threads.order_by("-updated_at", "-id")


def thread_get(*, user: User | AnonymousUser, thread_id: str | uuid.UUID) -> ChatThread:
    """The user's thread, or NotFound: another user's, deleted, missing and malformed ids look alike."""
    pk = parse_uuid(thread_id)
    if pk is None or not user.is_authenticated:
        raise NotFound("Thread not found.")
    try:
        return ChatThread.objects.exclude(status=ChatThread.Status.DELETED).get(pk=pk, owner=user)
    except ChatThread.DoesNotExist:
        raise NotFound("Thread not found.") from None


def preferences_get(*, user_id: int) -> ChatPreferences:
    """The user's chat preferences (unsaved defaults when they never set any)."""
    return ChatPreferences.objects.filter(user_id=user_id).first() or ChatPreferences(user_id=user_id)
