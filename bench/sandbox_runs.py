"""Benchmark of one ``run_python`` call: the bubblewrap sandbox against the unsafe plain process.

    python3 bench/run.py sandbox [--runs 50]

Each mode runs the same snippets ``--runs`` times, one after another, through
``agent.sandbox.run_sandboxed`` (process start, sandbox set-up, the interpreter, the code,
teardown) and prints p50/p95 wall time per snippet. The first run of each mode (the probe) is
not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from django.conf import settings  # noqa: E402

from agent import sandbox  # noqa: E402

SNIPPETS = {
    "print(1)": "print(1)",
    "import json, statistics, csv": "import json, statistics, csv\nprint(statistics.mean([1, 2, 3]))",
    "sum of 10^6 ints": "print(sum(range(10**6)))",
}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"{'mode':<16} {'snippet':<30} {'p50 ms':>8} {'p95 ms':>8}")
    for mode in ("bwrap", "unsafe-process"):
        settings.CODE_SANDBOX = mode
        status = sandbox.sandbox_status(refresh=True)
        if not status.active:
            print(f"{mode:<16} unavailable: {status.detail}")
            continue
        for name, code in SNIPPETS.items():
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                result = sandbox.run_sandboxed(code)
                times.append((time.perf_counter() - started) * 1000)
                assert result.exit == 0, result
            p50, p95 = statistics.median(times), percentile(times, 0.95)
            print(f"{mode:<16} {name:<30} {p50:8.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
