"""A Celery worker with a thread pool (``--pool threads``): many replies in one process.

Twelve replies stream at once in one worker process, more than DSPy's default of 8 program
threads, each to its own thread's client: every one completes with its whole text, in order, and
the worker warmed up (the agent and the code sandbox) although a thread pool starts no pool
processes. Runs in the PostgreSQL + Redis CI run.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from chatproject.testing import Stack

from .realtime_client import LiveClient, post_message, stream_text

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (a broker and a shared layer)")

AT_ONCE = 12
WORDS = 80


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(
        tmp_path_factory.mktemp("thread-pool"),
        servers=1,
        workers=1,
        worker_concurrency=AT_ONCE,
        worker_args=("--pool", "threads"),
        env={"AGENT_OFFLINE_WORD_DELAY_MS": "40"},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_more_replies_than_dspy_has_threads_stream_at_once_in_one_process(stack):
    people = stack.create_users(AT_ONCE)

    async def scenario() -> None:
        clients = [await LiveClient(stack.ws_url(0, p, p["threads"][0])).open() for p in people]
        try:
            for client in clients:
                await client.ready()
            posted = await asyncio.gather(
                *(
                    asyncio.to_thread(post_message, stack, 0, p, p["threads"][0], f"uppercase: {'word ' * WORDS}{n}")
                    for n, p in enumerate(people)
                )
            )
            spans = []
            for n, (client, message) in enumerate(zip(clients, posted, strict=True)):
                start = await client.wait_for(
                    lambda e, m=message: e["type"] == "stream_start" and e["reply_to"] == m["id"], 60
                )
                end = await client.wait_for(
                    lambda e, s=start: e["type"] == "stream_end" and e["stream_id"] == s["stream_id"], 120
                )
                assert end["status"] == "complete", end
                assert stream_text(client.events, start["stream_id"]) == end["message"]["content"]
                assert end["message"]["content"] == f"{'WORD ' * WORDS}{n}"
                spans.append((arrival(client, start), arrival(client, end)))
            # They really ran at once: more streams open together than DSPy's 8 threads.
            most_open = max(sum(1 for begin, finish in spans if begin <= moment < finish) for moment, _ in spans)
            assert most_open > 8, spans
        finally:
            for client in clients:
                await client.close()

    asyncio.run(scenario())
    worker_log = stack.worker_logs[0].read_text(errors="replace")
    assert "code sandbox" in worker_log  # warmed up by worker_init: a thread pool has no worker_process_init


def arrival(client: LiveClient, event: dict) -> float:
    return client.received_at[client.events.index(event)]
