"""One command for the benchmarks; each prints its numbers.

    python3 bench/run.py                 # every benchmark
    python3 bench/run.py realtime [...]  # one, with its own arguments (--help)
    python3 bench/run.py fanout|overload|reconnect [...]  # realtime at scale (bench/realtime_scale.py)
    python3 bench/run.py pipeline [...]  # model delta to client latency, worker memory, profiles
    python3 bench/run.py faults [...]    # the fault suite and its recovery times (pytest arguments)
    python3 bench/run.py agent-eval [...] # the agent evaluation set and its score (--help)
    python3 bench/run.py tree [...]      # the visualization endpoint and paths on a 5,000-message thread
    python3 bench/run.py dashboard [...] # the staff dashboard API on a million messages' reply metrics
    python3 bench/run.py lists [...]     # thread and message lists (pages, cursors) on a million messages
    python3 bench/run.py reply-cost [...] # CPU per agent reply, offline and scripted models, worker and eager
    python3 bench/run.py chunks [...]    # rows, bytes and time a 4,000-delta reply writes (SQLite, PostgreSQL)
    python3 bench/run.py idle [...]      # database queries per second of 1,000 idle WebSocket connections

Uses the embedded default unless DATABASE_URL / REDIS_URL are set; the README's numbers were
measured with both set (PostgreSQL and Redis on this machine). ``faults`` always runs the
production stack, on a redis-server and PostgreSQL cluster of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from _venv import ensure, run

# A name's script, and the arguments that come before the caller's.
BENCHMARKS: dict[str, str | tuple[str, ...]] = {
    "memory": "bench/memory_index.py",
    "realtime": "bench/realtime_load.py",
    "fanout": ("bench/realtime_scale.py", "fanout"),
    "overload": ("bench/realtime_scale.py", "overload"),
    "reconnect": ("bench/realtime_scale.py", "reconnect"),
    "pipeline": "bench/realtime_pipeline.py",
    "sandbox": "bench/sandbox_runs.py",
    "markdown": "bench/markdown_render.py",
    "faults": "bench/faults.py",
    "agent-eval": "bench/agent_eval.py",
    "webhooks": "bench/webhooks_delivery.py",
    "tree": "bench/tree_view.py",
    "export": "bench/export_bulk.py",
    "dashboard": "bench/dashboard_api.py",
    "lists": "bench/rest_lists.py",
    "reply-cost": "bench/reply_cost.py",
    "chunks": "bench/reply_chunks.py",
    "idle": "bench/idle_connections.py",
}


def main() -> int:
    ensure("requirements-dev.txt")
    names = [sys.argv[1]] if len(sys.argv) > 1 and sys.argv[1] in BENCHMARKS else list(BENCHMARKS)
    extra = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] in BENCHMARKS else sys.argv[1:]
    code = 0
    for name in names:
        script = BENCHMARKS[name]
        code |= run("python", *((script,) if isinstance(script, str) else script), *extra, env={**os.environ})
    return code


if __name__ == "__main__":
    sys.exit(main())
