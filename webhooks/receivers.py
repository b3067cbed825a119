"""How webhooks hears of changes: signals of the lower apps, received INSIDE the transaction
that makes the change, so the outbox row commits (or rolls back) with it."""

from __future__ import annotations

from typing import Any

from messaging.models import ChatMessage
from threads.models import ChatThread

from . import events
from .services import event_record


def on_thread_changed(sender: Any, *, thread: ChatThread, change: str, **kwargs: Any) -> None:
    event_record(owner_id=thread.owner_id, type=f"thread.{change}", data=lambda: events.thread_data(thread))


def on_user_message_created(sender: Any, *, message: ChatMessage, **kwargs: Any) -> None:
    event_record(owner_id=message.sender_id, type="message.created", data=lambda: events.message_data(message))


def on_reply_finished(sender: Any, *, message: ChatMessage, status: str, **kwargs: Any) -> None:
    event_record(
        owner_id=message.thread.owner_id,
        type=events.reply_event_type(status),
        data=lambda: {**events.message_data(message), "status": status},
    )


def on_export_completed(sender: Any, *, user: Any, export: dict[str, Any], **kwargs: Any) -> None:
    """For ``exports.signals.export_completed`` (connected once the exports app exists)."""
    event_record(owner_id=user.pk, type="export.completed", data={"export": export})


def on_import_completed(sender: Any, *, user: Any, result: dict[str, Any], **kwargs: Any) -> None:
    """For ``exports.signals.import_completed``."""
    event_record(owner_id=user.pk, type="import.completed", data={"import": result})
