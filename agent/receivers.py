"""How the agent hears of new user messages: ``messaging.signals.user_message_posted``."""

from __future__ import annotations

import uuid
from typing import Any


def queue_reply(sender: Any, *, message_id: uuid.UUID, thread_id: uuid.UUID, **kwargs: Any) -> None:
    """Queue the reply on a Celery worker; with no broker, run it in a thread of this process."""
    from .services import reply_enqueue

    reply_enqueue(message_id)
