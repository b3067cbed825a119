"""The catalogue of events sent to outgoing webhooks, and their payloads.

Every body is ``{"type", "timestamp", "data"}``; threads and messages in ``data`` have the same
JSON shape as in the REST API.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework.renderers import JSONRenderer

from messaging.models import ChatMessage
from messaging.serializers import message_payload
from threads.models import ChatThread
from threads.serializers import ThreadSerializer

EVENT_TYPES: dict[str, str] = {
    "thread.created": "A thread was created.",
    "thread.updated": "A thread's title, summary, status (archived) or metadata changed.",
    "thread.deleted": "A thread was deleted.",
    "message.created": "A user message was stored (sent in the page, the API or an incoming webhook).",
    "reply.completed": "The agent finished a reply.",
    "reply.failed": "A reply ended with an error, was interrupted (its worker died) or was stopped.",
    "export.completed": "An export of the user's threads is ready to download.",
    "import.completed": "An import ended: the threads it made and what it skipped (its messages send no events).",
}
# Sent only by the "send test" button, to the one endpoint, whatever it subscribed to.
TEST_EVENT = "webhook.test"
ALL = "*"


def thread_data(thread: ChatThread) -> dict[str, Any]:
    return {"thread": json.loads(JSONRenderer().render(ThreadSerializer(thread).data))}


def message_data(message: ChatMessage) -> dict[str, Any]:
    return {"message": message_payload(message)}


def reply_event_type(status: str) -> str:
    """reply.completed for a complete stream; reply.failed for every other ending."""
    return "reply.completed" if status == "complete" else "reply.failed"
