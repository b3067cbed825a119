"""Realtime at scale on a real stack: fan-out, overload and reconnect storms.

    python3 bench/run.py fanout    [--clients 200 --threads 1 --messages 5]
    python3 bench/run.py overload  [--clients 160 --threads 10 --messages 5 --limits product]
    python3 bench/run.py reconnect [--clients 40 --threads 10 --storms 1]

Each starts ``chatproject.testing.Stack`` as ``bench/realtime_load.py`` does (same stack options:
``--servers``, ``--workers``, ``--concurrency``, ``--pool``, ``--layer core|pubsub``) and checks
every client with its ``Client`` and ``audit``: each message of the thread once, each stream's
chunks from seq 0 with no gap or repeat, the chunks joined equal to the final message.

- fanout: N clients watch M threads (N/M each, spread over the servers); one client per thread
  sends its messages one after another. Prints how late each chunk reaches the thread's clients
  after the first of them got it (the fan-out spread), stream end latency, events delivered/s.
- overload: clients send their messages back to back without waiting for replies (4x the 40
  clients of the clean ``realtime`` run by default), with the product's per-user limits
  (``--limits product``) or lifted ones. Every frame sent must be accounted for: stored (and then
  answered) or refused with an error event (``rate_limited``, ``overloaded``,
  ``too_many_replies``, ...); a frame that is neither was dropped silently.
- reconnect: while every thread has a reply streaming, all clients close at once and reconnect at
  once, to the other server, with ``?after=<last message id>``; afterwards each must hold
  exactly the thread's history (over REST), each message once. A ``resync_required`` event is
  answered by reloading the history over REST (see ``Client``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from realtime_load import (
    Client,
    add_stack_arguments,
    audit,
    describe,
    fetch_history,
    make_stack,
    percentile,
    read_into,
    send_and_wait,
)

from chatproject.testing import Stack

LIFTED = {"MESSAGE_RATE_LIMIT": "1000000/60", "MAX_CONCURRENT_REPLIES": "100000"}


class ScaleClient(Client):
    """A ``Client`` that also knows its pongs, each message's parent and its connection."""

    def __init__(self, url: str, thread: str, rest: tuple[str, str], server: int) -> None:
        super().__init__(url, thread, rest)
        self.server = server
        self.pong = asyncio.Event()
        self.parents: dict[str, str | None] = {}  # message id -> parent id
        self.ws: Any = None
        self.reading: asyncio.Task | None = None

    def on_event(self, event: dict) -> None:
        super().on_event(event)
        if event["type"] == "pong":
            self.pong.set()
        elif event["type"] in ("message", "stream_end"):
            self.parents[event["message"]["id"]] = event["message"].get("parent")

    async def open(self, url: str | None = None) -> None:
        import websockets

        self.ws = await websockets.connect(url or self.url, max_size=None, open_timeout=60, close_timeout=10)
        self.reading = asyncio.create_task(read_into(self, self.ws))

    async def ready(self, timeout: float = 60) -> None:
        self.pong.clear()
        await self.ws.send(json.dumps({"type": "ping"}))
        await asyncio.wait_for(self.pong.wait(), timeout)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reading is not None:
            await self.reading

    def answered(self, message_id: str) -> bool:
        """This client has the reply to ``message_id`` (as its stream's end, or as a message)."""
        future = self.ended.get(message_id)
        return bool(future and future.done()) or message_id in self.parents.values()


async def connect_all(clients: list[ScaleClient], *, at_once: int = 50) -> None:
    """Open and ready every client, at most ``at_once`` handshakes at a time."""
    gate = asyncio.Semaphore(at_once)

    async def one(client: ScaleClient) -> None:
        async with gate:
            await client.open()
            await client.ready()

    await asyncio.gather(*(one(c) for c in clients))


def make_clients(stack: Stack, owners: list[dict], per_thread: int) -> dict[str, list[ScaleClient]]:
    """``per_thread`` clients on each owner's first thread, spread over the servers."""
    by_thread: dict[str, list[ScaleClient]] = {}
    for owner in owners:
        thread = owner["threads"][0]
        by_thread[thread] = [
            ScaleClient(
                stack.ws_url(n % len(stack.ports), owner, thread),
                thread,
                (stack.http_url(n % len(stack.ports), ""), owner["token"]),
                n % len(stack.ports),
            )
            for n in range(per_thread)
        ]
    return by_thread


async def open_clients(
    stack: Stack, args: argparse.Namespace
) -> tuple[list[dict], dict[str, list[ScaleClient]], list[ScaleClient]]:
    """``args.threads`` owners with a thread each, ``args.clients`` clients over them, all connected."""
    owners = stack.create_users(args.threads)
    by_thread = make_clients(stack, owners, max(1, args.clients // args.threads))
    clients = [c for cs in by_thread.values() for c in cs]
    await connect_all(clients)
    return owners, by_thread, clients


async def wait_answered(by_thread: dict[str, list[ScaleClient]], asked: dict[str, list[str]], timeout: float) -> bool:
    """Until every client has the reply to every message asked in its thread (False on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c.answered(m) for t, cs in by_thread.items() for c in cs for m in asked.get(t, [])):
            return True
        await asyncio.sleep(0.1)
    return False


def histories(by_thread: dict[str, list[ScaleClient]]) -> dict[str, list[dict]]:
    return {thread: fetch_history(*clients[0].rest, thread) for thread, clients in by_thread.items()}  # type: ignore[misc]


def ms(values: list[float]) -> str:
    return " / ".join(f"{percentile([v * 1000 for v in values], p):.0f}" for p in (50, 95, 99)) + " ms"


# --- fan-out --------------------------------------------------------------------------------


async def fanout(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    _, by_thread, clients = await open_clients(stack, args)
    words = " ".join(f"word{n}" for n in range(args.words))
    asked: dict[str, list[str]] = defaultdict(list)
    results: list[dict] = []

    async def sender(thread: str, client: ScaleClient) -> None:
        for number in range(args.messages):
            result = await send_and_wait(client, client.ws, f"uppercase: {words}", f"{thread}-{number}", args.timeout)
            results.append(result)
            if "message_id" in result:
                asked[thread].append(result["message_id"])

    began = time.perf_counter()
    await asyncio.gather(*(sender(thread, cs[0]) for thread, cs in by_thread.items()))
    complete = await wait_answered(by_thread, asked, args.timeout)
    elapsed = time.perf_counter() - began
    await asyncio.sleep(1)  # stragglers: anything late or twice is counted
    for client in clients:
        await client.close()
    # How late each chunk reached a thread's clients after the first of them had it.
    spread: list[float] = []
    for cs in by_thread.values():
        arrivals: dict[tuple[str, int], list[float]] = defaultdict(list)
        for client in cs:
            for key, at in client.chunk_times.items():
                arrivals[key].append(at)
        for times in arrivals.values():
            first = min(times)
            spread += [at - first for at in times]
    delivered = sum(sum(c.messages.values()) + sum(len(s) for s in c.chunks.values()) for c in clients)
    lost, duplicated = audit(clients)
    done = [r for r in results if not r["timeout"]]
    return {
        "title": f"fan-out: {len(clients)} clients on {args.threads} thread(s), {args.messages} messages a thread",
        "lines": [
            f"replies: {len(done)} of {len(results)} ({'all answered' if complete else 'NOT all answered'})",
            f"reply end at the sender p50/p95/p99: {ms([r['end'] for r in done])}",
            f"chunk fan-out spread (after the thread's first client) p50/p95/p99: {ms(spread)}, "
            f"max {max(spread or [0]) * 1000:.0f} ms",
            f"events delivered: {delivered} in {elapsed:.1f} s ({delivered / elapsed:.0f}/s)",
        ],
        "lost": lost,
        "duplicated": duplicated,
        "errors": Counter(e["code"] for c in clients for e in c.errors),
        "failed": not complete,
    }


# --- overload -------------------------------------------------------------------------------


async def overload(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    _, by_thread, clients = await open_clients(stack, args)
    sent: dict[ScaleClient, list[str]] = defaultdict(list)
    unsent = 0

    async def flood(number: int, client: ScaleClient) -> None:
        nonlocal unsent
        import websockets

        for k in range(args.messages):
            client_id = f"o{number}-{k}"
            try:
                await client.ws.send(
                    json.dumps({"type": "message", "content": f"what is {k} plus {number}?", "client_id": client_id})
                )
            except websockets.ConnectionClosed:
                unsent += args.messages - k  # closed (4429): the client knows these were not taken
                return
            sent[client].append(client_id)
            if args.interval_ms:
                await asyncio.sleep(args.interval_ms / 1000)

    began = time.perf_counter()
    await asyncio.gather(*(flood(n, c) for n, c in enumerate(clients)))
    flooded = time.perf_counter() - began
    all_sent = {client_id for ids in sent.values() for client_id in ids}

    def account(history: dict[str, list[dict]]) -> dict[str, Any]:
        """Each frame sent: stored, refused with its client_id, or refused unparsed; else silent."""
        stored_ids = {m["client_id"] for h in history.values() for m in h if m["role"] == "user" and m.get("client_id")}
        refused_with_id = {e["client_id"] for c in clients for e in c.errors if e.get("client_id")}
        refused_unparsed = sum(1 for c in clients for e in c.errors if not e.get("client_id"))
        stored = all_sent & stored_ids
        refused = (all_sent & refused_with_id) - stored
        replied = {m["parent"] for h in history.values() for m in h if m["role"] == "ai"}
        return {
            "stored": len(stored),
            "refused": len(refused),
            "refused_unparsed": refused_unparsed,
            "silent": len(all_sent) - len(stored) - len(refused) - refused_unparsed,
            "unanswered": sum(1 for h in history.values() for m in h if m["role"] == "user" and m["id"] not in replied),
            "asked": {t: [m["id"] for m in h if m["role"] == "user"] for t, h in history.items()},
        }

    # Drain: the servers work through the queued frames; every stored message must be answered,
    # at every client of its thread. Whatever is still unaccounted at the deadline was dropped.
    deadline = time.monotonic() + args.timeout
    while True:
        history = await asyncio.to_thread(histories, by_thread)
        outcome = account(history)
        settled = not outcome["silent"] and not outcome["unanswered"]
        if (settled and await wait_answered(by_thread, outcome["asked"], 0.2)) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    drained = time.perf_counter() - began
    await asyncio.sleep(1)  # stragglers: anything late or twice is counted
    history = await asyncio.to_thread(histories, by_thread)
    outcome = account(history)
    for client in clients:
        await client.close()
    codes = Counter(e["code"] for c in clients for e in c.errors)
    stored, refused, refused_unparsed = outcome["stored"], outcome["refused"], outcome["refused_unparsed"]
    silent, unanswered = outcome["silent"], outcome["unanswered"]
    if unanswered:
        # Replies were still streaming when the clients left: what each client holds cannot be
        # compared with the history (read at another moment). The run failed; its audit says nothing.
        lost, duplicated = Counter(), 0
    else:
        lost, duplicated = audit(clients, {t: {m["id"] for m in h} for t, h in history.items()})
    if silent:
        lost["silently_dropped_frames"] += silent
    return {
        "title": f"overload: {len(clients)} clients on {args.threads} threads send {args.messages} messages each "
        f"at once, {args.limits} limits",
        "lines": [
            f"frames sent: {len(all_sent)} in {flooded:.1f} s (not sent, connection closed: {unsent})",
            f"stored: {stored}, refused with its client_id: {refused}, refused unparsed: {refused_unparsed}, "
            f"unaccounted (silently dropped): {silent}",
            f"stored but unanswered after {drained:.1f} s: {unanswered}",
            f"replies per second while draining: {(stored - unanswered) / drained:.1f}",
        ],
        "lost": lost,
        "duplicated": duplicated,
        "errors": codes,
        "failed": bool(unanswered or silent or unsent),
        "audited": not unanswered,
    }


# --- reconnect storms -----------------------------------------------------------------------


async def reconnect(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    owners, by_thread, clients = await open_clients(stack, args)
    words = " ".join(f"word{n}" for n in range(args.words))
    asked: dict[str, list[str]] = defaultdict(list)
    reconnect_times: list[float] = []
    storm_seconds: list[float] = []

    async def ask(thread: str, client: ScaleClient, content: str, client_id: str, *, wait_end: bool) -> None:
        loop = asyncio.get_running_loop()
        client.waiters[client_id] = loop.create_future()
        await client.ws.send(json.dumps({"type": "message", "content": content, "client_id": client_id}))
        message_id = await asyncio.wait_for(client.waiters[client_id], args.timeout)
        asked[thread].append(message_id)
        if wait_end:
            await asyncio.wait_for(client.ended.setdefault(message_id, loop.create_future()), args.timeout)
            return
        while message_id not in client.first_chunk:  # streaming now
            await asyncio.sleep(0.01)

    async def again(client: ScaleClient) -> None:
        started = time.perf_counter()
        client.new_session()
        client.server = (client.server + 1) % len(stack.ports)  # as a load balancer may send it elsewhere
        owner = next(o for o in owners if o["threads"][0] == client.thread)
        query = {"after": client.last_message_id} if client.last_message_id else {}
        await client.open(stack.ws_url(client.server, owner, client.thread, **query))
        await client.ready()
        reconnect_times.append(time.perf_counter() - started)

    for storm in range(args.storms):
        senders = [(t, cs[0]) for t, cs in by_thread.items()]
        await asyncio.gather(*(ask(t, c, f"uppercase: {words}", f"s{storm}-{t}", wait_end=False) for t, c in senders))
        began = time.perf_counter()
        await asyncio.gather(*(c.close() for c in clients))
        await asyncio.gather(*(again(c) for c in clients))
        storm_seconds.append(time.perf_counter() - began)
        if not await wait_answered(by_thread, asked, args.timeout):
            break
    # A reply asked after the storms, at every client.
    await asyncio.gather(
        *(ask(t, cs[0], "what is 2 plus 2?", f"after-{t}", wait_end=True) for t, cs in by_thread.items())
    )
    complete = await wait_answered(by_thread, asked, args.timeout)
    await asyncio.sleep(1)
    history = await asyncio.to_thread(histories, by_thread)
    for client in clients:
        await client.close()
    lost, duplicated = audit(clients, {t: {m["id"] for m in h} for t, h in history.items()})
    exact = sum(1 for c in clients if set(c.messages) == {m["id"] for m in history[c.thread]})
    return {
        "title": f"reconnect storms: {len(clients)} clients on {args.threads} threads, {args.storms} storm(s), "
        "each while every thread streams a reply",
        "lines": [
            "all clients back (closed, reconnected with ?after=, ready): "
            + ", ".join(f"{s * 1000:.0f} ms" for s in storm_seconds),
            f"one client's reconnect p50/p95/p99: {ms(reconnect_times)}, "
            f"max {max(reconnect_times or [0]) * 1000:.0f} ms",
            f"clients holding exactly the thread's history: {exact} of {len(clients)}; "
            f"REST reloads (resync_required): {sum(c.reloads for c in clients)}",
            f"messages in the threads: {sum(len(h) for h in history.values())}; replies all answered: {complete}",
        ],
        "lost": lost,
        "duplicated": duplicated,
        "errors": Counter(e["code"] for c in clients for e in c.errors),
        "failed": not complete or exact != len(clients),
    }


SCENARIOS = {"fanout": fanout, "overload": overload, "reconnect": reconnect}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--clients", type=int, help="default: fanout 200, overload 160, reconnect 40")
    parser.add_argument("--threads", type=int, help="default: fanout 1, else 10")
    parser.add_argument("--messages", type=int, default=5, help="fanout: a thread's; overload: each client's")
    parser.add_argument("--words", type=int, default=40, help="words of each uppercased reply (fanout, reconnect)")
    parser.add_argument("--storms", type=int, default=1, help="reconnect: how many storms")
    parser.add_argument("--limits", choices=("product", "lifted"), default="product", help="overload's per-user limits")
    parser.add_argument("--interval-ms", type=int, default=0, help="overload: pause between a client's frames")
    parser.add_argument("--timeout", type=float, default=120)
    add_stack_arguments(parser)
    args = parser.parse_args(argv)
    defaults = {"fanout": (200, 1), "overload": (160, 10), "reconnect": (40, 10)}[args.scenario]
    args.clients = args.clients or defaults[0]
    args.threads = args.threads or defaults[1]
    limits = {} if args.scenario == "overload" and args.limits == "product" else LIFTED
    with tempfile.TemporaryDirectory() as tmp:
        stack = make_stack(Path(args.keep or tmp), args, dict(limits))
        with stack:
            try:
                report = asyncio.run(SCENARIOS[args.scenario](stack, args))
            except BaseException:
                print(stack.logs_text(), file=sys.stderr)
                raise
    print(report["title"])
    print(f"  stack: {describe(stack, args)}")
    for line in report["lines"]:
        print(f"  {line}")
    lost = sum(report["lost"].values())
    if report.get("audited", True):
        print(f"  lost events: {lost} {dict(+report['lost']) or ''}, duplicated events: {report['duplicated']}")
    else:
        print("  lost/duplicated events: not checked (replies still streaming at the deadline: raise --timeout)")
    print(f"  error events by code: {dict(report['errors']) or 'none'}")
    return 1 if lost or report["duplicated"] or report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
