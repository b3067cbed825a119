"""``manage.py serve``: a real Daphne with the frame limits from the settings, and the consumer's
limits and close codes as a client of a real server sees them."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import connect

from chatproject.testing import Stack
from messaging.frames import REFUSALS_BEFORE_CLOSE

MAX_UPLOAD_BYTES = 3000
MAX_MESSAGE_CHARS = 100
# As chatproject.settings computes it.
FRAME_LIMIT = 4 * -(-MAX_UPLOAD_BYTES // 3) + 12 * MAX_MESSAGE_CHARS + 64 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {"MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES), "MAX_MESSAGE_CHARS": str(MAX_MESSAGE_CHARS)}
    with Stack(tmp_path_factory.mktemp("serve"), env=env) as stack:
        yield stack


@pytest.fixture(scope="module")
def person(stack):
    return stack.create_users(1)[0]


def test_a_frame_over_the_limit_gets_too_large_and_the_connection_stays(stack, person):
    with connect(stack.ws_url(0, person, person["threads"][0]), max_size=None) as ws:
        ws.send(json.dumps({"type": "message", "content": "x" * (FRAME_LIMIT + 10)}))
        error = json.loads(ws.recv(timeout=10))
        assert (error["type"], error["code"]) == ("error", "too_large")
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}


def test_a_frame_past_twice_the_limit_is_dropped_by_daphne_and_the_server_lives_on(stack, person):
    with connect(stack.ws_url(0, person, person["threads"][0]), max_size=None) as ws:
        ws.send("x" * (2 * FRAME_LIMIT + 10))
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=10)
        # Autobahn fails the connection (1009 "message too big"), often without a close frame.
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1009
    with urllib.request.urlopen(stack.http_url(0, "/healthz"), timeout=5) as response:
        assert response.status == 200
    with connect(stack.ws_url(0, person, person["threads"][0])) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}


def events_until_closed(ws) -> tuple[list[dict], int | None]:
    """Every event until the server closes; and its close code (None: no close frame)."""
    events = []
    try:
        while True:
            events.append(json.loads(ws.recv(timeout=10)))
    except ConnectionClosed as closed:
        return events, closed.rcvd.code if closed.rcvd else None


def marked(stack, person, thread: str, marker: str) -> int:
    history = api(stack, person, "GET", f"/api/threads/{thread}/messages/?page_size=200")["results"]
    return sum(message["content"] == marker for message in history)


def test_a_flood_of_frames_is_refused_then_closed_4429_and_the_server_lives_on(stack, person):
    """Daphne takes frames as fast as they come; the consumer drains, counts and refuses them."""
    thread = person["threads"][0]
    marker = uuid.uuid4().hex
    with connect(stack.ws_url(0, person, thread)) as ws:
        with contextlib.suppress(ConnectionClosed):  # the server may close before the last is sent
            for _ in range(2000):
                ws.send(json.dumps({"type": "message", "content": marker}))
        events, code = events_until_closed(ws)
    assert code == 4429
    refusals = [e for e in events if e["type"] == "error"]
    # Refused for the rate (60 frames at once) or because 16 frames already wait: either way at once.
    assert len(refusals) >= REFUSALS_BEFORE_CLOSE
    assert {e["code"] for e in refusals} <= {"rate_limited", "overloaded"}
    assert all(e["retry_after"] >= 1 for e in refusals)
    # What was taken before the close is stored (the frame in hand may still be finishing; at most
    # MESSAGE_RATE_LIMIT, 30 a minute), the rest never.
    deadline = time.monotonic() + 10
    while not (stored := marked(stack, person, thread, marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    assert 1 <= stored == marked(stack, person, thread, marker) <= 30
    with urllib.request.urlopen(stack.http_url(0, "/healthz"), timeout=5) as response:
        assert response.status == 200
    with connect(stack.ws_url(0, person, thread)) as ws:
        ws.send(json.dumps({"type": "ping"}))
        while json.loads(ws.recv(timeout=10)) != {"type": "pong"}:
            pass  # the reply to what was stored may still be streaming


def api(stack, person, method: str, path: str, body: dict | None = None) -> dict | None:
    request = urllib.request.Request(
        stack.http_url(0, path),
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {person['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response) if response.status != 204 else None


def test_deleting_the_thread_over_the_api_closes_its_socket_4410(stack, person):
    thread = api(stack, person, "POST", "/api/threads/", {"title": "to delete"})["id"]
    with connect(stack.ws_url(0, person, thread)) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
        api(stack, person, "DELETE", f"/api/threads/{thread}/")
        assert events_until_closed(ws) == ([], 4410)
