"""Logging on a real stack: Daphne (``manage.py serve``) and, with Redis, a Celery worker.

One reply's lines are found by its request id across the processes: on the production
configuration the reply runs in the worker (the id travels in a task header), on the embedded
default in a thread of the server (the id travels in the thread's context). Tokens sent in query
strings appear in no process's output.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from websockets.sync.client import connect

from chatproject.testing import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "AGENT_OFFLINE_WORD_DELAY_MS": "0"}
    with Stack(tmp_path_factory.mktemp("logging"), env=env, worker_concurrency=2) as stack:
        yield stack


def _api(stack, person, method: str, path: str, body: dict | None = None, request_id: str | None = None):
    headers = {"Authorization": f"Token {person['token']}", "Content-Type": "application/json"}
    if request_id:
        headers["X-Request-ID"] = request_id
    request = urllib.request.Request(
        stack.http_url(0, path),
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers, json.load(response)


def _records(stack) -> dict[str, list[dict]]:
    """Each process's JSON lines, by log file name."""
    found = {}
    for log in stack.logs:
        found[log.name] = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return found


def _wait_for(check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {timeout} s")


def test_one_replys_lines_share_its_request_id_across_processes(stack):
    person = stack.create_users(1)[0]
    thread = person["threads"][0]

    # Over REST, with the token also (needlessly) in the query string, where logs would show it.
    headers, _ = _api(
        stack,
        person,
        "POST",
        f"/api/threads/{thread}/messages/?token={person['token']}",
        {"content": "What is 15% of 240?"},
        request_id="stack-http-1",
    )
    assert headers["X-Request-ID"] == "stack-http-1"
    _wait_for(
        lambda: len(_api(stack, person, "GET", f"/api/threads/{thread}/messages/")[1]["results"]) == 2,
        "the reply",
    )

    # Over a WebSocket: the id the client sent with its handshake marks the connection's replies.
    with connect(stack.ws_url(0, person, thread), additional_headers={"X-Request-ID": "stack-ws-1"}) as ws:
        ws.send(json.dumps({"type": "message", "content": "what is 2 plus 2?"}))
        while json.loads(ws.recv(timeout=30))["type"] != "stream_end":
            pass

    def reply_lines(request_id: str) -> list[tuple[str, dict]]:
        return [
            (name, r)
            for name, records in _records(stack).items()
            for r in records
            if r.get("logger") == "agent.services" and r.get("request_id") == request_id
        ]

    for request_id in ("stack-http-1", "stack-ws-1"):
        lines = _wait_for(lambda rid=request_id: len(reply_lines(rid)) == 2 and reply_lines(rid), f"{request_id} lines")
        assert lines[0][1]["message"].endswith("started") and "ended after" in lines[1][1]["message"]
        # The worker wrote them on the production stack; the server itself on the embedded one.
        assert {name.split("-")[0] for name, _ in lines} == {"worker" if stack.uses_redis else "server"}

    servers = [records for name, records in _records(stack).items() if name.startswith("server")]
    access = [r for records in servers for r in records if r.get("logger") == "chatproject.access"]
    post = [r for r in access if r.get("method") == "POST"]
    assert [(r["request_id"], r["status"], r["user_id"]) for r in post] == [("stack-http-1", 201, person["id"])]

    def websocket_lines() -> list[dict]:
        return [
            r for records in _records(stack).values() for r in records if r.get("event", "").startswith("websocket_")
        ]

    ws_lines = _wait_for(lambda: len(websocket_lines()) >= 2 and websocket_lines(), "the WebSocket lines")
    assert [r["event"] for r in ws_lines][-2:] == ["websocket_connect", "websocket_disconnect"]
    assert {r["request_id"] for r in ws_lines[-2:]} == {"stack-ws-1"}

    if stack.uses_redis:
        # A worker process forgets a task's id when it ends: the periodic sweeps it runs next have none.
        tasks = [r for r in _records(stack)[stack.worker_log.name] if r.get("logger") == "celery.app.trace"]
        assert {r["request_id"] for r in tasks if "agent.reply" not in r["message"]} <= {None}

    # No process printed the token, nor anything but JSON lines (Daphne's own access log is off).
    for log in stack.logs:
        text = log.read_text()
        assert person["token"] not in text, log.name
        if log.name.startswith("server"):
            assert all(line.startswith("{") for line in text.splitlines()), text[:2000]
