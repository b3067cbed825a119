"""Tells this process's WebSocket consumers when the Redis channel layer may have lost them.

channels-redis keeps group memberships and undelivered events in Redis. A Redis that restarts
without persistence forgets them, and redis-py's retry (see ``chatproject.redis_options``) can
carry a consumer's blocking read over to the new server without an error: that consumer would stay
open and never hear its thread again. So one task per process reads Redis's ``run_id`` (new at
every start) every second. When it changes, or Redis stops answering, every consumer that joined
before is asked to close with 4503; its client reconnects with ``?after=`` and gets what it missed
from the database. Consumers join the watch before they join their group, so a restart between
the two costs one extra reconnect, never a deaf connection.

The in-memory layer of the embedded default lives and dies with the process: nothing to watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from chatproject.redis_options import async_client_options

logger = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
# How long a joining consumer waits for the first answer of a watch that just started.
JOIN_TIMEOUT_SECONDS = 5.0


class Watcher(Protocol):
    async def layer_lost(self, reason: str) -> None: ...


class LayerWatch:
    """Redis's identity, checked every CHECK_SECONDS, and the consumers that depend on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None
        # Consumers, with the epoch they joined in; the epoch moves on whenever Redis restarted
        # or stopped answering, and every consumer of an older epoch is told to go.
        self.members: dict[Watcher, int] = {}
        self.epoch = 0
        self.run_id: str | None = None
        self.checked = asyncio.Event()
        self.joining = 0  # joins waiting for the watch's first answer
        self.closing: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def join(self, consumer: Watcher) -> None:
        """Watch Redis for ``consumer``; raises redis ConnectionError while Redis does not answer."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            # A new event loop (tests run one per test): nothing of the old one can be awaited.
            self.loop, self.task, self.members, self.run_id, self.joining = loop, None, {}, None, 0
            self.checked = asyncio.Event()
        if self.task is None or self.task.done():
            # A fresh event per watch: a superseded watch still finishing its last check (its
            # cancellation can arrive mid-read) must not wake this join with its result.
            self.run_id = None
            self.checked = asyncio.Event()
            self.task = loop.create_task(self._watch(self.checked), name="channel-layer-watch")
        # Counted while it waits: a consumer torn down meanwhile (its client gone mid-connect)
        # leaves, and must not cancel the watch this join waits for (seen in CI: the next
        # connection waited JOIN_TIMEOUT_SECONDS for a check that never came and was refused).
        self.joining += 1
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(JOIN_TIMEOUT_SECONDS):
                    await self.checked.wait()
        finally:
            self.joining -= 1
        if self.run_id is None:
            # Redis's state is unknown, so a restart could not be told from a blip: refuse now,
            # the client retries (a second at most after Redis is back).
            if not self.members and not self.joining and self.task is not None:
                self.task.cancel()  # nobody to watch for; the next join starts a new watch
                self.task = None
            raise RedisConnectionError("the channel layer's Redis does not answer")
        self.members[consumer] = self.epoch

    def leave(self, consumer: Watcher) -> None:
        self.members.pop(consumer, None)
        if not self.members and not self.joining and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _watch(self, checked: asyncio.Event) -> None:
        client = redis.asyncio.Redis.from_url(self.url, **async_client_options())
        try:
            # A cancelled watch that missed its cancellation (see redis_options) must not go on
            # beside its successor, nor report what it saw after it was superseded: a stale
            # failure would close its successor's connections or refuse their joins.
            while self.task is asyncio.current_task():
                try:
                    run_id = (await client.info("server"))["run_id"]
                except (RedisError, OSError) as exc:
                    if self.task is not asyncio.current_task():
                        break
                    if self.run_id is not None:
                        self._lose_everyone(f"Redis does not answer ({exc})")
                    self.run_id = None
                else:
                    if self.task is not asyncio.current_task():
                        break
                    if self.run_id is not None and run_id != self.run_id:
                        self._lose_everyone("Redis restarted: it no longer knows this connection's group")
                    self.run_id = run_id
                checked.set()
                await asyncio.sleep(CHECK_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    def _lose_everyone(self, reason: str) -> None:
        self.epoch += 1
        lost = [consumer for consumer, epoch in self.members.items() if epoch < self.epoch]
        if lost:
            logger.warning("%s: closing %d WebSocket connection(s) so they reconnect", reason, len(lost))
        for consumer in lost:
            del self.members[consumer]
            task = asyncio.get_running_loop().create_task(consumer.layer_lost(reason))
            self.closing.add(task)
            task.add_done_callback(self.closing.discard)


_watches: dict[str, LayerWatch] = {}


def watch_for(layer: Any) -> LayerWatch | None:
    """The watch of a channel-layer's Redis; None for layers that keep nothing outside the process.

    ``RedisChannelLayer`` (core) has ``hosts``. ``RedisPubSubChannelLayer`` keeps its arguments
    in ``_kwargs`` and hands every other attribute to a layer of the running loop, which has no
    ``hosts``: read them there. It needs the watch too: redis-py subscribes again after a restart,
    but what was published meanwhile is gone, so its consumers must reconnect with ``?after=``.
    """
    hosts = getattr(layer, "hosts", None) or (getattr(layer, "_kwargs", None) or {}).get("hosts")
    if not hosts:
        return None
    url = hosts[0]["address"]
    if url not in _watches:
        _watches[url] = LayerWatch(url)
    return _watches[url]
