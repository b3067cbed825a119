"""Benchmark of the staff dashboard's API on a million messages' worth of reply metrics.

    python3 bench/run.py dashboard [--replies 500000 --days 30 --runs 20] [--no-rollup]

A million messages are half user messages and half the agent's replies: ``--replies`` ReplyMetric
rows (bulk_create; 30% of them with a tool step, 10% of those failed; 1,000 users, three models,
a few percent errors, interruptions and stops) spread evenly over the last ``--days`` days, in a
test database of its own (SQLite in a temporary file by default; ``test_<name>`` next to
DATABASE_URL's when it is set). Then it times ``GET /api/dashboard/?window=...`` through the
whole Django stack for each window (p50/p95/max, ms; CPU time too: this machine is shared), with
the cache emptied before each request (the API reuses a 24h or 7d answer for a few seconds).
Before timing it back-fills the rollups the 24h and 7d windows read (``reply_rollup_run``, as
the periodic task's first run would) and prints how long that took; ``--no-rollup`` leaves them
empty, so every window scans ``ReplyMetric`` as it did before the rollups.

Run it without REDIS_URL: with Redis the worker status costs one Celery ping (at most 0.5 s)
every 5 s, whatever the data; that is not what this measures.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
# A log line per request would be timed with the work and drown the numbers.
os.environ.setdefault("LOG_LEVEL", "WARNING")
# The SQLite test database in a folder of its own, not the checkout's var/ (tests use that one).
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="bench-dashboard-"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402
from timing import timed  # noqa: E402  (bench/, the script's folder)

BATCH = 5000
MODELS = [("offline", 0.6), ("gpt", 0.3), ("claude", 0.1)]
STATUSES = [("complete", 0.94), ("error", 0.03), ("interrupted", 0.01), ("stopped", 0.02)]
TOOLS = ["calculator", "memory_search", "file_processor", "run_python", "text_processor", "web_search"]


def seed(replies: int, days: int, rng: random.Random) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from messaging.models import ReplyMetric, ToolCallMetric

    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"user{n}") for n in range(1000)], batch_size=1000
    )
    user_ids = [u.pk for u in users] if users[0].pk else list(get_user_model().objects.values_list("pk", flat=True))
    now = timezone.now()
    span = timedelta(days=days).total_seconds()
    models, model_weights = zip(*MODELS, strict=True)
    statuses, status_weights = zip(*STATUSES, strict=True)
    started = time.perf_counter()
    for start in range(0, replies, BATCH):
        rows, tools = [], []
        for n in range(start, min(replies, start + BATCH)):
            at = now - timedelta(seconds=span * (1 - n / replies))
            status = rng.choices(statuses, status_weights)[0]
            model = rng.choices(models, model_weights)[0]
            queue = int(rng.expovariate(1 / 40))
            first = queue + int(rng.lognormvariate(6.5, 0.6))
            total = first + int(rng.lognormvariate(7.5, 0.7))
            prompt, completion = rng.randint(300, 4000), rng.randint(20, 800)
            rows.append(
                ReplyMetric(
                    id=n + 1,
                    created_at=at,
                    minute=int(at.timestamp()) // 60,
                    user_id=rng.choice(user_ids),
                    model=model,
                    status=status,
                    queue_ms=queue,
                    first_chunk_ms=None if status == "error" else first,
                    total_ms=total,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cost_usd=None if model == "offline" else (prompt * 1.5e-7 + completion * 6e-7),
                )
            )
            if rng.random() < 0.3:
                ok = rng.random() >= 0.1
                rows[-1].tool_calls, rows[-1].tool_errors = 1, int(not ok)
                tools.append(
                    ToolCallMetric(
                        reply_id=n + 1, created_at=at, name=rng.choice(TOOLS), duration_ms=rng.randint(1, 900), ok=ok
                    )
                )
        ReplyMetric.objects.bulk_create(rows, batch_size=BATCH)
        ToolCallMetric.objects.bulk_create(tools, batch_size=BATCH)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded {replies:,} reply metrics over {days} days in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replies", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-rollup", action="store_true", help="Do not back-fill the rollups: scan every window.")
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]
    old = setup_databases(verbosity=0, interactive=False)
    try:
        from django.contrib.auth import get_user_model
        from django.core.cache import cache
        from django.db import connection
        from rest_framework.authtoken.models import Token
        from rest_framework.test import APIClient

        seed(args.replies, args.days, random.Random(7))
        if not args.no_rollup:
            from messaging.rollup import reply_rollup_run

            started = time.perf_counter()
            hours = reply_rollup_run()
            print(f"rolled up {hours:,} hours of reply metrics in {time.perf_counter() - started:.1f} s")
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        staff = get_user_model().objects.create_user("staff", password="bench-password-123", is_staff=True)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        mode = "scans only" if args.no_rollup else "rollups"
        print(f"dashboard bench: {engine}, {mode}, {args.runs} runs; load average {os.getloadavg()[0]:.1f}")
        for window in ("1h", "24h", "7d"):

            def call(window: str = window) -> None:
                cache.clear()  # the figures computed, not the copy kept for the page's polling
                response = client.get("/api/dashboard/", {"window": window})
                assert response.status_code == 200, response.content

            total = client.get("/api/dashboard/", {"window": window}).json()["replies"]["total"]
            timed(f"GET /api/dashboard/?window={window} ({total:,} replies)", args.runs, call, width=36)
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
