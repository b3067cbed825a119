import hashlib
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from chatproject.errors import InvalidInput, RateLimited
from messaging import services
from messaging.models import ChatAttachment, ChatMessage, ReplyStream
from messaging.services import (
    attachment_create,
    message_create,
    message_send,
    stream_append,
    stream_finish,
    stream_heartbeat,
    stream_start,
    stream_sweep_stale,
)
from messaging.signals import user_message_posted
from messaging.tests.factories import make_message
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def posted():
    """Every user_message_posted signal sent during the test."""
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    user_message_posted.connect(receiver)
    yield calls
    user_message_posted.disconnect(receiver)


def test_message_send_stores_and_announces_after_commit(posted, django_capture_on_commit_callbacks):
    thread = make_thread()
    with django_capture_on_commit_callbacks(execute=True):
        message, created = message_send(thread=thread, sender=thread.owner, content="Hi there")
        assert created
        assert posted == []  # nothing is announced before the row is committed
    assert posted == [{"signal": user_message_posted, "message_id": message.pk, "thread_id": thread.pk}]
    assert (message.role, message.type, message.sender) == ("user", "text", thread.owner)


def test_message_send_in_a_rolled_back_transaction_announces_nothing(posted, django_capture_on_commit_callbacks):
    thread = make_thread()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                message_send(thread=thread, sender=thread.owner, content="Hi")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
    assert callbacks == [] and posted == []
    assert ChatMessage.objects.count() == 0


def test_message_create_bumps_thread_activity():
    thread = make_thread()
    before = thread.updated_at
    make_message(thread)
    thread.refresh_from_db()
    assert thread.updated_at >= before


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", "may not be blank"),
        ("   \n", "may not be blank"),
        (None, "Must be a string"),
        ("x" * 101, "no more than 100"),
    ],
)
def test_message_send_validates_content(settings, content, error):
    settings.MAX_MESSAGE_CHARS = 100
    thread = make_thread()
    with pytest.raises(InvalidInput) as raised:
        message_send(thread=thread, sender=thread.owner, content=content)
    assert error in raised.value.errors["content"][0]
    assert ChatMessage.objects.count() == 0


def test_content_at_exactly_the_limit_is_accepted(settings):
    settings.MAX_MESSAGE_CHARS = 100
    thread = make_thread()
    assert len(message_send(thread=thread, sender=thread.owner, content="x" * 100)[0].content) == 100


def test_ai_messages_may_be_empty_and_never_have_a_sender():
    thread = make_thread()
    message = message_create(thread=thread, role="ai", content="", sender=thread.owner)
    assert message.sender is None


def test_parent_must_be_in_the_same_thread():
    thread, elsewhere = make_thread(), make_thread()
    first = make_message(thread)
    reply = message_create(thread=thread, role="ai", content="Answer", parent_id=str(first.pk))
    assert reply.parent == first
    for bad in (make_message(elsewhere).pk, uuid.uuid4(), "garbage"):
        with pytest.raises(InvalidInput) as raised:
            message_send(thread=thread, sender=thread.owner, content="x", parent_id=bad)
        assert "parent" in raised.value.errors


@pytest.mark.parametrize(("field", "value"), [("role", "robot"), ("type", "video"), ("metadata", [1])])
def test_message_create_rejects_unknown_values(field, value):
    thread = make_thread()
    kwargs = {"thread": thread, "role": "ai", "content": "x", field: value}
    with pytest.raises(InvalidInput) as raised:
        message_create(**kwargs)
    assert field in raised.value.errors


def test_attachment_create_stores_file_with_checksum():
    message = make_message(make_thread())
    data = b"a,b\n1,2\n"
    attachment = attachment_create(message=message, filename="../../etc/data.csv", data=data)
    assert attachment.filename == "data.csv"
    assert attachment.size == len(data) and attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert attachment.file_type == "text/csv"
    assert attachment.thread_id == message.thread_id
    assert attachment.url == f"/api/attachments/{attachment.pk}/download/"
    with attachment.file.open("rb") as stored:
        assert stored.read() == data


@pytest.mark.parametrize(
    ("filename", "data", "field"),
    [
        ("a.txt", b"", "data"),
        ("", b"x", "filename"),
        ("..", b"x", "filename"),
        ("???", b"x", "filename"),
        ("big.bin", b"x" * 11, "data"),
    ],
)
def test_attachment_create_refuses_bad_files(settings, filename, data, field):
    settings.MAX_UPLOAD_BYTES = 10
    message = make_message(make_thread())
    with pytest.raises(InvalidInput) as raised:
        attachment_create(message=message, filename=filename, data=data)
    assert field in raised.value.errors
    assert ChatAttachment.objects.count() == 0


def test_a_message_gets_one_stream_and_an_ended_stream_takes_nothing_more():
    question = make_message(make_thread(), "q")
    stream = stream_start(reply_to=question)
    assert stream_start(reply_to=question) is None
    assert stream_append(stream=stream, delta="partial")
    assert stream_finish(stream=stream, status="complete").content == "partial"
    assert stream_finish(stream=stream, status="interrupted") is None  # only one end wins
    assert not stream_append(stream=stream, delta="late")
    assert not stream_heartbeat(stream=stream)


def test_stale_sweep_ends_only_silent_streams(settings):
    settings.STREAM_STALE_SECONDS = 10
    thread = make_thread()
    silent = stream_start(reply_to=make_message(thread, "a"))
    stream_append(stream=silent, delta="half")
    alive = stream_start(reply_to=make_message(thread, "b"))
    ReplyStream.objects.filter(pk=silent.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=11))
    assert stream_sweep_stale() == 1
    silent.refresh_from_db()
    alive.refresh_from_db()
    assert (silent.status, alive.status) == ("interrupted", "streaming")
    assert silent.message.content == "half" and silent.message.metadata["interrupted"] is True


def test_sweep_streams_command(capsys):
    call_command("sweep_streams")
    assert "0 stale stream(s) ended" in capsys.readouterr().out


def test_a_sent_message_waits_in_the_reply_outbox_until_its_reply_starts():
    thread = make_thread()
    question, _ = message_send(thread=thread, sender=thread.owner, content="q")
    assert question.awaiting_reply is True
    # Messages that are not sent for an answer (the AI's own, imports) never wait for one.
    assert make_message(thread, "an answer", role="ai").awaiting_reply is False
    assert make_message(thread, "imported").awaiting_reply is False
    stream_start(reply_to=question)
    question.refresh_from_db()
    assert question.awaiting_reply is False


def test_with_the_shared_cache_down_messages_are_stored_and_still_rate_limited(settings):
    # A real Redis client on a port nothing listens on: every cache call fails as in an outage.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    settings.MESSAGE_RATE_LIMIT = (2, 60)
    services._rate_limit_fallback.clear()
    thread = make_thread()
    for number in range(2):
        _, created = message_send(thread=thread, sender=thread.owner, content=f"m{number}")
        assert created
    with pytest.raises(RateLimited):
        message_send(thread=thread, sender=thread.owner, content="one too many")
    assert ChatMessage.objects.filter(thread=thread).count() == 2
