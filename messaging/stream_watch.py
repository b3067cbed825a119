"""Checks, for every WebSocket consumer of this process at once, the reply streams they follow.

The channel layer may drop a stream's last chunks or its ``stream_end`` (it is at-most-once), and
a worker may die mid-reply. Each consumer used to reload its open streams from the database every
heartbeat: with many connections watching replies, queries grew with the connections. Now one
task per process (per event loop) reads, every ``STREAM_HEARTBEAT_SECONDS``, the status and chunk
count of every stream some consumer here follows, in one query (``stream_progress``: primary-key
lookups, no chunk read), and only then:

- ends the stale ones (worker silent for ``STREAM_STALE_SECONDS``) as ``interrupted``: the
  sweep broadcasts their ``stream_end``;
- asks a consumer to fill a stream from the database (``stream_lagging``) when the stream has
  ended while the consumer still follows it (its ``stream_end`` was lost, or is just arriving),
  or when the consumer still lacks chunks that the previous check had already seen stored: those
  were committed a whole interval ago, so their events were lost, not late. Chunks stored since
  the previous check are left to their live events, so a healthy stream costs no reads.

When no consumer follows a stream, a check costs nothing. What a consumer follows is its
``next_seq`` (stream id -> the next seq it expects), kept by the consumer itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from chatproject.errors import OUTAGE_ERRORS

from .selectors import stream_progress
from .services import stream_sweep_stale

logger = logging.getLogger(__name__)


class Follower(Protocol):
    next_seq: dict[str, int]

    async def stream_lagging(self, stream_id: str) -> None: ...


def interval() -> float:
    return max(0.5, settings.STREAM_HEARTBEAT_SECONDS)


class StreamWatch:
    """The consumers of one event loop, and the task that checks their streams."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None
        self.members: dict[Follower, None] = {}  # insertion-ordered set
        # Chunk counts seen by the previous check, by stream id.
        self.seen: dict[str, int] = {}

    def join(self, consumer: Follower) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            # A new event loop (tests run one per test): nothing of the old one can be awaited.
            self.loop, self.task, self.members, self.seen = loop, None, {}, {}
        self.members[consumer] = None
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._watch(), name="stream-watch")

    def leave(self, consumer: Follower) -> None:
        self.members.pop(consumer, None)
        if not self.members and self.task is not None:
            task, self.task = self.task, None
            with contextlib.suppress(RuntimeError):  # its loop has closed (tests run one per test)
                task.cancel()

    async def _watch(self) -> None:
        while self.task is asyncio.current_task():
            await asyncio.sleep(interval())
            try:
                await self.check()
            except OUTAGE_ERRORS as exc:
                # The database is down: try again next time, the connections stay.
                logger.warning("stream watch: %s", exc)
            except Exception:
                logger.exception("stream watch failed")

    async def check(self) -> None:
        """One round: a query when some consumer follows a stream, more only for what went wrong."""
        followers = [(consumer, dict(consumer.next_seq)) for consumer in list(self.members)]
        followed = {stream_id for _, next_seq in followers for stream_id in next_seq}
        if not followed:
            self.seen = {}
            return
        progress = await database_sync_to_async(stream_progress)(stream_ids=followed)
        if stale := [stream_id for stream_id, state in progress.items() if state.stale]:
            # Their stream_end goes out with the sweep; should it be lost, the next check sees them ended.
            await database_sync_to_async(stream_sweep_stale)(stream_ids=stale)
        lagging = []
        for consumer, next_seq in followers:
            for stream_id, expected in next_seq.items():
                state = progress.get(stream_id)
                if state is not None and (state.ended or expected < self.seen.get(stream_id, 0)):
                    lagging.append(consumer.stream_lagging(stream_id))
        self.seen = {stream_id: state.chunk_count for stream_id, state in progress.items() if not state.ended}
        for outcome in await asyncio.gather(*lagging, return_exceptions=True):
            if isinstance(outcome, Exception) and not isinstance(outcome, asyncio.CancelledError):
                logger.warning("stream watch: a connection could not catch up: %r", outcome)


_watch = StreamWatch()


def stream_watch() -> StreamWatch:
    """This process's stream watch."""
    return _watch
