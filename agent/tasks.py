"""Celery tasks of the agent. Thin: the work is in ``agent.services``."""

from __future__ import annotations

from celery import shared_task

from .services import reply_to_message


@shared_task(name="agent.reply", ignore_result=True)
def agent_reply(message_id: str) -> str | None:
    """Stream and persist the agent's reply to one user message.

    Safe to deliver twice (acks_late redelivers after a lost worker): a message gets one stream.
    """
    message = reply_to_message(message_id)
    return str(message.pk) if message else None
