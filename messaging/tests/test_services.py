import hashlib
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from chatproject import ratelimit
from chatproject.errors import (
    DomainError,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    RateLimited,
    TooLarge,
    TooManyReplies,
)
from messaging.models import ChatAttachment, ChatMessage, ReplyStream
from messaging.selectors import REPLY_WAIT_WINDOW, stream_chunk_list
from messaging.services import (
    attachment_create,
    message_create,
    message_send,
    message_send_file,
    stream_append,
    stream_finish,
    stream_heartbeat,
    stream_heartbeat_many,
    stream_start,
    stream_sweep_stale,
)
from messaging.signals import user_message_posted
from messaging.tests.factories import make_message
from threads.models import ChatThread
from threads.services import thread_delete
from threads.tests.factories import make_thread, make_user

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
    long_ago = timezone.now() - timedelta(days=3)
    ChatThread.objects.filter(pk=thread.pk).update(updated_at=long_ago)
    make_message(thread)
    thread.refresh_from_db()
    assert thread.updated_at > long_ago + timedelta(days=2)


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
    for missing in (make_message(elsewhere).pk, uuid.uuid4()):
        with pytest.raises(NotFound, match="Parent message not found"):
            message_send(thread=thread, sender=thread.owner, content="x", parent_id=missing)
    with pytest.raises(InvalidInput) as raised:
        message_send(thread=thread, sender=thread.owner, content="x", parent_id="garbage")
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


# --- Limits on what a user can send -------------------------------------------------------------


def stored_files(settings) -> list:
    return [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


def test_user_message_metadata_is_bounded_but_the_agents_is_not(settings):
    settings.METADATA_MAX_BYTES = 100
    thread = make_thread()
    with pytest.raises(TooLarge) as error:
        message_send(thread=thread, sender=thread.owner, content="hi", metadata={"pad": "x" * 100})
    assert list(error.value.errors) == ["metadata"]
    with pytest.raises(TooLarge):
        message_send(thread=thread, sender=thread.owner, content="hi", metadata={"a": {"b": [[[[[[[1]]]]]]]}})
    assert ChatMessage.objects.count() == 0

    # A reply's trajectory is the agent's own record and may be large.
    stream = stream_start(reply_to=make_message(thread, "q"))
    reply = stream_finish(stream=stream, status="complete", content="a", metadata={"trajectory": "t" * 1000})
    assert reply.metadata["trajectory"] == "t" * 1000


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 24
GIF = b"GIF89a" + b"\x00" * 24
WEBP = b"RIFF\x20\x00\x00\x00WEBPVP8 " + b"\x00" * 16
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


@pytest.mark.parametrize(
    ("filename", "content_type", "data"),
    [
        ("photo.png", "image/png", PNG),
        ("photo.jpg", "image/jpeg", JPEG),
        ("anim.gif", "", GIF),
        ("pic.webp", "image/webp", WEBP),
        ("paper.pdf", "application/pdf", PDF),
        ("notes.txt", "text/plain", "café ☕\n".encode()),
        ("notes.md", "text/markdown", b"\xef\xbb\xbf# With a BOM\n"),
        ("data.csv", "text/csv", b"a,b\n1,2\n"),
        ("data.json", "application/json", b'{"a": [1, 2]}'),
        ("script.py", "text/plain", b"print('a text file by another name')\n"),
    ],
)
def test_files_whose_content_matches_their_type_are_stored(filename, content_type, data):
    thread = make_thread()
    message, created = message_send_file(
        thread=thread, sender=thread.owner, filename=filename, data=data, content_type=content_type
    )
    assert created and message.attachments.get().size == len(data)


@pytest.mark.parametrize(
    ("filename", "content_type", "data", "field"),
    [
        ("photo.png", "image/png", JPEG, "data"),
        ("photo.png", "image/png", b"<script>alert(1)</script>", "data"),
        ("photo.jpg", "image/jpeg", PNG, "data"),
        ("anim.gif", "image/gif", b"GIF90a" + b"\x00" * 10, "data"),
        ("pic.webp", "image/webp", b"RIFF\x20\x00\x00\x00WAVEfmt ", "data"),
        ("paper.pdf", "application/pdf", b"<html><body>not a pdf</body></html>", "data"),
        ("notes.txt", "text/plain", PNG, "data"),
        ("notes.txt", "text/plain", b"text with a \x00 NUL byte", "data"),
        ("notes.txt", "text/plain", "latin-1 café".encode("latin-1"), "data"),
        ("data.csv", "text/csv", b"\xff\xfea\x00,\x00b\x00", "data"),
        ("data.json", "application/json", b"{not json", "data"),
        ("data.json", "application/json", b"[" * 100_000 + b"]" * 100_000, "data"),
        # The name and the declared type must agree.
        ("photo.png", "application/pdf", PDF, "filename"),
        ("page.html", "image/png", PNG, "filename"),
        ("drawing.svg", "text/plain", b"<svg onload=alert(1)>", "filename"),
    ],
)
def test_files_whose_content_does_not_match_their_type_are_refused(settings, filename, content_type, data, field):
    thread = make_thread()
    with pytest.raises(InvalidInput) as error:
        message_send_file(thread=thread, sender=thread.owner, filename=filename, data=data, content_type=content_type)
    assert list(error.value.errors) == [field]
    assert ChatMessage.objects.count() == 0 and ChatAttachment.objects.count() == 0
    assert stored_files(settings) == []


def test_upload_quota_counts_every_thread_of_the_user_and_refuses_past_it(settings):
    settings.UPLOAD_QUOTA_BYTES = 100
    owner = make_user()
    first, deleted = make_thread(owner), make_thread(owner)
    message_send_file(thread=first, sender=owner, filename="a.txt", data=b"a" * 40)
    message_send_file(thread=deleted, sender=owner, filename="b.txt", data=b"b" * 40)
    thread_delete(thread=deleted)  # its file is still stored: it still counts

    with pytest.raises(QuotaExceeded) as error:
        message_send_file(thread=first, sender=owner, filename="c.txt", data=b"c" * 21)
    assert error.value.code == "quota_exceeded" and "80\xa0bytes of 100\xa0bytes used" in error.value.message
    assert ChatMessage.objects.count() == 2 and ChatAttachment.objects.count() == 2
    assert len(stored_files(settings)) == 2

    # Exactly up to the quota is fine, and another user has a quota of their own.
    message_send_file(thread=first, sender=owner, filename="d.txt", data=b"d" * 20)
    other = make_thread()
    message_send_file(thread=other, sender=other.owner, filename="e.txt", data=b"e" * 100)


def test_quota_exceeded_is_413_with_its_code_in_the_api():
    from chatproject.errors import api_exception_handler

    response = api_exception_handler(QuotaExceeded("Full."), {})
    assert (response.status_code, response.data) == (413, {"detail": "Full.", "code": "quota_exceeded"})


@pytest.fixture
def replies_wait():
    """The agent is not told of new messages: replies wait for a worker, as when all are busy."""
    from agent.receivers import queue_reply

    assert user_message_posted.disconnect(dispatch_uid="agent.queue_reply")
    yield
    user_message_posted.connect(queue_reply, dispatch_uid="agent.queue_reply")


@pytest.mark.usefixtures("replies_wait")
def test_replies_in_progress_are_capped_per_user(settings):
    settings.MAX_CONCURRENT_REPLIES = 2
    thread = make_thread()
    owner = thread.owner
    waiting, _ = message_send(thread=thread, sender=owner, content="one")  # no reply started yet
    streaming, _ = message_send(thread=thread, sender=owner, content="two")
    stream = stream_start(reply_to=streaming)  # a reply in progress

    with pytest.raises(TooManyReplies) as error:
        message_send(thread=make_thread(owner), sender=owner, content="three")
    assert error.value.code == "too_many_replies" and error.value.retry_after > 0
    assert "2 replies in progress" in error.value.message
    assert ChatMessage.objects.count() == 2
    # Files are messages that get a reply too.
    with pytest.raises(TooManyReplies):
        message_send_file(thread=thread, sender=owner, filename="a.txt", data=b"a")
    assert ChatAttachment.objects.count() == 0 and stored_files(settings) == []

    # Another user is not affected.
    message_send(thread=make_thread(), sender=make_user(), content="mine")

    # A reply that ends frees its place...
    stream_finish(stream=stream, status="complete", content="done")
    message_send(thread=thread, sender=owner, content="three")
    # ...and so does a message nobody took up for too long (its task was lost).
    with pytest.raises(TooManyReplies):
        message_send(thread=thread, sender=owner, content="four")
    ChatMessage.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - REPLY_WAIT_WINDOW)
    message_send(thread=thread, sender=owner, content="four")


def test_too_many_replies_is_429_with_its_code_in_the_api(api, user, settings, replies_wait):
    settings.MAX_CONCURRENT_REPLIES = 1
    thread = make_thread(user)
    url = f"/api/threads/{thread.pk}/messages/"
    assert api.post(url, {"content": "one"}, format="json").status_code == 201
    refused = api.post(url, {"content": "two"}, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.json()["code"] == "too_many_replies" and "1 reply in progress" in refused.json()["detail"]
    assert thread.messages.count() == 1


def at_once(count: int, action) -> list[str]:
    """Run ``action(n)`` in ``count`` threads released together; each one's outcome."""
    barrier = threading.Barrier(count)
    outcomes: list[str] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            action(n)
            outcomes.append("stored")
        except DomainError as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return sorted(outcomes)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("replies_wait")
def test_sends_at_once_cannot_pass_the_reply_cap_together(settings):
    settings.MAX_CONCURRENT_REPLIES = 2
    thread = make_thread()
    outcomes = at_once(6, lambda n: message_send(thread=thread, sender=thread.owner, content=f"m{n}"))
    assert outcomes == ["stored"] * 2 + ["too_many_replies"] * 4
    assert ChatMessage.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("replies_wait")
def test_uploads_at_once_cannot_pass_the_quota_together(settings):
    settings.UPLOAD_QUOTA_BYTES = 100
    thread = make_thread()
    outcomes = at_once(
        6, lambda n: message_send_file(thread=thread, sender=thread.owner, filename=f"{n}.txt", data=b"x" * 40)
    )
    assert outcomes == ["quota_exceeded"] * 4 + ["stored"] * 2
    assert ChatAttachment.objects.count() == 2 and len(stored_files(settings)) == 2


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
    ratelimit.local_counts.clear()
    thread = make_thread()
    for number in range(2):
        _, created = message_send(thread=thread, sender=thread.owner, content=f"m{number}")
        assert created
    with pytest.raises(RateLimited):
        message_send(thread=thread, sender=thread.owner, content="one too many")
    assert ChatMessage.objects.filter(thread=thread).count() == 2


def test_null_characters_are_refused_from_users_and_replaced_in_what_the_agent_writes():
    thread = make_thread()
    with pytest.raises(InvalidInput) as raised:
        message_send(thread=thread, sender=thread.owner, content="a\x00b")
    assert raised.value.errors == {"content": ["Null characters are not allowed."]}
    reply = message_create(thread=thread, role="ai", content="out\x00put", metadata={"tool": {"out\x00": ["\x00"]}})
    reply.refresh_from_db()
    assert reply.content == "out\ufffdput" and reply.metadata == {"tool": {"out\ufffd": ["\ufffd"]}}


def test_a_delta_with_null_characters_is_stored_and_streamed_without_them():
    question = make_message(make_thread(), "run it")
    stream = stream_start(reply_to=question)
    assert stream_append(stream=stream, delta="a\x00b")
    assert stream_chunk_list(stream_id=stream.pk) == [(0, "a\ufffdb")]


def test_stream_heartbeat_many_beats_open_streams_and_names_them():
    thread = make_thread()
    open_streams = [stream_start(reply_to=make_message(thread, f"q{n}")) for n in range(2)]
    ended = stream_start(reply_to=make_message(thread, "q ended"))
    stream_finish(stream=ended, status="stopped")
    ReplyStream.objects.update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    ids = [s.pk for s in (*open_streams, ended)]
    assert stream_heartbeat_many(stream_ids=ids) == {s.pk for s in open_streams}
    fresh = timezone.now() - timedelta(minutes=1)
    assert all(s.heartbeat_at > fresh for s in ReplyStream.objects.filter(pk__in=[s.pk for s in open_streams]))
    assert ReplyStream.objects.get(pk=ended.pk).heartbeat_at < fresh  # an ended stream is not touched
    assert stream_heartbeat_many(stream_ids=[]) == set()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="holds one stream's row lock (PostgreSQL)")
@pytest.mark.django_db(transaction=True)
def test_stream_heartbeat_many_skips_a_stream_whose_row_is_locked_instead_of_waiting():
    """One reply's end (or chunk write) holding its stream's row must not stall the heartbeat of
    the others, nor end that reply: it is skipped this time and still reported as streaming."""
    thread = make_thread()
    busy, free = (stream_start(reply_to=make_message(thread, f"q{n}")) for n in range(2))
    ReplyStream.objects.update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                ReplyStream.objects.select_for_update().get(pk=busy.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(10)
        assert stream_heartbeat_many(stream_ids=[busy.pk, free.pk]) == {busy.pk, free.pk}
    finally:
        release.set()
        holder.join(10)
    fresh = timezone.now() - timedelta(minutes=1)
    assert ReplyStream.objects.get(pk=free.pk).heartbeat_at > fresh
    assert ReplyStream.objects.get(pk=busy.pk).heartbeat_at < fresh  # skipped, not waited for
