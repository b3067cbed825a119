"""The chat WebSocket, through the project's real ASGI stack (origin check, auth, routing).

On the embedded default the channel layer is the in-memory one; in the PostgreSQL + Redis run it
is channels-redis on the real Redis.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from chatproject import redis_options
from chatproject.asgi import application
from messaging.models import ChatMessage, ReplyStream
from messaging.services import stream_append, stream_finish, stream_start
from messaging.tests.factories import make_message
from threads.tests.factories import make_thread, make_user

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
def _fresh_channel_layer_and_cache(settings):
    """Each test gets its own channel layer (a fresh prefix on Redis) and an empty rate-limit cache."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    config = layers["default"].setdefault("CONFIG", {})
    if "hosts" in config:
        config["prefix"] = f"test-{uuid.uuid4().hex[:8]}"
    settings.CHANNEL_LAYERS = layers
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    cache.clear()


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def thread(alice):
    return make_thread(alice)


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


async def connect(user, thread, *, query: str = "", token: str | None = None, headers=None, user_id=None):
    """A connected communicator, or (communicator, close code) when the server closed it."""
    token = token if token is not None else await sync_to_async(token_for)(user)
    path = f"/ws/{thread.pk if hasattr(thread, 'pk') else thread}/{user_id or user.pk}/?token={token}"
    if query:
        path += "&" + query
    communicator = WebsocketCommunicator(application, path, headers=headers if headers is not None else [ORIGIN])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def ready(*communicators) -> None:
    """Wait until each consumer has finished connecting (joined the group, replayed)."""
    for communicator in communicators:
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from() == {"type": "pong"}


async def receive_until(communicator, kind: str, *, timeout: float = 5) -> list[dict]:
    """Every event up to and including the first of ``kind``."""
    events = []
    while True:
        event = await communicator.receive_json_from(timeout=timeout)
        events.append(event)
        if event["type"] == kind:
            return events


async def close_code(communicator) -> int:
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


def stream_text(events: list[dict]) -> str:
    chunks = [e for e in events if e["type"] == "stream_chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    return "".join(c["delta"] for c in chunks)


async def message_count(thread) -> int:
    return await sync_to_async(ChatMessage.objects.filter(thread=thread).count)()


async def test_message_is_broadcast_and_the_reply_streams(alice, thread):
    sender = await connect(alice, thread)
    watcher = await connect(alice, thread)
    await ready(sender, watcher)
    await sender.send_json_to({"type": "message", "content": "what is 2 plus 2?", "client_id": "c1"})

    for client in (sender, watcher):
        events = await receive_until(client, "stream_end")
        assert [e["type"] for e in events[:2]] == ["message", "stream_start"]
        user_message = events[0]["message"]
        assert (user_message["content"], user_message["role"], user_message["client_id"]) == (
            "what is 2 plus 2?",
            "user",
            "c1",
        )
        assert events[1]["reply_to"] == user_message["id"]
        end = events[-1]
        assert end["status"] == "complete" and end["stream_id"] == events[1]["stream_id"]
        assert end["message"]["content"] == stream_text(events) == "2 plus 2 = **4**"
        assert end["message"]["parent"] == user_message["id"] and end["message"]["role"] == "ai"
    assert await message_count(thread) == 2
    await sender.disconnect()
    await watcher.disconnect()


async def test_session_cookie_signs_a_browser_in(alice, thread):
    client = Client()
    await sync_to_async(client.force_login)(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application, f"/ws/{thread.pk}/{alice.pk}/", headers=[ORIGIN, (b"cookie", cookie)]
    )
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("case", "code"),
    [("no_token", 4401), ("bad_token", 4401), ("other_user_id", 4403), ("other_thread", 4404), ("bad_id", 4404)],
)
async def test_close_codes(alice, thread, case, code):
    bob = await sync_to_async(make_user)("bob")
    target, token, user_id = thread, None, None
    if case == "no_token":
        communicator = WebsocketCommunicator(application, f"/ws/{thread.pk}/{alice.pk}/", headers=[ORIGIN])
        assert (await communicator.connect())[0]
        assert await close_code(communicator) == code
        return
    if case == "bad_token":
        token = "not-a-token"
    elif case == "other_user_id":
        user_id = bob.pk
    elif case == "other_thread":
        target = await sync_to_async(make_thread)(bob)
    elif case == "bad_id":
        target = "not-a-uuid"
    communicator = await connect(alice, target, token=token, user_id=user_id)
    assert await close_code(communicator) == code


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [(b"http://localhost", True), (b"http://127.0.0.1:8000", True), (None, True), (b"https://evil.example", False)],
)
async def test_origin_is_checked(alice, thread, origin, accepted):
    token = await sync_to_async(token_for)(alice)
    headers = [(b"origin", origin)] if origin else []
    communicator = WebsocketCommunicator(application, f"/ws/{thread.pk}/{alice.pk}/?token={token}", headers=headers)
    connected, _ = await communicator.connect()
    assert connected is accepted
    await communicator.disconnect()


BAD_FRAMES = [
    ("{not json", "invalid_json", None),
    ("[1, 2]", "invalid_json", None),
    (json.dumps({"type": "shout", "content": "x"}), "unknown_type", None),
    (json.dumps({"content": "no type"}), "unknown_type", None),
    (json.dumps({"type": "message"}), "validation_error", "content"),
    (json.dumps({"type": "message", "content": "   "}), "validation_error", "content"),
    (json.dumps({"type": "message", "content": 42}), "validation_error", "content"),
    (json.dumps({"type": "message", "content": "x" * 101}), "too_large", "content"),
    (json.dumps({"type": "message", "content": "hi", "metadata": [1]}), "validation_error", "metadata"),
    (json.dumps({"type": "message", "content": "hi", "client_id": ""}), "validation_error", "client_id"),
    (json.dumps({"type": "file", "filename": "a.txt"}), "validation_error", "data"),
    (json.dumps({"type": "file", "filename": "a.txt", "data": "!!not base64!!"}), "validation_error", "data"),
    (
        json.dumps({"type": "file", "filename": "a.txt", "data": base64.b64encode(b"x" * 301).decode()}),
        "too_large",
        "data",
    ),
    (
        json.dumps({"type": "file", "filename": "run.exe", "data": base64.b64encode(b"MZ").decode()}),
        "validation_error",
        "content_type",
    ),
    (
        json.dumps({"type": "file", "filename": "a.txt", "content_type": "application/x-sh", "data": "aGk="}),
        "validation_error",
        "content_type",
    ),
    (
        json.dumps({"type": "file", "filename": "../", "content_type": "text/plain", "data": "aGk="}),
        "validation_error",
        "filename",
    ),
    (json.dumps({"type": "message", "content": "y" * 2000}), "too_large", None),
]


@pytest.mark.parametrize(("frame", "code", "field"), BAD_FRAMES)
async def test_bad_frames_get_an_error_keep_the_connection_and_store_nothing(
    alice, thread, settings, frame, code, field
):
    settings.MAX_MESSAGE_CHARS = 100
    settings.MAX_UPLOAD_BYTES = 300
    settings.WEBSOCKET_MAX_FRAME_BYTES = 1500
    communicator = await connect(alice, thread)
    await communicator.send_to(text_data=frame)
    error = await communicator.receive_json_from()
    assert error["type"] == "error" and error["code"] == code, error
    assert error["message"]
    if field:
        assert field in error["errors"], error
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    assert await message_count(thread) == 0
    await communicator.disconnect()


async def test_binary_frames_are_refused(alice, thread):
    communicator = await connect(alice, thread)
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await communicator.receive_json_from())["code"] == "invalid_json"
    await communicator.disconnect()


async def test_rate_limit(alice, thread, settings):
    settings.MESSAGE_RATE_LIMIT = (2, 60)
    communicator = await connect(alice, thread)
    for number in range(2):
        await communicator.send_json_to({"type": "message", "content": f"m{number}"})
        await receive_until(communicator, "stream_end")
    await communicator.send_json_to({"type": "message", "content": "one too many", "client_id": "c3"})
    error = await communicator.receive_json_from()
    assert (error["code"], error["client_id"]) == ("rate_limited", "c3") and error["retry_after"] >= 1
    assert await message_count(thread) == 4
    await communicator.disconnect()


async def test_same_client_id_twice_stores_one_message(alice, thread):
    sender = await connect(alice, thread)
    watcher = await connect(alice, thread)
    await ready(sender, watcher)
    frame = {"type": "message", "content": "only once", "client_id": "retry-me"}
    await sender.send_json_to(frame)
    first = await receive_until(sender, "stream_end")
    await receive_until(watcher, "stream_end")
    await sender.send_json_to(frame)
    again = await sender.receive_json_from()
    assert again["type"] == "message" and again["message"]["id"] == first[0]["message"]["id"]
    assert await watcher.receive_nothing(timeout=0.3)
    assert await message_count(thread) == 2
    await sender.disconnect()
    await watcher.disconnect()


async def test_file_frame_stores_an_attachment_and_the_reply_shows_the_tool_step(alice, thread):
    communicator = await connect(alice, thread)
    data = base64.b64encode(b"name,score\nada,3\n").decode()
    await communicator.send_json_to(
        {"type": "file", "filename": "scores.csv", "content_type": "text/csv", "data": data, "content": "my scores"}
    )
    events = await receive_until(communicator, "stream_end")
    message = events[0]["message"]
    assert (message["type"], message["content"]) == ("file", "my scores")
    [attachment] = message["attachments"]
    assert (attachment["filename"], attachment["file_type"], attachment["size"]) == ("scores.csv", "text/csv", 17)
    statuses = [e for e in events if e["type"] == "stream_status"]
    assert [s["step"] for s in statuses] == ["tool_start", "tool_end"]
    assert "scores.csv" in events[-1]["message"]["content"]
    await communicator.disconnect()


def failing_reply(message):
    from agent.services import ReplyEvent

    yield ReplyEvent(delta="Let me think")
    raise RuntimeError("the model went away")


async def test_agent_failure_ends_the_stream_with_an_error_message(alice, thread, settings):
    settings.AGENT_REPLY_GENERATOR = "messaging.tests.test_consumers.failing_reply"
    communicator = await connect(alice, thread)
    await communicator.send_json_to({"type": "message", "content": "hi"})
    events = await receive_until(communicator, "stream_end")
    error = next(e for e in events if e["type"] == "error")
    assert error["code"] == "agent_error" and "the model went away" in error["message"]
    end = events[-1]
    assert end["status"] == "error" and end["message"]["type"] == "error"
    assert end["message"]["content"].startswith("Let me think") and "RuntimeError" in end["message"]["content"]
    await communicator.disconnect()


async def test_resume_after_a_message_replays_later_messages_and_the_open_stream(alice, thread):
    def setup():
        first = make_message(thread, "first")
        second = make_message(thread, "second")
        stream = stream_start(reply_to=second)
        stream_append(stream=stream, delta="Part one, ")
        stream_append(stream=stream, delta="part two, ")
        return first, second, stream

    first, second, stream = await sync_to_async(setup)()
    communicator = await connect(alice, thread, query=f"after={first.pk}")
    replay = [await communicator.receive_json_from() for _ in range(4)]
    assert [e["type"] for e in replay] == ["message", "stream_start", "stream_chunk", "stream_chunk"]
    assert replay[0]["message"]["id"] == str(second.pk)
    assert replay[1] == {"type": "stream_start", "stream_id": str(stream.pk), "reply_to": str(second.pk)}
    assert [c["seq"] for c in replay[2:]] == [0, 1]

    await sync_to_async(stream_append)(stream=stream, delta="part three.")
    live = await communicator.receive_json_from()
    assert (live["type"], live["seq"], live["delta"]) == ("stream_chunk", 2, "part three.")
    await sync_to_async(stream_finish)(stream=stream, status="complete")
    end = await communicator.receive_json_from()
    assert end["type"] == "stream_end" and end["message"]["content"] == "Part one, part two, part three."
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_unknown_after_is_an_error_and_the_connection_stays(alice, thread):
    communicator = await connect(alice, thread, query=f"after={uuid.uuid4()}")
    error = await communicator.receive_json_from()
    assert (error["code"], list(error["errors"])) == ("validation_error", ["after"])
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


async def test_sync_frame_replays_what_the_client_missed(alice, thread):
    first = await sync_to_async(make_message)(thread, "first")
    communicator = await connect(alice, thread)
    later = await sync_to_async(make_message)(thread, "stored while the client was not listening")
    await communicator.send_json_to({"type": "sync", "after": str(first.pk)})
    event = await communicator.receive_json_from()
    assert event["message"]["id"] == str(later.pk)
    await communicator.disconnect()


async def test_a_gap_in_the_stream_is_filled_from_the_database(alice, thread):
    def setup():
        stream = stream_start(reply_to=make_message(thread, "question"))
        stream_append(stream=stream, delta="zero ")
        return stream

    stream = await sync_to_async(setup)()
    communicator = await connect(alice, thread)
    replay = [await communicator.receive_json_from() for _ in range(2)]
    assert [e["type"] for e in replay] == ["stream_start", "stream_chunk"]

    def drop_one_then_send_next():
        # seq 1 is stored but its event is lost (as channels-redis does over capacity).
        ReplyStream.objects.filter(pk=stream.pk).update(chunks=["zero ", "one "])
        stream.chunks = ["zero ", "one "]
        stream_append(stream=stream, delta="two")

    await sync_to_async(drop_one_then_send_next)()
    chunks = [await communicator.receive_json_from() for _ in range(2)]
    assert [(c["seq"], c["delta"]) for c in chunks] == [(1, "one "), (2, "two")]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_stream_whose_worker_died_ends_interrupted_with_its_partial_text(alice, thread, settings):
    settings.STREAM_HEARTBEAT_SECONDS = 0.5
    settings.STREAM_STALE_SECONDS = 1

    def setup():
        stream = stream_start(reply_to=make_message(thread, "question"))
        stream_append(stream=stream, delta="half an ans")
        ReplyStream.objects.filter(pk=stream.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=5))
        return stream

    stream = await sync_to_async(setup)()
    communicator = await connect(alice, thread)
    events = await receive_until(communicator, "stream_end", timeout=5)
    assert events[-1]["status"] == "interrupted"
    assert events[-1]["message"]["content"] == "half an ans"
    assert events[-1]["message"]["metadata"]["stream_status"] == "interrupted"
    status = await sync_to_async(lambda: ReplyStream.objects.get(pk=stream.pk).status)()
    assert status == "interrupted"
    await communicator.disconnect()


async def test_a_lost_message_event_is_sent_before_its_reply_starts(alice, thread):
    communicator = await connect(alice, thread)
    await ready(communicator)

    def question_whose_broadcast_is_lost():
        # Stored without an announcement, as if the layer dropped its event; then its reply starts.
        question = make_message(thread, "did you get this?")
        stream_start(reply_to=question)
        return question

    question = await sync_to_async(question_whose_broadcast_is_lost)()
    first, second = await communicator.receive_json_from(), await communicator.receive_json_from()
    assert (first["type"], first["message"]["id"]) == ("message", str(question.pk))
    assert second["type"] == "stream_start"
    await communicator.disconnect()


async def test_a_channel_layer_that_cannot_reach_redis_ends_the_connection_with_4503(alice, thread, settings):
    # A real channels-redis layer on a port nothing listens on: Redis is down.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_options.channel_layer_host("redis://127.0.0.1:1/0")]},
        }
    }
    communicator = await connect(alice, thread)
    error = await communicator.receive_json_from(timeout=10)
    assert (error["type"], error["code"], error["retry_after"]) == ("error", "unavailable", 5)
    assert await close_code(communicator) == 4503
    await communicator.disconnect()
