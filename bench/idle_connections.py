"""Database queries per second that open WebSocket connections cost while nothing happens.

    python3 bench/run.py idle [--connections 1000 --threads 100 --seconds 60]

Starts ``chatproject.testing.Stack`` on PostgreSQL (a fresh database next to DATABASE_URL's, or
postgres://postgres@127.0.0.1:5432/postgres's when unset) and Redis (a redis-server of its own):
one Daphne process, a Celery worker (one process: nothing replies) and beat.
``STREAM_STALE_SECONDS`` is an hour, so replies held open without a worker are not swept during
the measure. Then three phases of ``--seconds``
each, counting on the stack's database from ``pg_stat_database`` (``xact_commit``: every query
of an autocommit connection is one) and ``pg_stat_user_tables`` (index and sequential scans):

1. no connection (the baseline: beat's sweeps, the worker);
2. ``--connections`` connections spread over ``--threads`` threads, no reply in progress;
3. the same connections after a reply was opened in each thread (``stream_start``, then silent, as
   a model thinking): every connection follows a stream, as while replies stream.

Prints each phase's rates and what the connections add to the baseline. Measured before the
stream watch too, by copying this script into a checkout of that commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatproject.testing import Stack  # noqa: E402

COUNTERS = (
    "SELECT d.xact_commit, d.tup_returned, d.tup_fetched,"
    " (SELECT coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0) FROM pg_stat_user_tables)"
    " FROM pg_stat_database d WHERE d.datname = current_database()"
)


def counters(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(COUNTERS).fetchone()
    assert row is not None
    return dict(zip(("transactions", "tuples_returned", "tuples_fetched", "table_scans"), map(int, row), strict=True))


def measure(url: str, seconds: float) -> dict[str, float]:
    time.sleep(3)  # what came before (connecting, replaying) reaches the statistics first
    start, began = counters(url), time.monotonic()
    time.sleep(seconds)
    end, elapsed = counters(url), time.monotonic() - began
    # The measuring connection's own two transactions are left in: the same in every phase.
    return {key: round((end[key] - start[key]) / elapsed, 2) for key in start}


async def hold(urls: list[str], ready: asyncio.Event, stop: asyncio.Event, received: list[int]) -> None:
    """Open every connection, in waves that each wait for their handshakes (Daphne closes one whose
    application has not accepted within its connect timeout, and connecting is not what is
    measured); then read whatever arrives until ``stop``."""
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import InvalidHandshake

    async def open_one(url: str) -> ClientConnection:
        for _ in range(4):
            try:
                return await connect(url, open_timeout=60, ping_interval=None, max_size=None)
            except (OSError, EOFError, TimeoutError, InvalidHandshake):
                await asyncio.sleep(1)
        return await connect(url, open_timeout=60, ping_interval=None, max_size=None)

    async def one(url: str, opened: asyncio.Future) -> None:
        try:
            socket = await open_one(url)
        except Exception as exc:
            opened.set_exception(exc)
            return
        opened.set_result(None)
        async with socket:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(socket.recv(), timeout=1)
                    received[0] += 1
                except TimeoutError:
                    continue

    tasks = []
    for wave in range(0, len(urls), 25):
        opened = [asyncio.get_running_loop().create_future() for _ in urls[wave : wave + 25]]
        tasks += [asyncio.create_task(one(url, done)) for url, done in zip(urls[wave : wave + 25], opened, strict=True)]
        for done in opened:
            await done  # raises when a connection could not be opened
    ready.set()
    await asyncio.gather(*tasks)


def open_replies(stack: Stack, thread_ids: list[str]) -> None:
    code = (
        "from messaging.models import ChatMessage\n"
        "from messaging.services import stream_start\n"
        "from threads.models import ChatThread\n"
        f"for thread in ChatThread.objects.filter(pk__in={thread_ids!r}).select_related('owner'):\n"
        "    question = ChatMessage.objects.create(thread=thread, role='user', sender=thread.owner, content='think')\n"
        "    assert stream_start(reply_to=question) is not None\n"
    )
    stack.manage("shell", "-c", code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    users_count = max(1, args.threads // 10)
    env = {"STREAM_STALE_SECONDS": "3600"}
    with (
        tempfile.TemporaryDirectory(prefix="chat-bench-idle-") as workdir,
        Stack(Path(workdir), servers=1, env=env, redis=True, worker_concurrency=1) as stack,
    ):
        url = stack.env()["DATABASE_URL"]
        users = stack.create_users(users_count, threads_each=args.threads // users_count)
        threads = [(user, thread) for user in users for thread in user["threads"]]
        urls = [stack.ws_url(0, *threads[n % len(threads)]) for n in range(args.connections)]
        print(
            f"idle bench: {args.connections} connections over {len(threads)} threads, one Daphne on PostgreSQL,"
            f" {args.seconds:g} s a phase; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
            flush=True,
        )
        results = {"no connection": measure(url, args.seconds)}
        print(f"  no connection: {json.dumps(results['no connection'])}", flush=True)

        async def connected_phases() -> None:
            ready, stop, received = asyncio.Event(), asyncio.Event(), [0]
            holder = asyncio.create_task(hold(urls, ready, stop, received))
            await asyncio.wait([holder, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
            if holder.done():
                holder.result()  # a connection failed: raise it
            for phase in ("idle connections", "each following a silent reply"):
                if phase != "idle connections":
                    # Each connection then hears of its thread's question and reply start (it reads
                    # the question, whose broadcast it never had): not part of the idle measure.
                    expected = received[0] + 2 * args.connections
                    await asyncio.to_thread(open_replies, stack, [thread for _, thread in threads])
                    deadline = time.monotonic() + 300
                    while received[0] < expected and time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                await asyncio.sleep(10)  # the server finishes what connecting or the replies set off
                results[phase] = await asyncio.to_thread(measure, url, args.seconds)
                print(f"  {phase}: {json.dumps(results[phase])} (events received {received[0]})", flush=True)
            stop.set()
            await holder

        asyncio.run(connected_phases())
    base = results["no connection"]
    for phase in ("idle connections", "each following a silent reply"):
        extra = {key: round(value - base[key], 2) for key, value in results[phase].items()}
        print(f"{phase}: the connections add {extra['transactions']} transactions/s, {extra['table_scans']} scans/s")


if __name__ == "__main__":
    main()
