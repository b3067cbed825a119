"""``messaging.layer_watch``: a superseded watch never speaks for its successor.

A watch cancelled while it reads from Redis can miss its cancellation (redis-py's retry) and
finish that read after a new watch started. Seen in CI: a client that reconnected right after
its previous socket closed was refused with ``unavailable`` because the old watch's last,
failed read woke the new join. The stand-in Redis here accepts a connection and drops it after a
moment, so the old watch's read fails only after it has been replaced.
"""

from __future__ import annotations

import asyncio

import pytest

from messaging.layer_watch import JOIN_TIMEOUT_SECONDS, LayerWatch


class Member:
    def __init__(self) -> None:
        self.lost: list[str] = []

    async def layer_lost(self, reason: str) -> None:
        self.lost.append(reason)


async def _accept_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(0.3)
    writer.close()


@pytest.mark.asyncio
async def test_a_watch_that_failed_after_it_was_replaced_changes_nothing():
    server = await asyncio.start_server(_accept_then_drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    watch = LayerWatch(f"redis://127.0.0.1:{port}/0")
    watch.loop = asyncio.get_running_loop()
    member = Member()
    watch.members, watch.run_id = {member: 0}, "run-of-the-successor"
    successor_checked = asyncio.Event()
    watch.checked = successor_checked
    old_checked = asyncio.Event()
    old = asyncio.create_task(watch._watch(old_checked))
    watch.task = old
    await asyncio.sleep(0.1)  # the old watch is now reading
    successor = asyncio.create_task(asyncio.sleep(3600))
    watch.task = successor  # what leave() then join() leave behind
    try:
        await asyncio.wait_for(old, timeout=10)
        assert watch.run_id == "run-of-the-successor"
        assert not successor_checked.is_set()
        assert watch.members == {member: 0} and member.lost == [] and watch.epoch == 0
    finally:
        successor.cancel()
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_the_current_watch_reports_redis_gone():
    server = await asyncio.start_server(_accept_then_drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    watch = LayerWatch(f"redis://127.0.0.1:{port}/0")
    watch.loop = asyncio.get_running_loop()
    member = Member()
    watch.members, watch.run_id = {member: 0}, "run-before"
    checked = asyncio.Event()
    watch.task = asyncio.create_task(watch._watch(checked))
    try:
        await asyncio.wait_for(checked.wait(), timeout=30)
        await asyncio.sleep(0)
        assert watch.run_id is None and watch.epoch == 1 and watch.members == {}
        await asyncio.sleep(0.05)
        assert member.lost and "does not answer" in member.lost[0]
    finally:
        watch.task.cancel()
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "backend", ["channels_redis.core.RedisChannelLayer", "channels_redis.pubsub.RedisPubSubChannelLayer"]
)
async def test_both_redis_layers_are_watched(backend):
    """CHANNEL_LAYER_BACKEND=core or pubsub: the watch finds the layer's Redis either way."""
    from channels.layers import InMemoryChannelLayer
    from django.utils.module_loading import import_string

    from messaging.layer_watch import watch_for

    url = "redis://127.0.0.1:1/7"  # nothing is connected to: the layers connect on first use
    watch = watch_for(import_string(backend)(hosts=[{"address": url}]))
    assert watch is not None and watch.url == url
    assert watch_for(InMemoryChannelLayer()) is None


@pytest.mark.asyncio
async def test_a_consumer_torn_down_mid_connect_does_not_stop_the_watch_another_join_waits_for(tmp_path):
    """Seen in CI: a client that sent a huge frame at once was dropped by Daphne while its
    consumer still waited in ``join``; its teardown's ``leave`` (no members yet) cancelled the
    watch before its first check, so the next connection waited JOIN_TIMEOUT_SECONDS and was
    refused with ``unavailable``."""
    from chatproject.testing import RedisServer

    redis = RedisServer(tmp_path)
    redis.start()
    try:
        watch = LayerWatch(redis.url)
        torn_down, next_one = Member(), Member()
        joins = [asyncio.create_task(watch.join(torn_down)), asyncio.create_task(watch.join(next_one))]
        await asyncio.sleep(0)  # both wait for the watch's first answer
        joins[0].cancel()  # the dropped client's consumer goes away mid-join...
        watch.leave(torn_down)  # ...and leaves, as its teardown does
        await asyncio.wait_for(joins[1], timeout=JOIN_TIMEOUT_SECONDS - 1)
        assert next_one in watch.members and watch.run_id
    finally:
        if watch.task is not None:
            watch.task.cancel()
        redis.kill()
