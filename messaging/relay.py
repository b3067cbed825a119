"""What one WebSocket client lacks, and only that: the per-connection dedupe and gap-fill.

Channel-layer delivery is at-most-once, and a client that reconnects (or sends ``sync``) is
replayed from the database while live events keep coming, so the same event can arrive twice
and any event can be missing. ``StreamRelay`` decides, for one connection, what to send: it drops
what the client already has (a replayed message, a repeated chunk, anything of an ended stream)
and fills what it lacks (a chunk gap, a missed start or end, a question whose broadcast was lost)
from the database. Its sends and loads are injected, so it is tested without a socket; the
consumer gives it the socket and ``database_sync_to_async`` loaders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from chatproject.errors import NotFound

from . import events

Send = Callable[[events.ServerEvent], Awaitable[None]]
# Messages after a message id (all when None; NotFound for an id not in the thread) and the open
# streams ({"id", "reply_to", "chunks"}): ``messaging.consumers._replay``.
LoadReplay = Callable[[str | None], Awaitable[tuple[list[dict[str, Any]], list[dict[str, Any]]]]]
# A stream's {"reply_to", "chunks", "end"}: its chunks from a seq on as (seq, delta) pairs, its
# end None while it streams; None when not in the thread: ``messaging.consumers._stream_state``.
LoadStream = Callable[[str, int], Awaitable[dict[str, Any] | None]]
# A message's payload, None when not in the thread: ``messaging.consumers._message_or_none``.
LoadMessage = Callable[[str], Awaitable[dict[str, Any] | None]]
# How many messages came after a message id; NotFound for an id not in the thread.
CountAfter = Callable[[str], Awaitable[int]]


class StreamRelay:
    """One connection's view of what its client has seen.

    Every public coroutine but ``send_message`` takes the relay's lock: live events, resyncs and
    the watchdog all decide what the client lacks, one at a time.
    """

    def __init__(
        self,
        *,
        send: Send,
        load_replay: LoadReplay,
        load_stream: LoadStream,
        load_message: LoadMessage,
        count_after: CountAfter,
        replay_limit: int,
    ) -> None:
        self._send = send
        self._load_replay = load_replay
        self._load_stream = load_stream
        self._load_message = load_message
        self._count_after = count_after
        self.replay_limit = replay_limit
        self.sent_message_ids: set[str] = set()
        # Per stream this client has seen start: the next seq it expects; ended streams leave.
        self.next_seq: dict[str, int] = {}
        self.ended_streams: set[str] = set()
        self.lock = asyncio.Lock()

    @property
    def open_streams(self) -> list[str]:
        """The streams this client has seen start and not end."""
        return list(self.next_seq)

    async def relay(self, event: dict[str, Any]) -> None:
        """A live event from the thread's group: send it, drop it, or fill what precedes it."""
        async with self.lock:
            await self._relay(event)

    async def resync(self, after: str | None) -> None:
        """Send the messages after ``after`` (none when None) and every open stream from its start.

        A client more than ``replay_limit`` messages behind gets ``resync_required`` instead of
        the messages (the open streams still follow); an ``after`` not in the thread, an error.
        """
        async with self.lock:
            await self._resync(after)

    async def catch_up(self, stream_id: str) -> None:
        """Fill one stream this client has open from the database (the stream watch saw it lag)."""
        async with self.lock:
            if stream_id in self.next_seq:
                await self._catch_up(stream_id)

    async def send_message(self, message: dict[str, Any], *, force: bool = False) -> None:
        """Send a message unless the client has it; ``force``: again (a retried send's answer)."""
        if message["id"] in self.sent_message_ids and not force:
            return
        self.sent_message_ids.add(message["id"])
        await self._send(events.message(message))

    # --- Decisions (the lock held) ----------------------------------------------------------------

    async def _relay(self, event: dict[str, Any]) -> None:
        # Live events were built by ``messaging.events`` in the services: forwarded as they came.
        payload = cast(events.ServerEvent, event)
        kind = event["type"]
        if kind == "message":
            await self.send_message(event["message"])
        elif kind == "stream_start":
            stream_id = event["stream_id"]
            if stream_id not in self.next_seq and stream_id not in self.ended_streams:
                await self._ensure_message(event["reply_to"])
                self.next_seq[stream_id] = 0
                await self._send(payload)
        elif kind == "stream_chunk":
            await self._relay_chunk(event)
        elif kind == "stream_status":
            if event["stream_id"] not in self.ended_streams:
                await self._send(payload)
        elif kind == "stream_end":
            await self._relay_end(event)
        else:
            await self._send(payload)

    async def _relay_chunk(self, event: dict[str, Any]) -> None:
        stream_id, seq = event["stream_id"], event["seq"]
        if stream_id in self.ended_streams:
            return
        expected = self.next_seq.get(stream_id)
        if expected is not None and seq < expected:
            return
        if expected == seq:
            self.next_seq[stream_id] = seq + 1
            await self._send(cast(events.StreamChunkEvent, event))
            return
        # A gap (or a stream whose start this client missed): the database has every chunk.
        await self._catch_up(stream_id)

    async def _relay_end(self, event: dict[str, Any]) -> None:
        stream_id = event["stream_id"]
        if stream_id in self.ended_streams:
            return
        if self.next_seq.get(stream_id, 0) < event["chunk_count"]:
            await self._catch_up(stream_id)
            return
        await self._end_stream(cast(events.StreamEndEvent, event))

    async def _catch_up(self, stream_id: str) -> None:
        """Send what the client lacks of a stream (its start, chunks, end) from the database."""
        state = await self._load_stream(stream_id, self.next_seq.get(stream_id, 0))
        if state is None or stream_id in self.ended_streams:
            return
        if stream_id not in self.next_seq:
            await self._ensure_message(state["reply_to"])
            self.next_seq[stream_id] = 0
            await self._send(events.stream_start(stream_id, reply_to=state["reply_to"], attempt=state.get("attempt")))
        for seq, delta in state["chunks"]:
            if seq < self.next_seq[stream_id]:
                continue
            self.next_seq[stream_id] = seq + 1
            await self._send(events.stream_chunk(stream_id, seq=seq, delta=delta))
        if (end := state["end"]) is not None:
            await self._end_stream(
                events.stream_end(
                    stream_id, status=end["status"], chunk_count=end["chunk_count"], message=end["message"]
                )
            )

    async def _end_stream(self, event: events.StreamEndEvent) -> None:
        self.ended_streams.add(event["stream_id"])
        self.next_seq.pop(event["stream_id"], None)
        self.sent_message_ids.add(event["message"]["id"])
        await self._send(event)

    async def _ensure_message(self, message_id: str) -> None:
        """Send the message a reply answers when the client has not had it: its broadcast was lost."""
        if message_id in self.sent_message_ids:
            return
        if message := await self._load_message(message_id):
            await self.send_message(message)

    async def _resync(self, after: str | None) -> None:
        if after is not None:
            try:
                missed = await self._count_after(after)
            except NotFound:
                await self._send(
                    events.error(
                        "validation_error", "after: no such message in this thread.", errors={"after": ["Not found."]}
                    )
                )
                after = None
            else:
                if missed > self.replay_limit:
                    await self._send(events.resync_required(after=after, missed=missed, limit=self.replay_limit))
                    after = None
        messages, streams = await self._load_replay(after)
        # The client has what came before ``after`` (or, without it, the history it loaded): the
        # questions of open streams it does not get replayed are among them.
        replayed = {message["id"] for message in messages}
        self.sent_message_ids.update(s["reply_to"] for s in streams if s["reply_to"] not in replayed)
        for message in messages:
            stream_id = (message.get("metadata") or {}).get("stream_id")
            if stream_id and stream_id in self.next_seq:
                # The client saw this reply start: end it properly rather than as a bare message.
                await self._catch_up(stream_id)
            else:
                if stream_id:
                    # The client gets this reply whole, here. Its stream's events may still be on
                    # their way (the worker publishes after its commit, and this connection joined
                    # the group before reading): they must not send it again as a stream.
                    self.ended_streams.add(stream_id)
                await self.send_message(message)
        for stream in streams:
            await self._catch_up(stream["id"])
