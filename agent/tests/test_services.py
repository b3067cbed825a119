import threading
import time

import pytest

from agent.services import (
    COALESCE_CHARS,
    EMBEDDED_REPLY_WORKERS,
    ReplyEvent,
    reply_to_message,
    run_reply_in_background,
)
from messaging.models import ChatMessage, ReplyStream
from messaging.selectors import stream_chunk_list, stream_text
from messaging.services import stream_finish
from messaging.tests.factories import make_message
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def many_tiny_deltas(message):
    for _ in range(1000):
        yield ReplyEvent(delta="a")


def test_reply_is_streamed_and_persisted_as_an_answer():
    question = make_message(make_thread(), "what is 6 times 7?")
    answer = reply_to_message(question.pk)
    assert (answer.role, answer.type, answer.parent_id, answer.sender) == ("ai", "text", question.pk, None)
    assert answer.content == "6 times 7 = **42**"
    stream = ReplyStream.objects.get(reply_to=question)
    assert stream.status == "complete" and stream_text(stream_id=stream.pk) == answer.content
    assert answer.metadata["stream_id"] == str(stream.pk) and answer.metadata["stream_status"] == "complete"
    assert answer.metadata["model"] == "offline"
    trajectory = answer.metadata["trajectory"]
    assert trajectory["tool_name_0"] == "calculator" and trajectory["observation_0"] == "6 times 7 = 42"


def test_fast_tokens_are_coalesced_into_few_chunks(settings):
    settings.AGENT_REPLY_GENERATOR = "agent.tests.test_services.many_tiny_deltas"
    question = make_message(make_thread(), "go")
    answer = reply_to_message(question.pk)
    chunks = [delta for _, delta in stream_chunk_list(stream_id=ReplyStream.objects.get(reply_to=question).pk)]
    assert answer.content == "a" * 1000 == "".join(chunks)
    # One publish per token would be 1000; the first goes alone, the rest in batches.
    assert len(chunks) <= 1 + 1000 // COALESCE_CHARS + 1


def test_a_redelivered_task_does_not_answer_twice():
    question = make_message(make_thread(), "once")
    assert reply_to_message(question.pk) is not None
    assert reply_to_message(question.pk) is None
    assert ChatMessage.objects.filter(parent=question, role="ai").count() == 1


@pytest.mark.parametrize("role", ["ai", "system"])
def test_only_user_messages_are_answered(role):
    message = make_message(make_thread(), "not a question", role=role)
    assert reply_to_message(message.pk) is None
    assert not ReplyStream.objects.exists()


def test_a_missing_message_is_ignored():
    assert reply_to_message("00000000-0000-0000-0000-000000000000") is None


def ended_by_someone_else(message):
    yield ReplyEvent(delta="first part")
    stream = ReplyStream.objects.get(reply_to=message)
    stream_finish(stream=stream, status="interrupted")  # as the stale sweep would
    yield ReplyEvent(delta=" more that nobody will see")


def test_the_worker_stops_when_its_stream_was_ended_elsewhere(settings):
    settings.AGENT_REPLY_GENERATOR = "agent.tests.test_services.ended_by_someone_else"
    question = make_message(make_thread(), "hi")
    assert reply_to_message(question.pk) is None
    [answer] = ChatMessage.objects.filter(parent=question)
    assert answer.content == "first part" and answer.metadata["stream_status"] == "interrupted"


def failing(message):
    yield ReplyEvent(status={"step": "tool_start", "tool": "calculator", "input": "1/0"})
    raise ZeroDivisionError("division by zero")


def test_an_agent_error_is_persisted_as_an_error_message(settings):
    settings.AGENT_REPLY_GENERATOR = "agent.tests.test_services.failing"
    question = make_message(make_thread(), "divide")
    answer = reply_to_message(question.pk)
    assert answer.type == "error" and "ZeroDivisionError: division by zero" in answer.content
    assert answer.metadata["error"] == "ZeroDivisionError"
    assert ReplyStream.objects.get(reply_to=question).status == "error"


REPLY_THREADS: list[str] = []


def recording_thread(message):
    REPLY_THREADS.append(threading.current_thread().name)
    time.sleep(0.05)  # long enough that the pool must run several replies at once
    yield ReplyEvent(delta=f"{message.content} done")


@pytest.mark.django_db(transaction=True)
def test_background_replies_run_on_a_small_pool_and_all_finish(settings):
    settings.AGENT_REPLY_GENERATOR = "agent.tests.test_services.recording_thread"
    REPLY_THREADS.clear()
    thread = make_thread()
    questions = [make_message(thread, f"question {n}") for n in range(3 * EMBEDDED_REPLY_WORKERS)]
    futures = [run_reply_in_background(question.pk) for question in questions]
    for future in futures:
        future.result(timeout=30)
    for n, question in enumerate(questions):
        assert ChatMessage.objects.get(parent=question, role="ai").content == f"question {n} done"
    # Every reply ran on the pool, never on the caller's thread, and on no more than its workers.
    assert len(REPLY_THREADS) == len(questions)
    assert threading.current_thread().name not in REPLY_THREADS
    assert all(name.startswith("reply") for name in REPLY_THREADS)
    assert 1 < len(set(REPLY_THREADS)) <= EMBEDDED_REPLY_WORKERS


def silent_until_ended(message):
    """A model that says nothing until its stream has ended elsewhere (a stop from another
    client), as a model thinking for a long time would: only the heartbeat can notice."""
    stream = ReplyStream.objects.get(reply_to=message)
    yield ReplyEvent(status={"step": "info", "message": "thinking"})
    stream_finish(stream=stream, status="stopped")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.05)
        yield ReplyEvent(metadata={"waited": True})  # no delta, no status: nothing written
    yield ReplyEvent(delta="too late")


@pytest.mark.django_db(transaction=True)
def test_a_silent_reply_learns_from_the_heartbeat_that_its_stream_ended(settings):
    settings.STREAM_HEARTBEAT_SECONDS = 0.2
    settings.AGENT_REPLY_GENERATOR = "agent.tests.test_services.silent_until_ended"
    question = make_message(make_thread(), "hi")
    started = time.monotonic()
    assert reply_to_message(question.pk) is None
    assert time.monotonic() - started < 5  # the heartbeat told it within a beat or two, not after 10 s
    assert "too late" not in ReplyStream.objects.get(reply_to=question).message.content


@pytest.mark.django_db(transaction=True)
def test_one_heartbeat_thread_beats_for_every_reply_of_the_process(settings):
    """Three replies at once in one process share one heartbeat thread, which beats for each of
    them in one UPDATE and tells only the one whose stream ended elsewhere; it ends with the last."""
    from agent.services import _heartbeats
    from messaging.services import stream_start

    settings.STREAM_HEARTBEAT_SECONDS = 0.2
    thread = make_thread()
    streams = [stream_start(reply_to=make_message(thread, f"question {n}")) for n in range(3)]
    before = {s.pk: s.heartbeat_at for s in streams}
    lost = {s.pk: _heartbeats.join(s.pk) for s in streams}
    try:
        time.sleep(0.7)
        beaten = dict(ReplyStream.objects.filter(pk__in=before).values_list("pk", "heartbeat_at"))
        assert all(beaten[pk] > before[pk] for pk in before)
        assert [t.name for t in threading.enumerate()].count("reply-heartbeats") == 1
        stream_finish(stream=streams[0], status="stopped")
        deadline = time.monotonic() + 5
        while not lost[streams[0].pk].is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lost[streams[0].pk].is_set()
        assert not lost[streams[1].pk].is_set() and not lost[streams[2].pk].is_set()
    finally:
        for stream in streams:
            _heartbeats.leave(stream.pk)
    deadline = time.monotonic() + 5
    while any(t.name == "reply-heartbeats" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "reply-heartbeats" for t in threading.enumerate())
