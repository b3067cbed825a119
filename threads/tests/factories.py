"""Small builders for test data; they go through the services so rows are always valid."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from threads.models import ChatThread
from threads.services import thread_create

_numbers = itertools.count(1)
PASSWORD = "correct-horse-battery"


def make_user(username: str | None = None, **fields: Any):
    username = username or f"user{next(_numbers)}"
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)


def make_thread(owner=None, title: str = "A thread", **fields: Any) -> ChatThread:
    thread = thread_create(owner=owner or make_user(), title=title, metadata=fields.pop("metadata", None))
    if fields:
        ChatThread.objects.filter(pk=thread.pk).update(**fields)
        thread.refresh_from_db()
    return thread
