"""``manage.py serve``: a real Daphne with the frame limits from the settings."""

from __future__ import annotations

import json
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from chatproject.testing import Stack

MAX_UPLOAD_BYTES = 3000
MAX_MESSAGE_CHARS = 100
# As chatproject.settings computes it.
FRAME_LIMIT = 4 * -(-MAX_UPLOAD_BYTES // 3) + 4 * MAX_MESSAGE_CHARS + 64 * 1024


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
