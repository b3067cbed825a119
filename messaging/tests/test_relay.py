"""StreamRelay without a socket: what one client is sent, given live events and what the database holds.

The database is a ``Store`` of plain data, and its loaders are plain coroutines reading it; the
socket is a list of sent events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from chatproject.errors import NotFound
from messaging import events
from messaging.relay import StreamRelay

pytestmark = pytest.mark.asyncio


def msg(message_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "content": message_id, "metadata": {}, **extra}


@dataclass
class Stream:
    reply_to: str
    chunks: list[str] = field(default_factory=list)
    end: dict[str, Any] | None = None
    attempt: int = 0


@dataclass
class Store:
    """What the database holds for one thread: messages in order, and reply streams by id."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    streams: dict[str, Stream] = field(default_factory=dict)
    loads: list[str] = field(default_factory=list)

    def end(self, stream_id: str, *, status: str = "complete") -> dict[str, Any]:
        stream = self.streams[stream_id]
        answer = msg(f"ai-{stream_id}", role="ai", content="".join(stream.chunks), metadata={"stream_id": stream_id})
        self.messages.append(answer)
        stream.end = {"status": status, "chunk_count": len(stream.chunks), "message": answer}
        return events.stream_end(stream_id, status=status, chunk_count=len(stream.chunks), message=answer)

    def _after(self, after: str) -> list[dict[str, Any]]:
        ids = [m["id"] for m in self.messages]
        if after not in ids:
            raise NotFound("Message not found in this thread.")
        return self.messages[ids.index(after) + 1 :]

    async def load_replay(self, after: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        self.loads.append(f"replay {after}")
        later = self._after(after) if after else []
        open_streams = [
            {"id": stream_id, "reply_to": s.reply_to} for stream_id, s in self.streams.items() if s.end is None
        ]
        return later, open_streams

    async def load_stream(self, stream_id: str, from_seq: int) -> dict[str, Any] | None:
        self.loads.append(f"stream {stream_id}")
        stream = self.streams.get(stream_id)
        if stream is None:
            return None
        chunks = list(enumerate(stream.chunks))[from_seq:]
        return {"reply_to": stream.reply_to, "attempt": stream.attempt, "chunks": chunks, "end": stream.end}

    async def load_message(self, message_id: str) -> dict[str, Any] | None:
        self.loads.append(f"message {message_id}")
        return next((m for m in self.messages if m["id"] == message_id), None)

    async def count_after(self, after: str) -> int:
        return len(self._after(after))


def relay_for(store: Store, *, limit: int = 500) -> tuple[StreamRelay, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    async def send(event: events.ServerEvent) -> None:
        sent.append(dict(event))

    relay = StreamRelay(
        send=send,
        load_replay=store.load_replay,
        load_stream=store.load_stream,
        load_message=store.load_message,
        count_after=store.count_after,
        replay_limit=limit,
    )
    return relay, sent


def summary(sent: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each event as (type, what identifies it): easy to compare in order."""
    rows: list[tuple[Any, ...]] = []
    for event in sent:
        kind = event["type"]
        if kind == "message":
            rows.append((kind, event["message"]["id"]))
        elif kind == "stream_chunk":
            rows.append((kind, event["stream_id"], event["seq"], event["delta"]))
        elif kind in ("stream_start", "stream_status"):
            rows.append((kind, event["stream_id"]))
        elif kind == "stream_end":
            rows.append((kind, event["stream_id"], event["status"], event["message"]["id"]))
        elif kind == "error":
            rows.append((kind, event["code"]))
        else:
            rows.append((kind,))
    return rows


def live_chunk(store: Store, stream_id: str, delta: str) -> events.StreamChunkEvent:
    """Store the next chunk, as ``stream_append`` does, and return its live event."""
    store.streams[stream_id].chunks.append(delta)
    return events.stream_chunk(stream_id, seq=len(store.streams[stream_id].chunks) - 1, delta=delta)


async def test_duplicates_are_dropped():
    store = Store(messages=[msg("q1")], streams={"s1": Stream("q1")})
    relay, sent = relay_for(store)
    start = events.stream_start("s1", reply_to="q1", attempt=0)
    question = events.message(msg("q1"))
    chunk = live_chunk(store, "s1", "Hello")
    for event in (question, question, start, start, chunk, chunk):
        await relay.relay(dict(event))
    end = store.end("s1")
    await relay.relay(dict(end))
    await relay.relay(dict(end))
    # Anything of an ended stream comes too late and is dropped as well.
    await relay.relay(dict(chunk))
    await relay.relay(dict(events.stream_status("s1", {"step": "tool_end", "tool": "calculator"})))
    await relay.relay(dict(events.message(end["message"])))
    assert summary(sent) == [
        ("message", "q1"),
        ("stream_start", "s1"),
        ("stream_chunk", "s1", 0, "Hello"),
        ("stream_end", "s1", "complete", "ai-s1"),
    ]
    assert sent[1] == {"type": "stream_start", "stream_id": "s1", "reply_to": "q1", "attempt": 0}
    # Dropped without a look at the database: nothing was missing.
    assert store.loads == []


async def test_a_gap_is_filled_from_the_loader_in_order():
    store = Store(messages=[msg("q1")], streams={"s1": Stream("q1")})
    relay, sent = relay_for(store)
    await relay.relay(dict(events.message(msg("q1"))))
    await relay.relay(dict(events.stream_start("s1", reply_to="q1")))
    await relay.relay(dict(live_chunk(store, "s1", "zero ")))
    live_chunk(store, "s1", "one ")  # stored, its event lost by the layer
    late = live_chunk(store, "s1", "two")
    await relay.relay(dict(late))
    # The repair sent seq 2 already: its own event, arriving now, is not sent again.
    await relay.relay(dict(late))
    await relay.relay(dict(live_chunk(store, "s1", " three")))
    assert summary(sent)[2:] == [
        ("stream_chunk", "s1", 0, "zero "),
        ("stream_chunk", "s1", 1, "one "),
        ("stream_chunk", "s1", 2, "two"),
        ("stream_chunk", "s1", 3, " three"),
    ]
    assert "stream s1" in store.loads


async def test_a_stream_whose_start_was_lost_starts_from_the_database_after_its_question():
    store = Store(messages=[msg("q1")], streams={"s1": Stream("q1")})
    relay, sent = relay_for(store)
    # Neither the question's broadcast nor the start arrived: the first event is a chunk.
    await relay.relay(dict(live_chunk(store, "s1", "a")))
    await relay.relay(dict(live_chunk(store, "s1", "b")))
    assert summary(sent) == [
        ("message", "q1"),
        ("stream_start", "s1"),
        ("stream_chunk", "s1", 0, "a"),
        ("stream_chunk", "s1", 1, "b"),
    ]


async def test_a_stream_started_from_the_database_says_which_reply_attempt_it_is():
    store = Store(messages=[msg("q1")], streams={"s2": Stream("q1", attempt=2)})
    relay, sent = relay_for(store)
    await relay.relay(dict(live_chunk(store, "s2", "again")))
    assert sent[1] == {"type": "stream_start", "stream_id": "s2", "reply_to": "q1", "attempt": 2}


async def test_a_lost_stream_end_is_filled_when_the_stream_watch_sees_it_lag():
    store = Store(messages=[msg("q1")], streams={"s1": Stream("q1")})
    relay, sent = relay_for(store)
    await relay.relay(dict(events.message(msg("q1"))))
    await relay.relay(dict(events.stream_start("s1", reply_to="q1")))
    await relay.relay(dict(live_chunk(store, "s1", "partial")))
    assert relay.open_streams == ["s1"]
    live_chunk(store, "s1", " text")  # lost
    end = store.end("s1", status="interrupted")  # lost too
    await relay.catch_up("s1")
    assert summary(sent)[3:] == [
        ("stream_chunk", "s1", 1, " text"),
        ("stream_end", "s1", "interrupted", "ai-s1"),
    ]
    assert relay.open_streams == []
    # The end's own event, late, and the message replayed by a sync: neither is sent twice.
    await relay.relay(dict(end))
    await relay.resync("q1")
    assert len(sent) == 5


async def test_an_end_with_more_chunks_than_the_client_has_fills_them_first():
    store = Store(messages=[msg("q1")], streams={"s1": Stream("q1")})
    relay, sent = relay_for(store)
    await relay.relay(dict(events.stream_start("s1", reply_to="q1")))
    live_chunk(store, "s1", "lost one")
    end = store.end("s1")
    await relay.relay(dict(end))
    assert summary(sent) == [
        ("message", "q1"),
        ("stream_start", "s1"),
        ("stream_chunk", "s1", 0, "lost one"),
        ("stream_end", "s1", "complete", "ai-s1"),
    ]


async def test_replayed_messages_are_not_sent_twice():
    store = Store(messages=[msg("m1"), msg("m2"), msg("m3")])
    relay, sent = relay_for(store)
    await relay.resync("m1")
    # Live events the layer delivers after the replay, and a second sync, bring nothing new.
    await relay.relay(dict(events.message(msg("m2"))))
    await relay.relay(dict(events.message(msg("m3"))))
    await relay.resync("m1")
    assert summary(sent) == [("message", "m2"), ("message", "m3")]
    # Only a retried send's answer is sent again, on purpose.
    await relay.send_message(msg("m3"), force=True)
    assert summary(sent)[-1] == ("message", "m3") and len(sent) == 3


async def test_reconnect_replays_messages_then_open_streams_from_seq_0_then_live():
    store = Store(messages=[msg("m1"), msg("q1")], streams={"s1": Stream("q1", chunks=["one ", "two "])})
    relay, sent = relay_for(store)
    await relay.resync("m1")
    await relay.relay(dict(events.stream_start("s1", reply_to="q1", attempt=0)))  # late: dropped
    await relay.relay(dict(events.stream_chunk("s1", seq=1, delta="two ")))  # already replayed
    await relay.relay(dict(live_chunk(store, "s1", "three")))
    assert summary(sent) == [
        ("message", "q1"),
        ("stream_start", "s1"),
        ("stream_chunk", "s1", 0, "one "),
        ("stream_chunk", "s1", 1, "two "),
        ("stream_chunk", "s1", 2, "three"),
    ]


async def test_without_after_only_open_streams_are_replayed_and_their_questions_are_taken_as_seen():
    store = Store(messages=[msg("q1")], streams={"s1": Stream("q1", chunks=["x"])})
    relay, sent = relay_for(store)
    await relay.resync(None)
    await relay.relay(dict(events.message(msg("q1"))))  # the page loaded it with the history
    assert summary(sent) == [("stream_start", "s1"), ("stream_chunk", "s1", 0, "x")]


async def test_a_replayed_message_ending_a_stream_the_client_follows_ends_that_stream():
    store = Store(messages=[msg("q1")], streams={"s1": Stream("q1")})
    relay, sent = relay_for(store)
    await relay.relay(dict(events.message(msg("q1"))))
    await relay.relay(dict(events.stream_start("s1", reply_to="q1")))
    live_chunk(store, "s1", "all of it")
    store.end("s1")  # chunk and end lost: the client syncs
    await relay.resync("q1")
    assert summary(sent)[2:] == [
        ("stream_chunk", "s1", 0, "all of it"),
        ("stream_end", "s1", "complete", "ai-s1"),
    ]


async def test_an_unknown_after_is_an_error_then_the_open_streams():
    store = Store(messages=[msg("q1")], streams={"s1": Stream("q1", chunks=["x"])})
    relay, sent = relay_for(store)
    await relay.resync("not-in-this-thread")
    assert summary(sent) == [("error", "validation_error"), ("stream_start", "s1"), ("stream_chunk", "s1", 0, "x")]
    assert sent[0]["errors"] == {"after": ["Not found."]}


async def test_a_client_too_far_behind_gets_resync_required_instead_of_the_replay():
    store = Store(messages=[msg(f"m{n}") for n in range(8)], streams={"s1": Stream("m7", chunks=["x"])})
    relay, sent = relay_for(store, limit=5)
    await relay.resync("m1")  # six messages behind
    assert sent[0] == events.resync_required(after="m1", missed=6, limit=5)
    assert (sent[0]["reason"], sent[0]["missed"], sent[0]["limit"]) == ("too_far_behind", 6, 5)
    # No message replayed; the open stream still follows, as on a connection without ``after``.
    assert summary(sent)[1:] == [("stream_start", "s1"), ("stream_chunk", "s1", 0, "x")]
    # Exactly at the limit: replayed.
    relay, sent = relay_for(store, limit=5)
    await relay.resync("m2")
    assert summary(sent)[:5] == [("message", f"m{n}") for n in range(3, 8)]


async def test_a_live_event_waits_for_a_resync_in_progress():
    store = Store(messages=[msg("m1"), msg("q1")], streams={"s1": Stream("q1", chunks=["one "])})
    relay, sent = relay_for(store)
    release = asyncio.Event()
    replay = store.load_replay

    async def slow_replay(after: str | None) -> Any:
        await release.wait()
        return await replay(after)

    relay._load_replay = slow_replay
    resync = asyncio.create_task(relay.resync("m1"))
    await asyncio.sleep(0)
    live = asyncio.create_task(relay.relay(dict(live_chunk(store, "s1", "two"))))
    await asyncio.sleep(0.01)
    assert sent == []  # the live chunk did not jump ahead of the replay
    release.set()
    await asyncio.gather(resync, live)
    assert summary(sent) == [
        ("message", "q1"),
        ("stream_start", "s1"),
        ("stream_chunk", "s1", 0, "one "),
        ("stream_chunk", "s1", 1, "two"),
    ]
