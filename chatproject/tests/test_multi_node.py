"""More than one machine, on this one: two Daphne processes and two Celery workers share Redis and
PostgreSQL and nothing else (no sticky sessions, no worker affinity).

A message posted over REST to server B is answered by whichever worker takes it; a client on
server A and a client on server B both get the whole reply, the same events in the same order.
Killing a worker mid-reply ends that reply as ``interrupted`` everywhere (its partial text kept)
and the other worker answers the next message. Runs in the PostgreSQL + Redis CI run.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from chatproject.testing import Stack

from .realtime_client import LiveClient, post_message, stream_text

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (a broker and a shared layer)")

STALE_SECONDS = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # One process each: a second reply at the same time must go to the other worker.
    stack = Stack(
        tmp_path_factory.mktemp("multi-node"),
        servers=2,
        workers=2,
        worker_concurrency=1,
        env={
            "AGENT_OFFLINE_WORD_DELAY_MS": "40",
            "STREAM_HEARTBEAT_SECONDS": "1",
            "STREAM_STALE_SECONDS": str(STALE_SECONDS),
            "SWEEP_INTERVAL_SECONDS": "1",
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def people(stack):
    return stack.create_users(2, threads_each=2)


def answered_by(stack: Stack, message_id: str) -> list[int]:
    """The indexes of the workers whose log says they started the reply to ``message_id``."""
    started = f"reply to message {message_id}: stream"
    return [n for n, log in enumerate(stack.worker_logs) if started in log.read_text(errors="replace")]


def reply_events(events: list[dict], message_id: str) -> list[tuple]:
    """The user message and its reply's events as a client saw them, in order, comparable across clients."""
    seen, stream = [], None
    for event in events:
        kind = event["type"]
        if kind == "message" and event["message"]["id"] == message_id:
            seen.append((kind, message_id))
        elif kind == "stream_start" and event["reply_to"] == message_id:
            stream = event["stream_id"]
            seen.append((kind, stream))
        elif stream is not None and event.get("stream_id") == stream:
            if kind == "stream_chunk":
                seen.append((kind, event["seq"], event["delta"]))
            elif kind == "stream_status":
                seen.append((kind, event["step"]))
            elif kind == "stream_end":
                seen.append((kind, event["status"], event["message"]["id"], event["message"]["content"]))
    return seen


async def watchers(stack: Stack, user: dict, thread: str) -> list[LiveClient]:
    """A client on server A (0) and one on server B (1), both connected and ready."""
    clients = [await LiveClient(stack.ws_url(server, user, thread)).open() for server in (0, 1)]
    for client in clients:
        await client.ready()
    return clients


def ended(message_id: str):
    return lambda event: event["type"] == "stream_end" and event["message"]["parent"] == message_id


def test_replies_posted_on_server_b_reach_clients_on_both_servers_from_either_worker(stack, people):
    async def scenario() -> None:
        threads = [(person, person["threads"][0]) for person in people]
        clients = [await watchers(stack, person, thread) for person, thread in threads]
        try:
            # Two at once: with one process per worker, each worker takes one.
            posted = await asyncio.gather(
                *(
                    asyncio.to_thread(post_message, stack, 1, person, thread, f"uppercase: {'word ' * 30}{n}")
                    for n, (person, thread) in enumerate(threads)
                )
            )
            for message, pair in zip(posted, clients, strict=True):
                for client in pair:
                    await client.wait_for(ended(message["id"]), 30)
            workers = []
            for message, (on_a, on_b) in zip(posted, clients, strict=True):
                on_server_a = reply_events(on_a.events, message["id"])
                # The same events, in the same order, each once, on both servers.
                assert on_server_a == reply_events(on_b.events, message["id"])
                kinds = [event[0] for event in on_server_a]
                assert kinds[:2] == ["message", "stream_start"] and kinds.count("stream_end") == 1
                end = on_server_a[-1]
                assert end[1] == "complete"
                stream_id = on_server_a[1][1]
                assert stream_text(on_a.events, stream_id) == end[3] == f"{'WORD ' * 30}{posted.index(message)}"
                workers += answered_by(stack, message["id"])
            assert sorted(workers) == [0, 1], "each worker answered one of the two replies"
        finally:
            for pair in clients:
                for client in pair:
                    await client.close()

    asyncio.run(scenario())


def test_a_worker_killed_mid_reply_leaves_the_other_to_answer_the_next_message(stack, people):
    person, thread = people[0], people[0]["threads"][1]

    async def scenario() -> None:
        on_a, on_b = await watchers(stack, person, thread)
        try:
            words = " ".join(f"slow{n}" for n in range(200))
            first = await asyncio.to_thread(post_message, stack, 1, person, thread, f"uppercase: {words}")
            await on_a.wait_for(lambda event: event["type"] == "stream_chunk", 20)
            (busy,) = answered_by(stack, first["id"])
            stack.kill_worker(busy)
            killed_at = time.monotonic()
            for client in (on_a, on_b):
                end = await client.wait_for(ended(first["id"]), STALE_SECONDS + 15)
                assert end["status"] == "interrupted", end
                partial = stream_text(client.events, end["stream_id"])
                assert partial and end["message"]["content"] == partial and words.upper().startswith(partial)
            assert time.monotonic() - killed_at < STALE_SECONDS + 10

            second = await asyncio.to_thread(post_message, stack, 1, person, thread, "what is 6 times 7?")
            for client in (on_a, on_b):
                end = await client.wait_for(ended(second["id"]), 30)
                assert end["status"] == "complete" and end["message"]["content"] == "6 times 7 = **42**"
            assert reply_events(on_a.events, second["id"]) == reply_events(on_b.events, second["id"])
            assert answered_by(stack, second["id"]) == [1 - busy]
        finally:
            await on_a.close()
            await on_b.close()

    try:
        asyncio.run(scenario())
    finally:
        for index, process in enumerate(stack.workers):
            if process is None:
                stack.start_worker(index=index)
