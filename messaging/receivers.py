"""Changes made elsewhere that must close open chat WebSockets (connected in ``MessagingConfig.ready``).

A thread deleted closes its sockets; a user signing out closes the sockets of that session; a user
deactivated or deleted closes all of theirs; an API token deleted closes the sockets it signed in.
Each close is broadcast after the change commits, so a client that reconnects finds it.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from chatproject.websocket import credential_digest

from .realtime import connections_close, thread_group, user_group


def close_thread_connections(sender: Any, *, thread_id: uuid.UUID, **kwargs: Any) -> None:
    """``threads.signals.thread_deleted`` (sent after commit)."""
    connections_close(thread_group(thread_id), "thread_deleted")


def close_session_connections(sender: Any, *, request: Any, user: Any, **kwargs: Any) -> None:
    """``user_logged_out``: only the sockets signed in with the session that ends."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is None or not session_key:
        return
    group, digest = user_group(user.pk), credential_digest(session_key)
    transaction.on_commit(lambda: connections_close(group, "signed_out", session=digest))


def close_connections_of_inactive_user(sender: Any, *, instance: Any, created: bool, **kwargs: Any) -> None:
    """``post_save`` of a user: a deactivated user keeps no socket open (there is no service to hook)."""
    if not created and not instance.is_active:
        group = user_group(instance.pk)
        transaction.on_commit(lambda: connections_close(group, "signed_out"))


def close_connections_of_deleted_user(sender: Any, *, instance: Any, **kwargs: Any) -> None:
    """``post_delete`` of a user."""
    group = user_group(instance.pk)
    transaction.on_commit(lambda: connections_close(group, "signed_out"))


def close_token_connections(sender: Any, *, instance: Any, **kwargs: Any) -> None:
    """``post_delete`` of an API token (also when the admin deletes it, through its TokenProxy)."""
    group, digest = user_group(instance.user_id), credential_digest(instance.key)
    transaction.on_commit(lambda: connections_close(group, "signed_out", token=digest))
