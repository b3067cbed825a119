"""Benchmark of what one agent reply costs in CPU, per process, with instant models.

    python3 bench/run.py reply-cost [--replies 100]

In a test database of its own (SQLite in a temporary file by default; ``test_<name>`` next to
DATABASE_URL's when it is set), one user sends ``--replies`` messages one after another, each
answered before the next ("what is N plus 1?"), and the CPU time they took is read with
``time.process_time`` (every thread of this process: the ReAct loop runs on DSPy's worker
threads) and ``resource.getrusage``, so waiting counts for nothing. Two paths:

- ``worker``: ``agent.services.reply_to_message`` for a stored message: what a Celery worker does.
- ``eager``: ``messaging.services.message_send`` on the embedded default with the reply run in
  this thread (Celery eager): storing and broadcasting the message, then the reply.

Two models, both instant: the offline model (no word delay: a calculator step, then the answer;
three model calls) and a scripted OpenAI-compatible server (``agent/tests/fake_openai.py``) in a
process of its own (the ``finish`` step, then the answer, streamed: two calls over HTTP through
LiteLLM); its CPU is printed apart, as is PostgreSQL's backend's (read from ``/proc``) when the
database is a local PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Instant models (no pauses between words), and no rate limit on one user's many messages.
os.environ.setdefault("AGENT_OFFLINE_WORD_DELAY_MS", "0")
os.environ.setdefault("MESSAGE_RATE_LIMIT", "100000/60")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SERVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from agent.tests.fake_openai import FakeOpenAI, fields
server = FakeOpenAI([], fields(reasoning="Plain arithmetic.", answer="The answer is **42**."), piece=8)
server.__enter__()
print(server.api_base, flush=True)
sys.stdin.read()
"""


def _ticks_ms(pid: int) -> float:
    """CPU time (user + system) of another process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _rusage_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _db_pid() -> int | None:
    if connection.vendor != "postgresql" or not Path("/proc").exists():
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def run(label: str, replies: int, send, extra_pids: dict[str, int]) -> None:
    for n in range(3):  # warm-up: imports, the first program, connections
        send(n)
    db_pid = _db_pid()
    pids = {**extra_pids, **({"PostgreSQL backend": db_pid} if db_pid else {})}
    before = {name: _ticks_ms(pid) for name, pid in pids.items()}
    cpu, walls = [], []
    start_rusage = _rusage_ms()
    for n in range(replies):
        start, start_cpu = time.perf_counter(), time.process_time()
        send(n + 3)
        walls.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    rusage = (_rusage_ms() - start_rusage) / replies
    cpu.sort()
    others = "".join(f", {name} {(_ticks_ms(pid) - before[name]) / replies:.1f} ms" for name, pid in pids.items())
    print(
        f"{label:<34} CPU per reply: mean {statistics.fmean(cpu):5.1f} ms, p50 {statistics.median(cpu):5.1f} ms "
        f"(getrusage {rusage:5.1f} ms); wall p50 {statistics.median(walls):5.1f} ms{others}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replies", type=int, default=100)
    parser.add_argument("--models", default="offline,scripted")
    args = parser.parse_args()
    old = setup_databases(verbosity=0, interactive=False)
    server = None
    try:
        from agent.program import warm_up
        from agent.services import reply_to_message
        from agent.tasks import agent_reply
        from messaging.services import message_create, message_send
        from threads.tests.factories import make_thread, make_user

        user = make_user("bench-reply")
        settings.AGENT_EAGER_IN_BACKGROUND = False  # the embedded default's reply, in this thread
        # ... even with REDIS_URL set (a broker): the eager path is the embedded default's.
        agent_reply.app.conf.task_always_eager = True
        warm_up()
        print(
            f"reply cost bench: {args.replies} replies each, {connection.vendor}; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (CPU time is this process's, not the machine's)"
        )
        for model in args.models.split(","):
            extra: dict[str, int] = {}
            if model == "scripted":
                server = subprocess.Popen(
                    [sys.executable, "-c", SERVER, str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
                )
                assert server.stdout is not None
                settings.AGENT_LM, settings.OPENAI_API_KEY = "openai/scripted", "sk-bench"
                settings.AGENT_API_BASE = server.stdout.readline().strip()
                settings.AGENT_MAX_RETRIES = 0
                extra = {"model server": server.pid}
            thread = make_thread(user, title=f"bench {model}")

            def worker(n: int, thread=thread) -> None:
                message = message_create(thread=thread, role="user", sender=user, content=f"what is {n} plus 1?")
                answer = reply_to_message(message.pk)
                assert answer is not None and answer.type == "text", answer and answer.content

            def eager(n: int, thread=thread) -> None:
                message, _ = message_send(thread=thread, sender=user, content=f"what is {n} plus 1?")
                stream = message.reply_streams.get()
                assert stream.status == "complete", stream.status

            run(f"{model}, worker (reply_to_message)", args.replies, worker, extra)
            run(f"{model}, eager (message_send)", args.replies, eager, extra)
            if server is not None:
                server.stdin.close()  # type: ignore[union-attr]
                server.wait(10)
                server = None
                settings.AGENT_LM = "offline"
    finally:
        if server is not None:
            server.kill()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
