"""End to end on the real stack: two Daphne processes, one Celery worker, PostgreSQL and Redis.

A client on one server sends; a client on the other receives the message and the whole stream,
which a worker process produced and published through the Redis channel layer. Runs in the
PostgreSQL + Redis CI run (it needs a broker and a shared channel layer); skipped on the
embedded default, whose single-process path the consumer and browser tests cover.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from websockets.sync.client import connect

from chatproject.testing import Stack
from messaging.tests.support import protocol

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (a broker and a shared layer)")

STALE_SECONDS = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(
        tmp_path_factory.mktemp("stack"),
        servers=2,
        env={
            "AGENT_OFFLINE_WORD_DELAY_MS": "40",
            "STREAM_HEARTBEAT_SECONDS": "1",
            "STREAM_STALE_SECONDS": str(STALE_SECONDS),
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def people(stack):
    return stack.create_users(3, threads_each=1)


def events_until(ws, kind: str, *, timeout: float = 20) -> list[dict]:
    events, deadline = [], time.monotonic() + timeout
    while True:
        event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        protocol.check_event(event)  # every event is one of docs/asyncapi.yaml's
        events.append(event)
        if event["type"] == kind:
            return events


def ready(*sockets) -> None:
    """Wait until each server has finished connecting the client (joined the thread's group)."""
    for ws in sockets:
        ws.send(json.dumps({"type": "ping"}))
        assert events_until(ws, "pong")[-1] == {"type": "pong"}


def chunk_text(events: list[dict]) -> str:
    chunks = [e for e in events if e["type"] == "stream_chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks))), "gaps or repeats in seq"
    return "".join(c["delta"] for c in chunks)


def test_message_on_one_server_streams_to_a_client_on_the_other(stack, people):
    alice = people[0]
    thread = alice["threads"][0]
    with connect(stack.ws_url(0, alice, thread)) as sender, connect(stack.ws_url(1, alice, thread)) as watcher:
        ready(sender, watcher)
        sender.send(json.dumps({"type": "message", "content": "what is 12 times 12?", "client_id": "e2e-1"}))
        for ws in (sender, watcher):
            events = events_until(ws, "stream_end")
            kinds = [e["type"] for e in events]
            assert kinds[:2] == ["message", "stream_start"] and kinds.count("message") == 1
            assert events[0]["message"]["content"] == "what is 12 times 12?"
            assert [e["tool"] for e in events if e["type"] == "stream_status"] == ["calculator", "calculator"]
            end = events[-1]
            assert end["status"] == "complete"
            assert end["message"]["content"] == chunk_text(events) == "12 times 12 = **144**"


def test_rest_message_streams_to_websocket_clients(stack, people):
    import urllib.request

    bob = people[1]
    thread = bob["threads"][0]
    with connect(stack.ws_url(1, bob, thread)) as watcher:
        ready(watcher)
        request = urllib.request.Request(
            stack.http_url(0, f"/api/threads/{thread}/messages/"),
            data=json.dumps({"content": "what is 2^10"}).encode(),
            headers={"Authorization": f"Token {bob['token']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        events = events_until(watcher, "stream_end")
        assert events[0]["message"]["content"] == "what is 2^10"
        assert events[-1]["message"]["content"] == "2^10 = **1024**"


def test_a_client_that_reconnects_mid_stream_misses_nothing_and_gets_nothing_twice(stack, people):
    carol = people[2]
    thread = carol["threads"][0]
    words = " ".join(f"word{n}" for n in range(60))
    with connect(stack.ws_url(0, carol, thread)) as ws:
        ws.send(json.dumps({"type": "message", "content": f"uppercase: {words}"}))
        first = events_until(ws, "stream_chunk")
        user_message_id = first[0]["message"]["id"]
    time.sleep(0.5)  # chunks go on streaming while nobody on this connection listens
    with connect(stack.ws_url(1, carol, thread, after=user_message_id)) as ws:
        resumed = events_until(ws, "stream_end")
    assert resumed[0]["type"] == "stream_start"
    assert resumed[0]["stream_id"] == first[1]["stream_id"]
    text = chunk_text(resumed)  # replayed from seq 0, then live: no gap, no repeat
    assert text == resumed[-1]["message"]["content"] == words.upper()
    assert [e["type"] for e in resumed].count("message") == 0


def test_a_killed_worker_ends_the_stream_interrupted_with_its_partial_text(stack, people):
    alice = people[0]
    thread = alice["threads"][0]
    words = " ".join(f"slow{n}" for n in range(200))
    try:
        with connect(stack.ws_url(0, alice, thread)) as ws:
            ws.send(json.dumps({"type": "message", "content": f"uppercase: {words}"}))
            events = events_until(ws, "stream_chunk")
            stack.kill_worker()
            killed_at = time.monotonic()
            events += events_until(ws, "stream_end", timeout=STALE_SECONDS + 10)
            waited = time.monotonic() - killed_at
        end = events[-1]
        assert end["status"] == "interrupted", end
        partial = chunk_text(events)
        assert partial and end["message"]["content"] == partial
        assert words.upper().startswith(partial) and len(partial) < len(words)
        assert waited < STALE_SECONDS + 5
    finally:
        if stack.worker is None:
            stack.start_worker()
