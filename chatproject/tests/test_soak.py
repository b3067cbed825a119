"""Soak on the production stack: quiet WebSockets stay open, and a slow model's reply arrives whole.

50 connections over two Daphne processes sit idle for two minutes (a reply whose model thinks
8 s before its first word streams on one thread meanwhile); none may close, and at the end each
receives a broadcast. With redis-py 8's default 5 s socket timeout every idle connection was
closed with 1011 after about 5.5 s (the channel layer waits for events with a 5 s BZPOPMIN).
Runs in the PostgreSQL + Redis CI run, on a redis-server of its own.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from chatproject.testing import Stack

from .realtime_client import LiveClient, message_ids, post_message, stream_text

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (the production stack)")

CONNECTIONS = 50
THREADS = 5
IDLE_SECONDS = 120
FIRST_TOKEN_DELAY_SECONDS = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {
        "AGENT_OFFLINE_FIRST_TOKEN_DELAY_MS": str(FIRST_TOKEN_DELAY_SECONDS * 1000),
        "AGENT_OFFLINE_WORD_DELAY_MS": "20",
    }
    with Stack(tmp_path_factory.mktemp("soak"), servers=2, redis=True, env=env) as stack:
        yield stack


def test_idle_connections_stay_open_and_a_slow_first_token_arrives_whole(stack):
    owners = stack.create_users(THREADS)
    try:
        asyncio.run(soak(stack, owners))
    except BaseException:
        print(stack.logs_text())
        raise


async def soak(stack: Stack, owners: list[dict]) -> None:
    # Connection n: thread n % THREADS, server n % 2, so each thread has clients on both servers.
    plan = [(owners[n % THREADS], n % len(stack.ports)) for n in range(CONNECTIONS)]
    clients = [LiveClient(stack.ws_url(server, owner, owner["threads"][0])) for owner, server in plan]
    await asyncio.gather(*(client.open() for client in clients))
    await asyncio.gather(*(client.ready() for client in clients))
    began = time.monotonic()

    def closed() -> list[str]:
        return [
            f"connection {n} closed with {c.close_code} after {c.closed_at - began:.1f} s"
            for n, c in enumerate(clients)
            if c.closed.is_set()
        ]

    # A reply whose model is silent for 8 s after its tool step, on thread 0's ten connections.
    slow_thread = [c for n, c in enumerate(clients) if n % THREADS == 0]
    await slow_thread[0].send({"type": "message", "content": "what is 6 times 7?", "client_id": "slow-1"})
    ends = await asyncio.gather(
        *(c.wait_for(lambda e: e["type"] == "stream_end", FIRST_TOKEN_DELAY_SECONDS + 20) for c in slow_thread)
    )
    for client, end in zip(slow_thread, ends, strict=True):
        assert end["status"] == "complete", end
        assert stream_text(client.events, end["stream_id"]) == end["message"]["content"] == "6 times 7 = **42**"
    chunk_at = time.monotonic() - began
    assert chunk_at >= FIRST_TOKEN_DELAY_SECONDS, "the model did not hold its first token back"

    # Then everything is quiet until two minutes have passed; a close fails the test at once.
    while time.monotonic() - began < IDLE_SECONDS:
        assert closed() == [], closed()
        await asyncio.sleep(1)
    assert closed() == [], closed()

    # Each of the 50 still hears its thread: one message posted in each thread reaches all.
    marks = [len(c.events) for c in clients]
    posted = await asyncio.gather(
        *(
            asyncio.to_thread(post_message, stack, t % 2, owner, owner["threads"][0], f"still there? ({t})")
            for t, owner in enumerate(owners)
        )
    )
    for n, client in enumerate(clients):
        wanted = posted[n % THREADS]["id"]
        await client.wait_for(
            lambda e, wanted=wanted: e["type"] == "message" and e["message"]["id"] == wanted, 15, start=marks[n]
        )
        assert max(message_ids(client.events).values()) == 1, "a message reached a client twice"
    assert closed() == [], closed()
    print(
        f"soak: {CONNECTIONS} connections idle {time.monotonic() - began:.0f} s, none closed; "
        f"reply after a {FIRST_TOKEN_DELAY_SECONDS} s silent model arrived whole at {chunk_at:.1f} s"
    )
    await asyncio.gather(*(client.close() for client in clients))
