"""``manage.py serve``: a real Daphne with the frame limits from the settings, and the consumer's
limits and close codes as a client of a real server sees them."""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.request
import uuid
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import connect

from chatproject.testing import Stack
from messaging.frames import REFUSALS_BEFORE_CLOSE

MAX_UPLOAD_BYTES = 3000
MAX_MESSAGE_CHARS = 100
# As chatproject.settings computes them.
FRAME_LIMIT = 4 * -(-MAX_UPLOAD_BYTES // 3) + 12 * MAX_MESSAGE_CHARS + 64 * 1024
BODY_LIMIT = 12 * MAX_MESSAGE_CHARS + 3 * 16 * 1024 + 64 * 1024


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
    # Until the count holds still for a second: on a loaded machine the frames in hand finish late.
    deadline = time.monotonic() + 20
    stored, previous = marked(stack, person, thread, marker), -1
    while (stored != previous or not stored) and time.monotonic() < deadline:
        time.sleep(1)
        previous, stored = stored, marked(stack, person, thread, marker)
    assert 1 <= stored <= 30
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


def request(url: str, method: str, *, body=None, headers: dict[str, str]) -> tuple[int, dict]:
    """An HTTP request; a body given as a list of chunks goes chunked, with no Content-Length."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, parts.path, body=iter(body) if isinstance(body, list) else body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_a_chunked_body_is_limited_and_otherwise_parsed(stack, person):
    headers = {"Authorization": f"Token {person['token']}", "Content-Type": "application/json"}
    url = stack.http_url(0, "/api/threads/")
    big = json.dumps({"title": "big", "metadata": {"pad": "x" * BODY_LIMIT}}).encode()
    status, body = request(url, "POST", body=[big[i : i + 8192] for i in range(0, len(big), 8192)], headers=headers)
    assert (status, body["code"]) == (413, "too_large")
    status, body = request(url, "POST", body=[b'{"title": ', b'"sent in chunks"}'], headers=headers)
    assert (status, body["title"]) == (201, "sent in chunks")
    titles = [thread["title"] for thread in request(url, "GET", headers=headers)[1]["results"]]
    assert "big" not in titles and "sent in chunks" in titles


def failed_logins(stack, count: int, forwarded_for: str) -> None:
    for n in range(count):
        status, _ = request(
            stack.http_url(0, "/api/auth/token/"),
            "POST",
            body=json.dumps({"username": f"nobody{n}", "password": "wrong"}),
            headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
        )
        assert status == 401


def token_status(stack, person, forwarded_for: str) -> int:
    return request(
        stack.http_url(0, "/api/auth/token/"),
        "POST",
        body=json.dumps({"username": person["username"], "password": person["password"]}),
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
    )[0]


def test_with_proxy_headers_log_ins_are_counted_per_forwarded_address(tmp_path_factory):
    env = {"PROXY_HEADERS": "1", "LOGIN_FAILURE_LIMIT": "3/60"}
    with Stack(tmp_path_factory.mktemp("proxied"), env=env) as proxied:
        [person] = proxied.create_users(1)
        failed_logins(proxied, 3, "203.0.113.7")
        assert token_status(proxied, person, "203.0.113.7") == 429
        assert token_status(proxied, person, "203.0.113.8") == 200


def test_without_proxy_headers_a_forwarded_address_is_not_believed(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("direct"), env={"LOGIN_FAILURE_LIMIT": "3/60"}) as direct:
        [person] = direct.create_users(1)
        failed_logins(direct, 3, "203.0.113.7")
        # All came from 127.0.0.1, whatever the header claimed: a client cannot pick a fresh address.
        assert token_status(direct, person, "203.0.113.8") == 429
