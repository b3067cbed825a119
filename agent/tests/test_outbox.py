"""The reply outbox: a stored user message whose reply never started is queued again by the
sweep, at most once a minute, and answered with an error once it has waited too long."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from agent.services import _queued_key, reply_enqueue, reply_sweep_unanswered
from agent.tasks import sweep_unanswered
from messaging.models import ChatMessage, ReplyStream
from messaging.services import message_send
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def waiting(thread, content: str, *, age_seconds: float) -> ChatMessage:
    """A message stored ``age_seconds`` ago whose task never ran (no commit hook fires here)."""
    message, _ = message_send(thread=thread, sender=thread.owner, content=content)
    ChatMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(seconds=age_seconds))
    return ChatMessage.objects.get(pk=message.pk)


def reply_to(message: ChatMessage) -> ChatMessage | None:
    return ChatMessage.objects.filter(parent=message, role=ChatMessage.Role.AI).first()


def test_a_message_waiting_past_the_stale_time_is_queued_again_and_answered(settings):
    settings.STREAM_STALE_SECONDS = 10
    thread = make_thread()
    lost = waiting(thread, "what is 2 plus 3?", age_seconds=11)
    fresh = waiting(thread, "what is 4 plus 3?", age_seconds=1)  # its task may still be on its way
    assert reply_sweep_unanswered() == {"queued": 1, "given_up": 0}
    assert reply_to(lost).content == "2 plus 3 = **5**"
    assert reply_to(fresh) is None
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert (lost.awaiting_reply, fresh.awaiting_reply) == (False, True)
    assert reply_sweep_unanswered() == {"queued": 0, "given_up": 0}  # answered once, never again


def test_a_message_queued_a_moment_ago_is_not_queued_again(settings):
    settings.STREAM_STALE_SECONDS = 10
    message = waiting(make_thread(), "what is 2 plus 3?", age_seconds=30)
    cache.add(_queued_key(message.pk), 1, timeout=60)  # queued: its task waits behind others
    assert reply_enqueue(message.pk, again=True) == "already_queued"
    assert reply_sweep_unanswered() == {"queued": 0, "given_up": 0}
    assert not ReplyStream.objects.filter(reply_to=message).exists()


def test_a_message_that_waited_too_long_gets_an_error_reply_not_silence(settings):
    settings.STREAM_STALE_SECONDS = 10
    settings.REPLY_GIVE_UP_SECONDS = 3600
    message = waiting(make_thread(), "what is 2 plus 3?", age_seconds=3601)
    assert sweep_unanswered() == {"queued": 0, "given_up": 1}
    answer = reply_to(message)
    assert (answer.type, answer.metadata["stream_status"], answer.metadata["error"]) == ("error", "error", "unanswered")
    assert answer.content.startswith("No reply: the agent could not take this message up within 1 hour.")
    message.refresh_from_db()
    assert message.awaiting_reply is False
    assert ReplyStream.objects.get(reply_to=message).status == "error"
