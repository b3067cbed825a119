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
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatproject.testing import Stack


def fetch_history(base_url: str, token: str, thread: str) -> list[dict]:
    """Every message of the thread over REST, oldest first (all pages)."""
    url: str | None = f"{base_url}/api/threads/{thread}/messages/?page_size=200"
    messages: list[dict] = []
    while url:
        request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            page = json.loads(response.read())
        messages += page["results"]
        url = page["next"]
    return messages


class Client:
    """One WebSocket client's view of its thread, checked by ``audit``.

    ``rest`` (the server's base URL and the owner's token) lets it answer a ``resync_required``
    event (the server will not replay that far back) as the chat page does: it reloads the
    thread's history over REST and carries on from there.
    """

    def __init__(self, url: str, thread: str, rest: tuple[str, str] | None = None) -> None:
        self.url, self.thread, self.rest = url, thread, rest
        self.messages: Counter[str] = Counter()  # message id -> times received
        self.chunks: dict[str, list[int]] = defaultdict(list)  # stream -> seqs received
        self.text: dict[str, str] = defaultdict(str)
        self.ends: Counter[str] = Counter()
        self.final: dict[str, str] = {}
        self.end_message: dict[str, str] = {}  # stream -> its AI message
        self.reply_to: dict[str, str] = {}  # stream -> user message
        self.waiters: dict[str, asyncio.Future] = {}  # client_id -> future of the message id
        self.first_chunk: dict[str, float] = {}  # user message id -> time
        self.ended: dict[str, asyncio.Future] = {}  # user message id -> future of end time
        self.errors: list[dict] = []
        self.chunk_times: dict[tuple[str, int], float] = {}  # (stream, seq) -> when it arrived
        self.last_message_id: str | None = None  # what a reconnect resumes after (?after=)
        self.reloads = 0  # resync_required answered by a REST reload

    async def handle(self, raw: str) -> None:
        event = json.loads(raw)
        if event["type"] == "resync_required":
            await self.reload_history()
        else:
            self.on_event(event)

    async def reload_history(self) -> None:
        """The history over REST replaces what this client had received of the thread's messages."""
        if self.rest is None:
            raise RuntimeError("resync_required, but this client cannot reload over REST")
        history = await asyncio.to_thread(fetch_history, *self.rest, self.thread)
        self.reloads += 1
        self.messages = Counter(message["id"] for message in history)
        if history:
            self.last_message_id = history[-1]["id"]

    def new_session(self) -> None:
        """Before reconnecting with ``?after=``: the server replays open streams from seq 0."""
        for stream_id in [s for s in self.chunks if s not in self.ends]:
            del self.chunks[stream_id]
            self.text.pop(stream_id, None)

    def on_event(self, event: dict) -> None:
        now = time.perf_counter()
        kind = event["type"]
        if kind == "message":
            message = event["message"]
            self.messages[message["id"]] += 1
            self.last_message_id = message["id"]
            if (future := self.waiters.pop(message.get("client_id") or "", None)) and not future.done():
                future.set_result(message["id"])
        elif kind == "stream_start":
            self.reply_to[event["stream_id"]] = event["reply_to"]
        elif kind == "stream_chunk":
            self.chunks[event["stream_id"]].append(event["seq"])
            self.chunk_times[event["stream_id"], event["seq"]] = now
            self.text[event["stream_id"]] += event["delta"]
            self.first_chunk.setdefault(self.reply_to.get(event["stream_id"], ""), now)
        elif kind == "stream_end":
            self.ends[event["stream_id"]] += 1
            self.final[event["stream_id"]] = event["message"]["content"]
            self.end_message[event["stream_id"]] = event["message"]["id"]
            self.messages[event["message"]["id"]] += 1
            self.last_message_id = event["message"]["id"]
            reply_to = self.reply_to.get(event["stream_id"], event["message"]["parent"])
            future = self.ended.setdefault(reply_to, asyncio.get_running_loop().create_future())
            if not future.done():
                future.set_result(now)
        elif kind == "error":
            self.errors.append(event)
            # A refused message: whoever waits for it learns now (None), not at its timeout.
            if (future := self.waiters.pop(event.get("client_id") or "", None)) and not future.done():
                future.set_result(None)


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
        reading = asyncio.create_task(read_into(client, ws))
        await start.wait()
        for number in range(count):
            results.append(
                await send_and_wait(client, ws, f"what is {number} plus 1?", f"{id(client)}-{number}", timeout)
            )
        # Keep listening until every client has its last reply (the thread's other clients'
        # events are due to this one too), then a moment for stragglers.
        finished.append(client)
        await all_done.wait()
        await asyncio.sleep(2)
        reading.cancel()


async def read_into(client: Client, ws: Any) -> None:
    """Hand every event of the connection to the client until it closes."""
    import websockets

    try:
        async for raw in ws:
            await client.handle(raw)
    except websockets.ConnectionClosed:
        pass


async def send_and_wait(client: Client, ws: Any, content: str, client_id: str, timeout: float) -> dict:
    """Send a message and wait for its reply to end at this client: the times to its first chunk
    and to its end, or ``{"timeout": True}``."""
    loop = asyncio.get_running_loop()
    client.waiters[client_id] = loop.create_future()
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "message", "content": content, "client_id": client_id}))
    try:
        message_id = await asyncio.wait_for(client.waiters[client_id], timeout)
        if message_id is None:
            return {"timeout": True, "refused": True}
        end = await asyncio.wait_for(client.ended.setdefault(message_id, loop.create_future()), timeout)
    except TimeoutError:
        return {"timeout": True}
    first_chunk = client.first_chunk.get(message_id, end) - sent
    return {"message_id": message_id, "first_chunk": first_chunk, "end": end - sent, "timeout": False}


def audit(clients: list[Client], history: dict[str, set[str]] | None = None) -> tuple[Counter[str], int]:
    """(lost, duplicated) events across every client, against what each thread produced: the
    thread's ``history`` (message ids over REST) when given, else what its clients saw together.

    A stream whose end a client did not see counts as lost unless its AI message reached it as a
    message (it ended while the client was reconnecting)."""
    by_thread: dict[str, set[str]] = defaultdict(set)
    streams_by_thread: dict[str, set[str]] = defaultdict(set)
    end_message: dict[str, str] = {}
    for client in clients:
        by_thread[client.thread] |= set(client.messages)
        streams_by_thread[client.thread] |= set(client.ends) | set(client.chunks)
        end_message.update(client.end_message)
    if history is not None:
        by_thread = defaultdict(set, history)
        # A message the thread does not hold is no better than one received twice.
        duplicated_extra = sum(len(set(c.messages) - history.get(c.thread, set())) for c in clients)
    else:
        duplicated_extra = 0
    lost: Counter[str] = Counter()
    duplicated = duplicated_extra
    for client in clients:
        for message_id in by_thread[client.thread]:
            seen = client.messages.get(message_id, 0)
            lost["message"] += seen == 0
            duplicated += max(0, seen - 1)
        for stream_id in streams_by_thread[client.thread]:
            seqs = client.chunks.get(stream_id, [])
            ends = client.ends.get(stream_id, 0)
            lost["stream_end"] += ends == 0 and client.messages.get(end_message.get(stream_id, ""), 0) == 0
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
        owner, server = owners[number % args.threads], number % len(stack.ports)
        thread = owner["threads"][0]
        clients.append(
            Client(stack.ws_url(server, owner, thread), thread, rest=(stack.http_url(server, ""), owner["token"]))
        )
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
        "stack": describe(stack, args),
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


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The stack's shape, shared by the realtime benchmarks."""
    parser.add_argument("--servers", type=int, default=2, help="Daphne processes (1 on the embedded default)")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (each with its pool)")
    parser.add_argument("--concurrency", type=int, default=8, help="pool processes (or threads) of each worker")
    parser.add_argument("--pool", choices=("prefork", "threads"), default="prefork", help="each worker's Celery pool")
    parser.add_argument(
        "--layer",
        choices=("core", "pubsub"),
        default="pubsub",
        help="CHANNEL_LAYER_BACKEND (default: %(default)s, as in production)",
    )
    parser.add_argument("--delay-ms", type=int, default=10, help="the offline model's pause between answer words")
    parser.add_argument("--keep", metavar="DIR", help="keep the servers' and workers' logs in DIR")


def make_stack(workdir: Path, args: argparse.Namespace, env: dict[str, str]) -> Stack:
    return Stack(
        workdir,
        # The in-memory layer cannot reach across processes: one server on the embedded default.
        servers=args.servers if os.environ.get("REDIS_URL") else 1,
        workers=args.workers,
        worker_concurrency=args.concurrency,
        worker_args=("--pool", args.pool),
        env={"AGENT_OFFLINE_WORD_DELAY_MS": str(args.delay_ms), "CHANNEL_LAYER_BACKEND": args.layer, **env},
    )


def describe(stack: Stack, args: argparse.Namespace) -> str:
    if not stack.uses_redis:
        return "SQLite + in-memory layer (embedded), 1 server"
    return (
        f"PostgreSQL + Redis ({args.layer} layer), {len(stack.ports)} Daphne, "
        f"{args.workers} worker(s) x {args.concurrency} {args.pool}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5, help="messages each client sends")
    parser.add_argument("--timeout", type=float, default=60)
    add_stack_arguments(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or tmp
        # Each thread's owner has several clients sending at once: the per-user limits would
        # refuse what this measures (the stack's throughput), so they are lifted.
        stack = make_stack(
            Path(workdir), args, {"MESSAGE_RATE_LIMIT": "1000000/60", "MAX_CONCURRENT_REPLIES": str(args.clients)}
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
