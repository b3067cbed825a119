"""The per-process stream watch: one query a round whatever the number of connections, and what
the channel layer lost (a last chunk, a stream's end) filled from the database."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging.models import ReplyChunk, ReplyStream
from messaging.services import stream_append, stream_start
from messaging.stream_watch import stream_watch
from messaging.tests.factories import make_message
from messaging.tests.test_consumers import _fresh_channel_layer_and_cache, connect, ready  # noqa: F401
from threads.tests.factories import make_thread, make_user

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _no_timed_rounds(settings):
    """Rounds run when a test calls ``check()``, not on the watch's own timer."""
    settings.STREAM_HEARTBEAT_SECONDS = 3600


class DatabaseThreadQueries:
    """The queries of the thread ``database_sync_to_async`` runs every consumer's and the watch's
    database work on (one thread: thread-sensitive calls share it)."""

    async def __aenter__(self) -> DatabaseThreadQueries:
        def enter() -> None:
            self.context = CaptureQueriesContext(connection)
            self.context.__enter__()

        await database_sync_to_async(enter)()
        return self

    async def __aexit__(self, *exc) -> None:
        def leave() -> None:
            self.context.__exit__(None, None, None)
            # Read there: ``connection`` names the connection of the thread that reads it.
            self.queries = self.context.captured_queries

        await database_sync_to_async(leave)()

    def __len__(self) -> int:
        return len(self.queries)


def open_stream(thread, chunks: int):
    stream = stream_start(reply_to=make_message(thread, "question"))
    for n in range(chunks):
        stream_append(stream=stream, delta=f"{n} ")
    return stream


async def receive_all(communicator, count: int) -> list[dict]:
    return [await communicator.receive_json_from(timeout=5) for _ in range(count)]


async def test_a_round_is_one_query_however_many_connections_follow_streams():
    alice = await sync_to_async(make_user)("alice")
    threads = [await sync_to_async(make_thread)(alice) for _ in range(2)]
    for thread in threads:
        await sync_to_async(open_stream)(thread, 3)
    watch = stream_watch()
    counts = {}
    communicators = []
    for total in (2, 12):
        while len(communicators) < total:
            communicator = await connect(alice, threads[len(communicators) % 2])
            assert len(await receive_all(communicator, 4)) == 4  # start and three chunks, replayed
            await ready(communicator)
            communicators.append(communicator)
        async with DatabaseThreadQueries() as queries:
            await watch.check()
            await watch.check()  # a second round, with counts seen by the first
        counts[total] = len(queries)
    assert counts == {2: 2, 12: 2}
    for communicator in communicators:
        assert await communicator.receive_nothing(timeout=0.1)
        await communicator.disconnect()


async def test_a_round_with_no_open_stream_reads_nothing():
    alice = await sync_to_async(make_user)("alice")
    communicators = [await connect(alice, await sync_to_async(make_thread)(alice)) for _ in range(3)]
    await ready(*communicators)
    async with DatabaseThreadQueries() as queries:
        await stream_watch().check()
    assert len(queries) == 0
    for communicator in communicators:
        await communicator.disconnect()


async def test_a_lost_last_chunk_is_sent_once_a_round_has_seen_it_stored():
    alice = await sync_to_async(make_user)("alice")
    thread = await sync_to_async(make_thread)(alice)
    stream = await sync_to_async(open_stream)(thread, 1)
    communicator = await connect(alice, thread)
    assert [e["type"] for e in await receive_all(communicator, 2)] == ["stream_start", "stream_chunk"]

    def store_without_its_event():
        # Stored, but its event is lost (as channels-redis does over capacity); no chunk follows.
        ReplyChunk.objects.create(stream=stream, seq=1, delta="lost")
        ReplyStream.objects.filter(pk=stream.pk).update(chunk_count=2)

    await sync_to_async(store_without_its_event)()
    watch = stream_watch()
    await watch.check()  # first seen stored: its event may still be on its way
    assert await communicator.receive_nothing(timeout=0.2)
    await watch.check()  # still missing a round later: lost
    chunk = await communicator.receive_json_from(timeout=5)
    assert (chunk["type"], chunk["seq"], chunk["delta"]) == ("stream_chunk", 1, "lost")
    await watch.check()
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_a_stream_whose_end_was_lost_is_ended_by_the_next_round():
    alice = await sync_to_async(make_user)("alice")
    thread = await sync_to_async(make_thread)(alice)
    stream = await sync_to_async(open_stream)(thread, 2)
    communicator = await connect(alice, thread)
    await receive_all(communicator, 3)

    def end_without_its_event():
        reply = make_message(thread, "0 1 ", role="ai", parent_id=stream.reply_to_id)
        ReplyStream.objects.filter(pk=stream.pk).update(status="complete", message=reply, ended_at=timezone.now())
        return reply

    reply = await sync_to_async(end_without_its_event)()
    await stream_watch().check()
    end = await communicator.receive_json_from(timeout=5)
    assert (end["type"], end["status"], end["chunk_count"]) == ("stream_end", "complete", 2)
    assert end["message"]["id"] == str(reply.pk)
    await stream_watch().check()  # the stream is no longer followed: nothing more
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_a_stale_stream_is_ended_by_the_watch_for_every_connection(settings):
    alice = await sync_to_async(make_user)("alice")
    thread = await sync_to_async(make_thread)(alice)
    stream = await sync_to_async(open_stream)(thread, 1)
    communicators = [await connect(alice, thread) for _ in range(3)]
    for communicator in communicators:
        await receive_all(communicator, 2)
    settings.STREAM_STALE_SECONDS = 0
    await stream_watch().check()
    for communicator in communicators:
        end = await communicator.receive_json_from(timeout=5)
        assert (end["type"], end["status"], end["message"]["content"]) == ("stream_end", "interrupted", "0 ")
        await communicator.disconnect()
    assert await sync_to_async(lambda: ReplyStream.objects.get(pk=stream.pk).status)() == "interrupted"
