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
from collections import Counter
from collections.abc import Callable
from typing import Any

import websockets

Event = dict[str, Any]


class LiveClient:
    """One connection, read in the background."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[Event] = []
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
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader


def stream_text(events: list[Event], stream_id: str) -> str:
    """The stream's text from its chunks, checking they came from seq 0 with no gap or repeat."""
    chunks = [e for e in events if e["type"] == "stream_chunk" and e["stream_id"] == stream_id]
    assert [c["seq"] for c in chunks] == list(range(len(chunks))), f"gaps or repeats in {stream_id}"
    return "".join(c["delta"] for c in chunks)


def message_ids(events: list[Event]) -> Counter[str]:
    """How many times each message reached the client, as ``message`` or as a ``stream_end``."""
    seen: Counter[str] = Counter()
    for event in events:
        if event["type"] in ("message", "stream_end"):
            seen[event["message"]["id"]] += 1
    return seen
