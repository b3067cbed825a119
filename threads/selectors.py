"""Reads of threads, always scoped to the user asking."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, QuerySet

from chatproject import catalog
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


def preferences_model_name(*, preferences: ChatPreferences) -> str:
    """The model the user's new threads get, by name: their last choice while it is offered (an
    operator may have removed it from AGENT_MODELS since), else the default (AGENT_LM)."""
    if preferences.model and preferences.model in catalog.offered():
        return preferences.model
    return catalog.default_spec().name


# --- For operators (management commands): every user's threads, deleted ones included --------


def thread_list_all(
    *, owner_id: int | None = None, status: str | None = None, search: str | None = None
) -> QuerySet[ChatThread]:
    """Threads of every user (or of the user ``owner_id``), any status, most recently active
    first, with their owner and ``message_count``."""
    threads = ChatThread.objects.select_related("owner").annotate(message_count=Count("messages"))
    if owner_id is not None:
        threads = threads.filter(owner_id=owner_id)
    if status:
        threads = threads.filter(status=status)
    if search:
        threads = threads.filter(title__icontains=search)
    return threads.order_by("-updated_at", "-id")


def thread_get_any(*, thread_id: str | uuid.UUID) -> ChatThread:
    """Any user's thread, deleted ones too, or NotFound."""
    pk = parse_uuid(thread_id)
    thread = ChatThread.objects.select_related("owner").filter(pk=pk).first() if pk else None
    if thread is None:
        raise NotFound("Thread not found.")
    return thread


def thread_counts_by_status() -> dict[str, int]:
    """How many threads have each status (every status named, 0 when none)."""
    counts = dict(ChatThread.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {status: counts.get(status, 0) for status in ChatThread.Status.values}


def thread_list_purgeable(*, status: str, last_active_before: datetime) -> QuerySet[ChatThread]:
    """Threads with ``status`` untouched since ``last_active_before``: what a purge deletes."""
    return ChatThread.objects.filter(status=status, updated_at__lt=last_active_before).order_by("updated_at", "id")
