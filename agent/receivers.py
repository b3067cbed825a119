"""How the agent hears of new user messages: ``messaging.signals.user_message_posted``."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings


def queue_reply(sender: Any, *, message_id: uuid.UUID, thread_id: uuid.UUID, **kwargs: Any) -> None:
    """Queue the reply on a Celery worker; with no broker, run it in a thread of this process."""
    from .tasks import agent_reply

    if agent_reply.app.conf.task_always_eager and settings.AGENT_EAGER_IN_BACKGROUND:
        from .services import run_reply_in_background

        run_reply_in_background(message_id)
        return
    agent_reply.delay(str(message_id))
