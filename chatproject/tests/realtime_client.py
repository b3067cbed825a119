"""WebSocket clients for the real-stack tests (soak and faults), on asyncio.

``LiveClient`` holds one connection and reads it in the background: every event is kept, and a
close is noticed with its code and time. ``ResilientClient`` behaves as the chat page does: when
its connection closes it reconnects (to its server, or to the next one) with ``?after=`` the
last message it has, so tests can check that nothing is lost and nothing arrives twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import websockets

from messaging.tests.support import protocol

Event = dict[str, Any]


def post_message(stack: Any, server: int, user: dict, thread: str, content: str) -> dict:
    """Post a user message over REST to server ``server`` of a ``chatproject.testing.Stack``."""
    request = urllib.request.Request(
        stack.http_url(server, f"/api/threads/{thread}/messages/"),
        data=json.dumps({"content": content}).encode(),
        headers={"Authorization": f"Token {user['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 201
        return json.load(response)


class LiveClient:
    """One connection, read in the background."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[Event] = []
        self.received_at: list[float] = []  # time.monotonic() of each event's arrival
        self.close_code: int | None = None
        self.closed_at: float | None = None
        self.closed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._ws: Any = None
        self._reader: asyncio.Task | None = None

    async def open(self, timeout: float = 10) -> LiveClient:
        self._ws = await websockets.connect(self.url, max_size=None, open_timeout=timeout)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                async with self._changed:
                    self.events.append(json.loads(raw))
                    self.received_at.append(time.monotonic())
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed_at = time.monotonic()
            self.close_code = self._ws.close_code
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def send(self, frame: Event) -> None:
        await self._ws.send(json.dumps(frame))

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float, *, start: int = 0) -> Event:
        """The first event from index ``start`` on that matches, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                for event in self.events[start:]:
                    if predicate(event):
                        return event
                if self.closed.is_set():
                    raise AssertionError(f"connection closed ({self.close_code}) while waiting; got {self.events}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching event in {timeout} s; got {self.events[start:]}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def ready(self, timeout: float = 10) -> None:
        """Wait until the server has finished connecting this client (joined the group, replayed)."""
        start = len(self.events)
        await self.send({"type": "ping"})
        await self.wait_for(lambda event: event["type"] == "pong", timeout, start=start)

    async def close(self) -> None:
        """Close the connection; every event it got must be one of docs/asyncapi.yaml's."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader
        for event in self.events:
            protocol.check_event(event)


def stream_text(events: list[Event], stream_id: str) -> str:
    """The stream's text from its chunks, checking they came from seq 0 with no gap or repeat."""
    chunks = [e for e in events if e["type"] == "stream_chunk" and e["stream_id"] == stream_id]
    assert [c["seq"] for c in chunks] == list(range(len(chunks))), f"gaps or repeats in {stream_id}"
    return "".join(c["delta"] for c in chunks)


def carried(event: Event) -> dict[str, Any]:
    """The message an event carries (``message`` and ``stream_end`` events); empty for others."""
    return event["message"] if event["type"] in ("message", "stream_end") else {}


def message_ids(events: list[Event]) -> Counter[str]:
    """How many times each message reached the client, as ``message`` or as a ``stream_end``."""
    seen: Counter[str] = Counter()
    for event in events:
        if event["type"] in ("message", "stream_end"):
            seen[event["message"]["id"]] += 1
    return seen


class ResilientClient:
    """A client that reconnects as the chat page does, resuming with ``?after=``.

    It keeps every session's events apart (``sessions``), remembers the last message it has, and
    after a close reconnects every ``retry_delay`` seconds, to its own server or, with
    ``failover``, to the next one in ``urls``.
    """

    def __init__(self, urls: list[str], *, failover: bool = False, retry_delay: float = 0.2) -> None:
        self.urls = urls
        self.failover = failover
        self.retry_delay = retry_delay
        self.server = 0
        self.sessions: list[list[Event]] = []
        self.closes: list[tuple[int | None, float]] = []
        self.last_message_id: str | None = None
        self.current: LiveClient | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    @property
    def events(self) -> list[Event]:
        return [event for session in self.sessions for event in session]

    def start(self) -> ResilientClient:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while not self._stopping:
            url = self.urls[self.server]
            if self.last_message_id:
                url += f"&after={self.last_message_id}"
            client = LiveClient(url)
            try:
                await client.open(timeout=5)
            except (OSError, TimeoutError, websockets.InvalidStatus, websockets.InvalidHandshake):
                await self._next_attempt()
                continue
            self.current = client
            self.sessions.append(client.events)
            self._connected.set()
            await client.closed.wait()
            self._connected.clear()
            # As the page does: resume after the last message this client has.
            for event in client.events:
                if event["type"] in ("message", "stream_end"):
                    self.last_message_id = event["message"]["id"]
            self.closes.append((client.close_code, time.monotonic()))
            await self._next_attempt()

    async def _next_attempt(self) -> None:
        if self.failover:
            self.server = (self.server + 1) % len(self.urls)
        await asyncio.sleep(self.retry_delay)

    async def ready(self, timeout: float = 20) -> None:
        """Wait until a connection is open and fully set up (it answers a ping)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not connected within {timeout} s; closes: {self.closes}")
            try:
                await asyncio.wait_for(self._connected.wait(), remaining)
                await self.current.ready(timeout=min(5, max(0.1, deadline - time.monotonic())))
                return
            except (AssertionError, TimeoutError, websockets.ConnectionClosed):
                await asyncio.sleep(0.05)

    async def send(self, frame: Event) -> None:
        await self.ready()
        await self.current.send(frame)

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float, *, start: int = 0) -> Event:
        """The first matching event of any session (from index ``start`` of ``events``), waiting
        across reconnects."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[start:]:
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching event in {timeout} s; sessions: {self.sessions}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._stopping = True
        if self.current is not None:
            await self.current.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def audit(self, expected_ids: set[str]) -> None:
        """Each expected message reached this client exactly once; every stream it saw end came
        whole, from seq 0, in the session that saw its end; every event is one of docs/asyncapi.yaml's."""
        for event in self.events:
            protocol.check_event(event)
        seen = message_ids(self.events)
        assert {i for i in expected_ids if seen[i] == 0} == set(), "messages lost"
        assert {i: n for i, n in seen.items() if n > 1} == {}, "messages received twice"
        for session in self.sessions:
            for end in (e for e in session if e["type"] == "stream_end"):
                starts = [
                    n
                    for n, e in enumerate(session)
                    if e["type"] == "stream_start" and e["stream_id"] == end["stream_id"]
                ]
                assert starts, f"stream_end without stream_start in its session: {end}"
                text = stream_text(session[starts[-1] :], end["stream_id"])
                if end["status"] in ("complete", "interrupted"):
                    assert text == end["message"]["content"], (text, end)
