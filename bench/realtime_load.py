"""Load benchmark of the realtime path on a real stack.

    python3 bench/run.py realtime [--clients 40 --threads 10 --messages 5 --servers 2]

Starts the stack of ``chatproject.testing.Stack``: with REDIS_URL set, two Daphne processes, a
Celery worker, PostgreSQL (a fresh database next to DATABASE_URL's) and Redis; without, one
Daphne on SQLite with in-process replies. N clients are spread over M threads (and over the
servers); every client sends its messages one after another and waits for each reply. Every
client checks what it received: each message of its thread once, each stream's chunks from seq 0
with no gap or repeat, each stream ended once, the chunks joined equal to the final message.

Prints messages/s, p50/p95/p99 time to first chunk and to stream end, and lost/duplicated events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatproject.testing import Stack


class Client:
    def __init__(self, url: str, thread: str) -> None:
        self.url, self.thread = url, thread
        self.messages: Counter[str] = Counter()  # message id -> times received
        self.chunks: dict[str, list[int]] = defaultdict(list)  # stream -> seqs received
        self.text: dict[str, str] = defaultdict(str)
        self.ends: Counter[str] = Counter()
        self.final: dict[str, str] = {}
        self.reply_to: dict[str, str] = {}  # stream -> user message
        self.waiters: dict[str, asyncio.Future] = {}  # client_id -> future of the message id
        self.first_chunk: dict[str, float] = {}  # user message id -> time
        self.ended: dict[str, asyncio.Future] = {}  # user message id -> future of end time
        self.errors: list[dict] = []

    def on_event(self, event: dict) -> None:
        now = time.perf_counter()
        kind = event["type"]
        if kind == "message":
            message = event["message"]
            self.messages[message["id"]] += 1
            if (future := self.waiters.pop(message.get("client_id") or "", None)) and not future.done():
                future.set_result(message["id"])
        elif kind == "stream_start":
            self.reply_to[event["stream_id"]] = event["reply_to"]
        elif kind == "stream_chunk":
            self.chunks[event["stream_id"]].append(event["seq"])
            self.text[event["stream_id"]] += event["delta"]
            self.first_chunk.setdefault(self.reply_to.get(event["stream_id"], ""), now)
        elif kind == "stream_end":
            self.ends[event["stream_id"]] += 1
            self.final[event["stream_id"]] = event["message"]["content"]
            self.messages[event["message"]["id"]] += 1
            reply_to = self.reply_to.get(event["stream_id"], event["message"]["parent"])
            future = self.ended.setdefault(reply_to, asyncio.get_running_loop().create_future())
            if not future.done():
                future.set_result(now)
        elif kind == "error":
            self.errors.append(event)


async def run_client(
    client: Client,
    count: int,
    results: list[dict],
    start: asyncio.Event,
    timeout: float,
    finished: list[Client],
    all_done: asyncio.Event,
) -> None:
    import websockets

    async with websockets.connect(client.url, max_size=None) as ws:

        async def reader() -> None:
            async for raw in ws:
                client.on_event(json.loads(raw))

        reading = asyncio.create_task(reader())
        await start.wait()
        for number in range(count):
            client_id = f"{id(client)}-{number}"
            loop = asyncio.get_running_loop()
            client.waiters[client_id] = loop.create_future()
            sent = time.perf_counter()
            await ws.send(
                json.dumps({"type": "message", "content": f"what is {number} plus 1?", "client_id": client_id})
            )
            try:
                message_id = await asyncio.wait_for(client.waiters[client_id], timeout)
                end = await asyncio.wait_for(client.ended.setdefault(message_id, loop.create_future()), timeout)
            except TimeoutError:
                results.append({"timeout": True})
                continue
            results.append(
                {"first_chunk": client.first_chunk.get(message_id, end) - sent, "end": end - sent, "timeout": False}
            )
        # Keep listening until every client has its last reply (the thread's other clients'
        # events are due to this one too), then a moment for stragglers.
        finished.append(client)
        await all_done.wait()
        await asyncio.sleep(2)
        reading.cancel()


def audit(clients: list[Client]) -> tuple[Counter[str], int]:
    """(lost, duplicated) events across every client, against what each thread produced."""
    by_thread: dict[str, set[str]] = defaultdict(set)
    streams_by_thread: dict[str, set[str]] = defaultdict(set)
    for client in clients:
        by_thread[client.thread] |= set(client.messages)
        streams_by_thread[client.thread] |= set(client.ends) | set(client.chunks)
    lost: Counter[str] = Counter()
    duplicated = 0
    for client in clients:
        for message_id in by_thread[client.thread]:
            seen = client.messages.get(message_id, 0)
            lost["message"] += seen == 0
            duplicated += max(0, seen - 1)
        for stream_id in streams_by_thread[client.thread]:
            seqs = client.chunks.get(stream_id, [])
            ends = client.ends.get(stream_id, 0)
            lost["stream_end"] += ends == 0
            duplicated += max(0, ends - 1)
            duplicated += len(seqs) - len(set(seqs))
            if seqs and sorted(set(seqs)) != list(range(max(seqs) + 1)):
                lost["stream_chunk"] += max(seqs) + 1 - len(set(seqs))
            if ends and client.text.get(stream_id, "") != client.final.get(stream_id):
                lost["stream_text"] += 1  # the chunks do not add up to the final message
    return lost, duplicated


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def drive(stack: Stack, args: argparse.Namespace) -> dict:
    owners = stack.create_users(args.threads, threads_each=1)
    clients = []
    for number in range(args.clients):
        owner = owners[number % args.threads]
        clients.append(Client(stack.ws_url(number % len(stack.ports), owner, owner["threads"][0]), owner["threads"][0]))
    results: list[dict] = []
    start = asyncio.Event()
    finished: list[Client] = []
    all_done = asyncio.Event()
    tasks = [
        asyncio.create_task(run_client(c, args.messages, results, start, args.timeout, finished, all_done))
        for c in clients
    ]
    await asyncio.sleep(1)  # every client connected
    began = time.perf_counter()
    start.set()
    while len(finished) < len(clients) and not any(t.done() and t.exception() for t in tasks):
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - began
    all_done.set()
    await asyncio.gather(*tasks)
    done = [r for r in results if not r["timeout"]]
    lost, duplicated = audit(clients)
    return {
        "clients": args.clients,
        "threads": args.threads,
        "servers": len(stack.ports),
        "stack": "PostgreSQL + Redis + Celery" if stack.uses_redis else "SQLite + in-memory layer (embedded)",
        "messages": len(results),
        "timeouts": len(results) - len(done),
        "messages_per_s": len(done) / elapsed,
        "first_chunk_ms": [percentile([r["first_chunk"] * 1000 for r in done], p) for p in (50, 95, 99)],
        "end_ms": [percentile([r["end"] * 1000 for r in done], p) for p in (50, 95, 99)],
        "lost": sum(lost.values()),
        "lost_by_kind": dict(+lost),
        "duplicated": duplicated,
        "errors": sum(len(c.errors) for c in clients),
        "mean_chunks_per_reply": statistics.mean([len(s) for c in clients for s in c.chunks.values()] or [0]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5, help="messages each client sends")
    parser.add_argument("--servers", type=int, default=2, help="Daphne processes (1 on the embedded default)")
    parser.add_argument("--delay-ms", type=int, default=10, help="the offline model's pause between answer words")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--keep", metavar="DIR", help="keep the servers' and worker's logs in DIR")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or tmp
        stack = Stack(
            Path(workdir),
            # The in-memory layer cannot reach across processes: one server on the embedded default.
            servers=args.servers if os.environ.get("REDIS_URL") else 1,
            # Each thread's owner has several clients sending at once: the per-user limits would
            # refuse what this measures (the stack's throughput), so they are lifted.
            env={
                "AGENT_OFFLINE_WORD_DELAY_MS": str(args.delay_ms),
                "MESSAGE_RATE_LIMIT": "1000000/60",
                "MAX_CONCURRENT_REPLIES": str(args.clients),
            },
        )
        with stack:
            try:
                report = asyncio.run(drive(stack, args))
            except BaseException:
                print(stack.logs_text(), file=sys.stderr)
                raise
    print(f"realtime load: {report['clients']} clients, {report['threads']} threads, {report['servers']} server(s)")
    print(f"  stack: {report['stack']}")
    print(f"  messages: {report['messages']} ({report['timeouts']} timed out), {report['messages_per_s']:.1f} msg/s")
    print("  time to first chunk  p50/p95/p99: {:.0f} / {:.0f} / {:.0f} ms".format(*report["first_chunk_ms"]))
    print("  time to stream end   p50/p95/p99: {:.0f} / {:.0f} / {:.0f} ms".format(*report["end_ms"]))
    print(f"  chunks per reply (mean): {report['mean_chunks_per_reply']:.1f}")
    print(f"  lost events: {report['lost']} {report['lost_by_kind'] or ''}, duplicated events: {report['duplicated']}")
    print(f"  error events: {report['errors']}")
    return 1 if report["lost"] or report["duplicated"] or report["timeouts"] else 0


if __name__ == "__main__":
    sys.exit(main())
