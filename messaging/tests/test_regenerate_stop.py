"""Regenerate (one stream per reply attempt, idempotent) and stop (partial text kept, worker quits)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from agent.services import ReplyEvent, reply_sweep_unanswered, reply_to_message
from chatproject.errors import NotFound
from messaging.models import ChatMessage, ReplyChunk, ReplyStream
from messaging.selectors import stream_text
from messaging.services import message_regenerate, stream_append, stream_start, stream_stop
from messaging.tests.factories import make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db

# What the test generators below saw happen: how far the worker read them.
produced: list[str] = []


def regenerate_url(thread_id, message_id) -> str:
    return reverse("message-regenerate", kwargs={"thread_id": thread_id, "message_id": message_id})


def stop_url(stream_id) -> str:
    return reverse("stream-stop", kwargs={"stream_id": stream_id})


@pytest.fixture
def answered(user, django_capture_on_commit_callbacks):
    """A thread with one question and its (inline) reply."""
    from messaging.services import message_send

    thread = make_thread(user)
    with django_capture_on_commit_callbacks(execute=True):
        question, _ = message_send(thread=thread, sender=user, content="what is 2 plus 2?")
    return thread, question, ChatMessage.objects.get(parent=question)


def test_regenerate_adds_a_sibling_reply_that_becomes_active(api, answered, django_capture_on_commit_callbacks):
    thread, question, first = answered
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(regenerate_url(thread.pk, question.pk), {}, format="json")
    assert response.status_code == 202, response.json()
    assert response.json() == {"reply_to": str(question.pk), "attempt": 1}
    second = ChatMessage.objects.filter(parent=question, role="ai").exclude(pk=first.pk).get()
    assert second.content == first.content == "2 plus 2 = **4**"
    assert ChatThread.objects.get(pk=thread.pk).active_leaf_id == second.pk
    assert list(ReplyStream.objects.filter(reply_to=question).order_by("attempt").values_list("attempt", "status")) == [
        (0, "complete"),
        (1, "complete"),
    ]
    listing = api.get(reverse("message-list", kwargs={"thread_id": thread.pk})).json()["results"]
    assert listing[0]["children_count"] == 2
    assert listing[2]["sibling_ids"] == [str(first.pk), str(second.pk)]
    # Given an AI message, the message it answers is answered again.
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(regenerate_url(thread.pk, first.pk), {}, format="json")
    assert response.json() == {"reply_to": str(question.pk), "attempt": 2}
    assert ChatMessage.objects.filter(parent=question, role="ai").count() == 3


def test_regenerate_is_idempotent_with_a_client_id(api, answered, django_capture_on_commit_callbacks):
    thread, question, _ = answered
    for expected in (202, 200, 200):
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(regenerate_url(thread.pk, question.pk), {"client_id": "again-1"}, format="json")
        assert response.status_code == expected
    assert ReplyStream.objects.filter(reply_to=question).count() == 2
    assert ReplyStream.objects.get(reply_to=question, attempt=1).client_id == "again-1"


def test_regenerate_refusals(api, other_api, user, answered):
    thread, question, _ = answered
    assert other_api.post(regenerate_url(thread.pk, question.pk), {}, format="json").status_code == 404
    assert api.post(regenerate_url(thread.pk, uuid.uuid4()), {}, format="json").status_code == 404
    assert api.post(regenerate_url(thread.pk, "nope"), {}, format="json").status_code == 404
    elsewhere = make_message(make_thread(user), "other thread")
    assert api.post(regenerate_url(thread.pk, elsewhere.pk), {}, format="json").status_code == 404
    note = make_message(thread, "a system note", role="system")
    response = api.post(regenerate_url(thread.pk, note.pk), {}, format="json")
    assert response.status_code == 400 and "message_id" in response.json()


def test_a_redelivered_task_starts_no_second_stream_for_one_attempt(user):
    question = make_message(make_thread(user), "q")
    assert stream_start(reply_to=question) is not None
    assert stream_start(reply_to=question) is None
    message_regenerate(thread=question.thread, sender=user, message_id=question.pk)
    assert stream_start(reply_to=question).attempt == 1
    assert stream_start(reply_to=question) is None


def test_a_regenerate_of_an_old_message_is_queued_again_not_given_up(user, settings):
    question = make_message(make_thread(user), "what is 2 plus 2?")
    stream_start(reply_to=question)
    ChatMessage.objects.filter(pk=question.pk).update(created_at=timezone.now() - timedelta(days=2))
    # Asked again but its task was lost (nothing ran after commit here).
    message_regenerate(thread=question.thread, sender=user, message_id=question.pk)
    ChatMessage.objects.filter(pk=question.pk).update(reply_requested_at=timezone.now() - timedelta(minutes=1))
    assert reply_sweep_unanswered() == {"queued": 1, "given_up": 0}
    assert ChatMessage.objects.filter(parent=question, role="ai", type="text").count() == 1


def test_stop_ends_the_stream_with_its_partial_text(api, other_api, user):
    question = make_message(make_thread(user), "q")
    stream = stream_start(reply_to=question)
    stream_append(stream=stream, delta="Hello, ")
    stream_append(stream=stream, delta="wor")
    assert other_api.post(stop_url(stream.pk)).status_code == 404
    response = api.post(stop_url(stream.pk))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "stopped" and body["message"]["content"] == "Hello, wor"
    assert body["message"]["parent"] == str(question.pk)
    # The worker's next delta is refused: it knows to quit.
    assert stream_append(stream=stream, delta="ld") is False
    # Stopping again changes nothing.
    again = api.post(stop_url(stream.pk)).json()
    assert again["status"] == "stopped" and again["message"]["id"] == body["message"]["id"]
    assert api.post(stop_url("not-a-uuid")).status_code == 404


def test_stop_in_another_thread_is_not_found_there(user):
    question = make_message(make_thread(user), "q")
    stream = stream_start(reply_to=question)
    with pytest.raises(NotFound):
        stream_stop(user=user, stream_id=stream.pk, thread_id=make_thread(user).pk)


def stopped_between_deltas(message: ChatMessage):
    """Stops its own reply after two deltas, as a user's stop would, and counts what is read."""
    for n in range(10):
        produced.append(f"d{n}")
        yield ReplyEvent(delta=f"d{n} ")
        time.sleep(0.06)  # past the coalescing window: each delta is sent
        if n == 1:
            stream = ReplyStream.objects.get(reply_to=message)
            stream_stop(user=message.sender, stream_id=stream.pk)


def stopped_between_steps(message: ChatMessage):
    produced.append("step 1")
    yield ReplyEvent(status={"step": "tool_start", "tool": "calculator"})
    stream_stop(user=message.sender, stream_id=ReplyStream.objects.get(reply_to=message).pk)
    produced.append("step 2")
    yield ReplyEvent(status={"step": "tool_end", "tool": "calculator"})
    produced.append("step 3")
    yield ReplyEvent(delta="never sent")


@pytest.mark.parametrize(
    ("generator", "read"),
    [("stopped_between_deltas", ["d0", "d1", "d2"]), ("stopped_between_steps", ["step 1", "step 2"])],
)
def test_the_worker_quits_at_the_next_delta_or_step_after_a_stop(user, settings, generator, read):
    settings.AGENT_REPLY_GENERATOR = f"{__name__}.{generator}"
    produced.clear()
    question = make_message(make_thread(user), "q")
    assert reply_to_message(question.pk) is None
    assert produced == read
    stream = ReplyStream.objects.get(reply_to=question)
    assert stream.status == "stopped"
    assert stream.message.content == stream_text(stream_id=stream.pk) and "never sent" not in stream.message.content


@pytest.mark.django_db(transaction=True)
def test_a_stopped_reply_from_a_real_worker_thread(user, settings):
    """The stop comes from another thread while the worker streams; the worker ends on its own."""
    settings.AGENT_REPLY_GENERATOR = f"{__name__}.slow_reply"
    question = make_message(make_thread(user), "q")
    done = []

    def work():
        try:
            done.append(reply_to_message(question.pk))
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 10
    while not ReplyStream.objects.filter(reply_to=question, chunk_count__gt=0).exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    stream = stream_stop(user=user, stream_id=ReplyStream.objects.get(reply_to=question).pk)
    worker.join(timeout=10)
    assert not worker.is_alive() and done == [None]
    assert stream.status == "stopped" and stream.message.content.startswith("word0 ")
    # Nothing was stored after the stop: the persisted text is every chunk, and no chunk came later.
    assert stream.message.content == stream_text(stream_id=stream.pk)
    assert (
        ReplyChunk.objects.filter(stream=stream).count()
        == stream.chunk_count
        == ReplyStream.objects.get(pk=stream.pk).chunk_count
    )


def slow_reply(message: ChatMessage):
    for n in range(400):
        yield ReplyEvent(delta=f"word{n} ")
        time.sleep(0.02)
