"""Reads for exports: a user's threads with their messages, a batch of threads at a time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from django.contrib.auth.models import User
from django.db.models import QuerySet

from chatproject.errors import NotFound
from messaging.models import ChatAttachment, ChatMessage
from messaging.selectors import attachments_by_message, message_list_in_threads, message_path
from threads.models import ChatThread
from threads.selectors import parse_uuid, thread_get, thread_list
from threads.tree import path_to

from .models import ImportJob

# Threads read per query of messages: memory holds one batch's messages at a time.
THREAD_BATCH = 100


@dataclass
class ThreadExport:
    thread: ChatThread
    # The messages to write, oldest first: the whole tree, or the active branch only.
    messages: list[ChatMessage]
    active_leaf: uuid.UUID | None
    attachments: dict[uuid.UUID, list[ChatAttachment]]


def branch_path(messages: list[ChatMessage], leaf: uuid.UUID | None) -> list[ChatMessage]:
    """``message_path`` over messages already read (a batch of a bulk export): no query."""
    if leaf is None:
        return []
    by_id = {m.pk: m for m in messages}
    return [by_id[pk] for pk in path_to(((m.pk, m.parent_id) for m in messages), leaf)]


def export_thread_get(*, user: User, thread_id: str | uuid.UUID, branches: str) -> ThreadExport:
    """One of the user's threads for export, or NotFound (another user's thread too)."""
    thread = thread_get(user=user, thread_id=thread_id)
    if branches == "all":
        messages = list(message_list_in_threads(thread_ids=[thread.pk]))
    else:
        messages = message_path(thread=thread)
    return ThreadExport(thread, messages, thread.active_leaf_id, attachments_by_message(thread_ids=[thread.pk]))


def export_thread_count(*, user: User, status: str | None = None, since: datetime | None = None) -> int:
    threads = thread_list(user=user, status=status)
    return (threads.filter(updated_at__gte=since) if since else threads).count()


def export_threads_iter(
    *, user: User, branches: str, status: str | None = None, since: datetime | None = None
) -> Iterator[ThreadExport]:
    """Every visible thread of the user (``status``, active since ``since``), most recent first.

    Two queries a batch of THREAD_BATCH threads (messages, attachments) after one for the ids;
    memory holds one batch, whatever the number of threads.
    """
    threads = thread_list(user=user, status=status)
    if since:
        threads = threads.filter(updated_at__gte=since)
    ids = list(threads.values_list("pk", flat=True))
    for start in range(0, len(ids), THREAD_BATCH):
        batch = ids[start : start + THREAD_BATCH]
        by_id = {t.pk: t for t in ChatThread.objects.filter(pk__in=batch)}
        attachments = attachments_by_message(thread_ids=batch)
        grouped = {
            thread_id: list(messages)
            for thread_id, messages in groupby(
                message_list_in_threads(thread_ids=batch).iterator(chunk_size=2000), key=lambda m: m.thread_id
            )
        }
        for thread_id in batch:
            if thread_id in by_id:
                thread, messages = by_id[thread_id], grouped.get(thread_id, [])
                if branches != "all":
                    messages = branch_path(messages, thread.active_leaf_id)
                yield ThreadExport(thread, messages, thread.active_leaf_id, attachments)


def import_job_list(*, user: User) -> QuerySet[ImportJob]:
    """The user's background imports, newest first."""
    return ImportJob.objects.filter(owner_id=user.pk).order_by("-created_at", "-id")


def import_job_list_all(*, status: str | None = None) -> QuerySet[ImportJob]:
    """Every user's background imports (for operators), newest first, with their owners."""
    jobs = ImportJob.objects.select_related("owner").order_by("-created_at", "-id")
    return jobs.filter(status=status) if status else jobs


def import_job_get_any(*, job_id: str | uuid.UUID) -> ImportJob:
    """Any user's import job (for operators), or NotFound."""
    pk = parse_uuid(job_id)
    job = ImportJob.objects.select_related("owner").filter(pk=pk).first() if pk else None
    if job is None:
        raise NotFound("Import not found.")
    return job
