"""Fault benchmark: the fault suite on the production stack, and how fast each recovery was.

    python3 bench/run.py faults [pytest args, e.g. -k redis]

Runs ``chatproject/tests/test_faults.py``: two Daphne processes, a Celery worker and beat, on a
redis-server and a PostgreSQL cluster of the suite's own (started on spare ports and killed by
process id; the machine's services are never touched), so it needs no DATABASE_URL or REDIS_URL.
Each test takes one part down from a healthy stack and checks that nothing hangs, nothing is lost
and nothing arrives twice; this prints the recovery times they measured, in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.jsonl"
        env = {**os.environ, "CHAT_FAULTS": "1", "FAULTS_REPORT": str(report)}
        env.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "chatproject/tests/test_faults.py"]
        code = subprocess.run([*command, *argv], cwd=ROOT, env=env).returncode
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    print("\nRecovery times, in seconds (each name says from when):")
    for row in rows:
        fault = row.pop("fault")
        print(f"  {fault}")
        for name, seconds in row.items():
            print(f"      {name.replace('_', ' '):<55} {seconds:6.2f}")
    if not rows:
        print("  (no fault test ran to its end)")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
