"""Pipeline overhead: from the model sending a piece of the answer to a client receiving it.

    python3 bench/run.py pipeline [--streams 40 --pieces 30 --gap-ms 100 --profile DIR]

Needs REDIS_URL (and DATABASE_URL): the stack of ``bench/realtime_load.py`` (two Daphne, Celery
workers, Redis, PostgreSQL) with the agent's model set, as the README documents, to a scripted
OpenAI-compatible server in this process (``AGENT_LM=openai/scripted``, ``AGENT_API_BASE``,
``OPENAI_API_KEY``). The server answers each ReAct step with ``finish`` at once and then streams
the answer as ``--pieces`` pieces ``--gap-ms`` apart, noting when each piece left (after its
flush). Every piece names its reply and its number (``p7:12;``), so the client that receives it,
in the same process and on the same clock, knows exactly which piece arrived when.

Runs: warm-up (each worker process imports LiteLLM on its first reply), then one reply at a time
(idle), then ``--streams`` replies sent at once, each in a thread of its own (their ReAct steps
and answers overlap as they come), then ``--streams`` replies streaming at once (the model holds
every answer until all have asked for theirs, then streams each at a phase of its own over one
gap), while the workers' memory (RSS and PSS of each worker and its pool children, summed) is
sampled. Prints the delay p50/p99/max of each run (and apart, of each reply's last piece), the
channel-layer publishes per stream per second (the events a client receives for a reply, over
the reply's duration) and Redis commands per publish. With ``--profile DIR`` a last run of
``--streams`` replies is recorded by py-spy (a worker with its pool children, and one Daphne,
sampling only the thread holding the GIL): flame graphs and raw stacks in DIR, the top frames
printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from realtime_load import Client, add_stack_arguments, describe, make_stack, percentile, read_into, send_and_wait

from agent.tests.fake_openai import USAGE, completion, finish
from agent.tests.local_http import LocalServer, Reply, Request
from chatproject.testing import Stack

TAG = re.compile(r"\[\[ ## message ## \]\]\s*pipeline (\S+)")
# Frames worth reading in the totals: ours and the libraries on the reply path (not start-up,
# click, billiard or runpy frames that every sample passes through).
READ = ("agent/", "messaging/", "chatproject/", "threads/", "dspy/", "litellm/", "channels", "psycopg/", "redis/")
READ += ("django/db/", "json/", "pydantic", "httpx", "openai", "asyncio/")


class TimedModel(LocalServer):
    """An OpenAI-compatible server whose answers are pieces sent at known times."""

    def __init__(self, pieces: int, gap: float) -> None:
        self.pieces, self.gap = pieces, gap
        self.sent: dict[tuple[str, int], float] = {}  # (reply tag, piece) -> perf_counter after its flush
        # Set for a run whose answers must all stream at once (see ``hold``).
        self.together: threading.Barrier | None = None
        self.phases: dict[str, float] = {}
        super().__init__(self.reply)

    def hold(self, tags: list[str]) -> None:
        """Start no answer of these replies until all have asked for theirs; then each starts at a
        phase of its own, spread evenly over one gap (independent streams, not one tick for all).
        What is measured is then the pipeline with that many replies streaming, not the agent's
        work before the answers (its ReAct steps, which run first and compete for the same CPU)."""
        self.together = threading.Barrier(len(tags))
        self.phases = {tag: self.gap * n / len(tags) for n, tag in enumerate(tags)}

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    def reply(self, request: Request) -> Reply:
        body = request.json()
        model = body["model"]
        if "next_tool_name" in body["messages"][0]["content"]:
            text = finish()  # a ReAct step: no tool, answer now
            if body.get("stream"):
                return Reply(body=self.events(model, [text]), headers={"Content-Type": "text/event-stream"})
            return Reply.json(completion(model, text))
        tags = TAG.findall(body["messages"][-1]["content"])
        tag = tags[-1] if tags else "p?"
        return Reply(body=self.timed(model, tag), headers={"Content-Type": "text/event-stream"})

    def events(self, model: str, texts: list[str]) -> Any:
        for text in texts:
            yield self.event(model, {"content": text})
        yield from self.end(model)

    def timed(self, model: str, tag: str) -> Any:
        yield self.event(model, {"role": "assistant", "content": "[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\n"})
        if self.together is not None and tag in self.phases:
            with contextlib.suppress(threading.BrokenBarrierError):  # a reply that never came: go on
                self.together.wait(timeout=120)
            time.sleep(self.phases[tag])
        for number in range(self.pieces):
            time.sleep(self.gap)
            yield self.event(model, {"content": f"{tag}:{number}; "})
            # Resumed once the server has written and flushed that piece.
            self.sent[tag, number] = time.perf_counter()
        yield self.event(model, {"content": "\n\n[[ ## completed ## ]]"})
        yield from self.end(model)

    @staticmethod
    def event(model: str, delta: dict[str, str], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [choice]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def end(self, model: str) -> Any:
        yield self.event(model, {}, "stop")
        final = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": []}
        yield f"data: {json.dumps({**final, 'usage': USAGE})}\n\n".encode()
        yield b"data: [DONE]\n\n"


# --- the workers' memory --------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    return children


def family(pid: int) -> list[int]:
    """The process and all its descendants."""
    children, found, todo = _children(), [], [pid]
    while todo:
        found.append(current := todo.pop())
        todo += children.get(current, [])
    return found


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) summed over ``pids``, in KiB. RSS counts pages a fork shares once per process; PSS
    splits them between the processes sharing them."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "Rss":
                    rss += int(value.split()[0])
                elif name == "Pss":
                    pss += int(value.split()[0])
        except OSError:
            continue
    return rss, pss


class MemorySampler(threading.Thread):
    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.roots = [p.pid for p in stack.workers if p is not None]
        self.peak = (0, 0)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            rss, pss = memory_kib([pid for root in self.roots for pid in family(root)])
            self.peak = (max(self.peak[0], rss), max(self.peak[1], pss))


# --- the runs -------------------------------------------------------------------------------


def redis_calls(stack: Stack) -> int:
    """Commands Redis has run so far (INFO commandstats), for commands per publish."""
    import redis

    assert stack.redis is not None
    client = redis.Redis.from_url(stack.redis.url)
    try:
        return sum(int(v["calls"]) for k, v in client.info("commandstats").items() if k.startswith("cmdstat_"))
    finally:
        client.close()


async def run_replies(stack: Stack, model: TimedModel, people: list[dict], prefix: str, timeout: float) -> dict:
    """One reply per person (each in their own thread), all sent at once; the pieces' delays."""
    clients, sockets, readers = [], [], []
    import websockets

    arrivals: list[list[tuple[float, str]]] = []  # per client: (when, delta) of each chunk
    for number, person in enumerate(people):
        server = number % len(stack.ports)
        client = Client(stack.ws_url(server, person, person["threads"][0]), person["threads"][0])
        arrival: list[tuple[float, str]] = []
        original = client.on_event

        def on_event(event: dict, original: Any = original, arrival: list = arrival) -> None:
            if event["type"] == "stream_chunk":
                arrival.append((time.perf_counter(), event["delta"]))
            original(event)

        client.on_event = on_event  # type: ignore[method-assign]
        ws = await websockets.connect(client.url, max_size=None, open_timeout=60)
        clients.append(client)
        arrivals.append(arrival)
        sockets.append(ws)
        readers.append(asyncio.create_task(read_into(client, ws)))
    calls_before = redis_calls(stack)
    results = await asyncio.gather(
        *(
            send_and_wait(client, ws, f"pipeline {prefix}{n}", f"{prefix}{n}", timeout)
            for n, (client, ws) in enumerate(zip(clients, sockets, strict=True))
        )
    )
    calls = redis_calls(stack) - calls_before
    for ws in sockets:
        await ws.close()
    for reader in readers:
        await reader
    delays: list[float] = []
    last_delays: list[float] = []  # the last piece of each reply (see ``_last_pieces``)
    other_delays: list[float] = []
    missing = 0
    publish_rates: list[float] = []
    publishes = 0
    for n, (client, arrival) in enumerate(zip(clients, arrivals, strict=True)):
        tag = f"{prefix}{n}"
        text, when = "", []
        for at, delta in arrival:
            text += delta
            when.append((at, len(text)))
        for piece in range(model.pieces):
            marker = f"{tag}:{piece};"
            sent = model.sent.get((tag, piece))
            position = text.find(marker)
            if sent is None or position < 0:
                missing += 1
                continue
            end = position + len(marker)
            received = next(at for at, length in when if length >= end)
            delays.append(received - sent)
            (last_delays if piece == model.pieces - 1 else other_delays).append(received - sent)
        for stream_id, seqs in client.chunks.items():
            events = len(seqs) + 2  # its start, its chunks, its end (no tool steps here)
            publishes += events
            times = [client.chunk_times[stream_id, s] for s in seqs]
            if len(times) > 1 and max(times) > min(times):
                publish_rates.append(events / (max(times) - min(times)))
    return {
        "delays": delays,
        "last_delays": last_delays,
        "other_delays": other_delays,
        "missing": missing,
        "timeouts": sum(1 for r in results if r["timeout"]),
        "errors": Counter(e["code"] for c in clients for e in c.errors),
        "publish_rates": publish_rates,
        "redis_calls_per_publish": calls / publishes if publishes else float("nan"),
        "chunks_per_reply": sum(len(s) for c in clients for s in c.chunks.values()) / max(1, len(clients)),
    }


def summary(label: str, run: dict) -> str:
    delays = [d * 1000 for d in run["delays"]]
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    rates = run["publish_rates"]
    rate = f"{sum(rates) / len(rates):.1f}" if rates else "-"
    return (
        f"{label:<28} model piece -> client p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {max(delays or [0]):7.1f} ms"
        f"  ({len(delays)} pieces, {run['missing']} missing, {run['timeouts']} timed out);"
        f" {rate} publishes/stream/s, {run['chunks_per_reply']:.0f} chunks/reply,"
        f" {run['redis_calls_per_publish']:.1f} Redis commands/publish"
        + (f"; errors {dict(run['errors'])}" if run.get("errors") else "")
        + _last_pieces(run)
    )


def _last_pieces(run: dict) -> str:
    """The delays of each reply's last piece apart from the others': when replies end together,
    their last pieces wait for the CPU that the others' ends (storing the message, its metrics,
    the thread's summary, DSPy's own end of the call) take at that moment."""
    last = [d * 1000 for d in run["last_delays"]]
    others = [d * 1000 for d in run["other_delays"]]
    if not last:
        return ""
    return (
        f"\n{'':<30}all but the last piece of each reply: p50 {percentile(others, 50):.1f} ms,"
        f" p99 {percentile(others, 99):.1f} ms; the last pieces: p50 {percentile(last, 50):.1f} ms,"
        f" p99 {percentile(last, 99):.1f} ms"
    )


# --- profiles -------------------------------------------------------------------------------


def start_profiles(stack: Stack, out: Path, seconds: int) -> list[subprocess.Popen]:
    """py-spy on the first worker (with its pool children) and the first Daphne: an SVG flame
    graph and raw stacks of each."""
    out.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    targets = {"worker": stack.workers[0].pid, "daphne": stack.servers[0].pid}  # type: ignore[union-attr]
    processes = []
    for name, pid in targets.items():
        for form, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            command = [str(py_spy), "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "-r", "50"]
            # Only the thread holding the GIL: what the process's one core of Python is spent on.
            command += ["--gil"]
            command += ["-d", str(seconds), "-f", form, "-o", str(out / f"{name}.{suffix}")]
            processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    time.sleep(1)  # attached
    for process in processes:
        if process.poll() is not None:
            raise RuntimeError(f"py-spy failed: {process.stderr.read().decode() if process.stderr else ''}")
    return processes


def top_frames(raw: Path, count: int = 12) -> list[str]:
    """The frames where most samples were (self) and that most samples passed through (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += int(number)
        own[frames[-1]] += int(number)
        for frame in set(frames):
            if any(part in frame for part in READ) and "management/commands" not in frame:
                total[frame] += int(number)
    lines = [f"{samples} samples; self:"]
    lines += [f"  {n * 100 / samples:5.1f}%  {frame}" for frame, n in own.most_common(count)]
    lines.append("total (frames of the project and the reply path's libraries):")
    lines += [f"  {n * 100 / samples:5.1f}%  {frame}" for frame, n in total.most_common(count * 2)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=40, help="replies at once in the loaded run")
    parser.add_argument("--idle-replies", type=int, default=5, help="replies one after another in the idle run")
    parser.add_argument("--pieces", type=int, default=30, help="pieces of each answer")
    parser.add_argument("--gap-ms", type=float, default=100, help="the model's pause before each piece")
    parser.add_argument("--profile", metavar="DIR", help="record a last loaded run with py-spy into DIR")
    parser.add_argument("--timeout", type=float, default=300)
    add_stack_arguments(parser)
    args = parser.parse_args(argv)
    if not os.environ.get("REDIS_URL"):
        print("pipeline: skipped, it needs REDIS_URL (and DATABASE_URL): it measures the production stack")
        return 0
    model = TimedModel(args.pieces, args.gap_ms / 1000)
    with model, tempfile.TemporaryDirectory() as tmp:
        env = {
            "AGENT_LM": "openai/scripted",
            "AGENT_API_BASE": model.api_base,
            "OPENAI_API_KEY": "sk-bench",
            "MESSAGE_RATE_LIMIT": "1000000/60",
            "MAX_CONCURRENT_REPLIES": "1000",
        }
        stack = make_stack(Path(args.keep or tmp), args, env)
        with stack:
            try:
                lines = asyncio.run(measure(stack, model, args))
            except BaseException:
                print(stack.logs_text(), file=sys.stderr)
                raise
    print(f"pipeline: answers of {args.pieces} pieces, {args.gap_ms:g} ms apart")
    print(f"  stack: {describe(stack, args)}")
    for line in lines:
        print(f"  {line}")
    return 0


async def measure(stack: Stack, model: TimedModel, args: argparse.Namespace) -> list[str]:
    people = stack.create_users(max(args.streams, args.workers * args.concurrency))
    # Warm-up: every pool process's first reply imports LiteLLM (seconds).
    await run_replies(stack, model, people[: args.workers * args.concurrency * 2 or 1], "w", args.timeout)
    idle: dict[str, Any] = {
        "delays": [],
        "last_delays": [],
        "other_delays": [],
        "missing": 0,
        "timeouts": 0,
        "publish_rates": [],
        "chunks_per_reply": 0,
    }
    idle["errors"] = Counter()
    for number in range(args.idle_replies):
        run = await run_replies(stack, model, people[:1], f"i{number}-", args.timeout)
        for key in ("delays", "last_delays", "other_delays", "publish_rates"):
            idle[key] += run[key]
        for key in ("missing", "timeouts", "errors"):
            idle[key] += run[key]
        idle["chunks_per_reply"] = run["chunks_per_reply"]
        idle["redis_calls_per_publish"] = run["redis_calls_per_publish"]
    sampler = MemorySampler(stack)
    sampler.start()
    loaded = await run_replies(stack, model, people[: args.streams], "l", args.timeout)
    model.hold([f"t{n}" for n in range(args.streams)])
    together = await run_replies(stack, model, people[: args.streams], "t", args.timeout)
    model.together = None
    sampler.stop.set()
    sampler.join()
    rss, pss = sampler.peak
    lines = [
        summary("1 reply at a time", idle),
        summary(f"{args.streams} replies sent at once", loaded),
        summary(f"{args.streams} streaming at once", together),
        f"workers' memory at the peak of the {args.streams}-reply run: RSS {rss / 1024:.0f} MiB summed "
        f"(PSS {pss / 1024:.0f} MiB) over {args.workers} worker(s) and their {args.pool} pools",
    ]
    if args.profile:
        out = Path(args.profile)
        seconds = int(args.pieces * args.gap_ms / 1000 + 15)
        profilers = start_profiles(stack, out, seconds)
        await run_replies(stack, model, people[: args.streams], "f", args.timeout)
        for profiler in profilers:
            profiler.wait(timeout=seconds + 60)
        for name in ("worker", "daphne"):
            lines.append(f"py-spy, {name} ({out / name}.svg):")
            lines += [f"  {line}" for line in top_frames(out / f"{name}.txt")]
    return lines


if __name__ == "__main__":
    sys.exit(main())
